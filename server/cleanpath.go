package server

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// withCleanPath returns r, or when its URL path has empty or dot segments
// (//graphql, /./graphql, /a/../graphql) a shallow copy of r whose path is
// cleaned as http.ServeMux cleans it (path.Clean on the escaped path,
// keeping a trailing slash), with the query kept, so that the mux serves
// the route instead of redirecting to it. The mux's redirect is a 307 with
// an HTML body and no nosniff, its Location an absolute path, which behind
// a proxy that strips a path prefix (the client at /herald//graphql) leads
// out of the prefix, and no WebSocket client follows a redirect of its
// upgrade. CONNECT is left alone, as the mux leaves it.
//
// A clean path, every request but a malformed one, costs one scan and no
// allocation.
func withCleanPath(r *http.Request) *http.Request {
	escaped := r.URL.EscapedPath()
	clean := cleanPath(escaped)
	if clean == escaped || r.Method == http.MethodConnect {
		return r
	}
	unescaped, err := url.PathUnescape(clean)
	if err != nil {
		// Not reached: cleaning a valid escaped path only drops segments.
		// The mux redirects as before.
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = unescaped, clean
	r2.URL = &u
	return r2
}

// cleanPath is the canonical form of the escaped URL path p, as
// http.ServeMux computes it: rooted, path.Clean, with a trailing slash
// kept. It returns p itself, without allocating, when p is canonical.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	// path.Clean drops a trailing slash, which is part of the route.
	if p[len(p)-1] == '/' && np != "/" {
		if len(p) == len(np)+1 && strings.HasPrefix(p, np) {
			np = p
		} else {
			np += "/"
		}
	}
	return np
}
