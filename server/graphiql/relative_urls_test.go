package graphiql

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestPageURLsWorkUnderStrippedPrefix loads the page as a browser behind a
// reverse proxy that serves the handler under prefix and strips it
// (Traefik's StripPrefix, an ingress-nginx rewrite-target, nginx's
// "location /herald/ { proxy_pass http://herald/; }"): the browser is at
// prefix+pagePath, the handler sees pagePath. Every asset and the endpoint
// the page names must resolve inside the prefix, and each asset, with the
// prefix stripped, must be one the handler serves. An empty prefix is a
// page served at the origin's root.
func TestPageURLsWorkUnderStrippedPrefix(t *testing.T) {
	heraldOpts := Options{Title: "Herald", Endpoint: "/graphql", AssetsPath: "/graphiql/"}
	ideOpts := Options{Endpoint: "/api/graphql", AssetsPath: "/ide/assets/"}
	cases := []struct {
		name             string
		opts             Options
		prefix, pagePath string
		wantEndpoint     string // relative to the handler's root
	}{
		{"root", heraldOpts, "", "/", "/graphql"},
		{"root under a prefix", heraldOpts, "/herald", "/", "/graphql"},
		{"root under a deep prefix", heraldOpts, "/team/chat/herald", "/", "/graphql"},
		{"/graphiql under a prefix", heraldOpts, "/herald", "/graphiql", "/graphql"},
		{"page in a directory", ideOpts, "", "/ide/", "/api/graphql"},
		{"page in a directory under a prefix", ideOpts, "/herald", "/ide/", "/api/graphql"},
		{"page below a directory under a prefix", ideOpts, "/herald", "/ide/x", "/api/graphql"},
		{"page two directories down under a prefix", ideOpts, "/herald", "/a/b/", "/api/graphql"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := Handler(tc.opts)
			w := get(t, h, http.MethodGet, tc.pagePath, nil)
			if w.Code != http.StatusOK {
				t.Fatalf("GET %s: status %d", tc.pagePath, w.Code)
			}
			page := w.Body.String()
			browserAt := "http://example.com" + tc.prefix + tc.pagePath
			refs := references(page)
			if len(refs) != len(pageFiles()) {
				t.Errorf("page names %d files %q, want %d", len(refs), refs, len(pageFiles()))
			}
			for _, ref := range refs {
				abs := resolve(t, browserAt, ref)
				seen, inside := strings.CutPrefix(abs, tc.prefix)
				if !inside || !strings.HasPrefix(seen, tc.opts.AssetsPath) {
					t.Errorf("asset %s from %s resolves to %s, not under %s%s", ref, browserAt, abs, tc.prefix, tc.opts.AssetsPath)
					continue
				}
				if w := get(t, h, http.MethodGet, seen, nil); w.Code != http.StatusOK {
					t.Errorf("asset %s from %s: the handler answers %s with %d", ref, browserAt, seen, w.Code)
				}
			}
			// start.js: new URL(root.dataset.endpoint, document.baseURI).
			m := regexp.MustCompile(`data-endpoint="([^"]+)"`).FindStringSubmatch(page)
			if m == nil {
				t.Fatalf("page has no data-endpoint")
			}
			if got, want := resolve(t, browserAt, m[1]), tc.prefix+tc.wantEndpoint; got != want {
				t.Errorf("endpoint %s from %s resolves to %s, want %s", m[1], browserAt, got, want)
			}
		})
	}
}

func TestRelativeRoot(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/", "./"},
		{"", "./"},
		{"/graphiql", "./"},
		{"/ide/", "../"},
		{"/ide/x", "../"},
		{"/a/b/", "../../"},
		// The browser counts an escaped slash as part of a segment and an
		// empty segment as a segment.
		{"/a%2Fb/", "../"},
		{"/a//", "../../"},
	} {
		if got := relativeRoot(tc.path); got != tc.want {
			t.Errorf("relativeRoot(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}
