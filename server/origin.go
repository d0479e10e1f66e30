package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// originPolicy decides which web origins may use Herald from a browser:
// which may open WebSockets (a browser sends its cookies with an upgrade
// from any site, so an unchecked upgrade is cross-site WebSocket
// hijacking) and which get CORS headers for GraphQL over HTTP.
//
// Requests without an Origin header are not from a browser script (or are
// same-origin navigations) and are always allowed; so are same-origin
// requests, whose Origin names the host they were sent to.
type originPolicy struct {
	any     bool
	exact   map[string]bool // "https://app.example.com", lower case, no default port
	domains []siteSuffix    // "https://*.example.com"
}

// siteSuffix is a wildcard entry: its scheme, the domain the host must
// end in (beginning with "."), and the port ("" for the scheme's default),
// which is part of an origin (RFC 6454) as for an exact entry.
type siteSuffix struct{ scheme, suffix, port string }

// CheckAllowedOrigins reports the first entry of an Options.AllowedOrigins
// list that New would refuse, so a configuration can be checked before
// anything is started.
func CheckAllowedOrigins(list []string) error {
	_, err := newOriginPolicy(list)
	return err
}

// newOriginPolicy parses an allow-list: "*" for every origin, exact origins
// (scheme://host[:port]) and wildcard subdomains (scheme://*.example.com).
func newOriginPolicy(list []string) (*originPolicy, error) {
	p := &originPolicy{exact: map[string]bool{}}
	for _, entry := range list {
		entry = strings.TrimSpace(entry)
		switch {
		case entry == "":
			continue
		case entry == "*":
			p.any = true
			continue
		}
		u, err := url.Parse(entry)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("allowed origin %q: want *, scheme://host[:port] or scheme://*.domain", entry)
		}
		host := strings.ToLower(u.Host)
		if strings.ContainsFunc(host, func(r rune) bool { return r > 0x7f }) {
			// Browsers send the host in its ASCII form: this entry would never match.
			return nil, fmt.Errorf("allowed origin %q: write the host in its ASCII (punycode) form, xn--…, as browsers send it", entry)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			domain, port := splitPort(withoutDefaultPort(u.Scheme, rest))
			if domain == "" || strings.Contains(domain, "*") {
				return nil, fmt.Errorf("allowed origin %q: a wildcard must be followed by a domain", entry)
			}
			p.domains = append(p.domains, siteSuffix{scheme: u.Scheme, suffix: "." + domain, port: port})
			continue
		}
		if strings.Contains(host, "*") {
			return nil, fmt.Errorf("allowed origin %q: a wildcard may only start the host (*.example.com)", entry)
		}
		p.exact[u.Scheme+"://"+withoutDefaultPort(u.Scheme, host)] = true
	}
	return p, nil
}

// splitPort splits host[:port] into the host and the port ("" when none).
func splitPort(hostport string) (host, port string) {
	if i := strings.LastIndexByte(hostport, ':'); i > strings.LastIndexByte(hostport, ']') {
		return hostport[:i], hostport[i+1:]
	}
	return hostport, ""
}

func withoutDefaultPort(scheme, host string) string {
	switch {
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		return strings.TrimSuffix(host, ":80")
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		return strings.TrimSuffix(host, ":443")
	}
	return host
}

// allows reports whether r may be served, given its Origin header.
func (p *originPolicy) allows(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || p.any {
		return true
	}
	return p.allowsOrigin(origin, r.Host)
}

// crossSite reports whether r carries an Origin other than the host it was
// sent to: only those need CORS headers.
func crossSite(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || !sameHost(u.Scheme, u.Host, r.Host)
}

// sameHost reports whether an Origin's host names the request's Host,
// which may carry the scheme's default port that browsers leave out of
// Origin (a proxy's "Host: $host:$server_port", RFC 9110 §7.2).
func sameHost(scheme, originHost, requestHost string) bool {
	return withoutDefaultPort(scheme, strings.ToLower(originHost)) == withoutDefaultPort(scheme, strings.ToLower(requestHost))
}

func (p *originPolicy) allowsOrigin(origin, requestHost string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false // includes the "null" origin of sandboxed documents and files
	}
	if sameHost(u.Scheme, u.Host, requestHost) {
		return true // same origin
	}
	hostport := withoutDefaultPort(u.Scheme, strings.ToLower(u.Host))
	if p.exact[u.Scheme+"://"+hostport] {
		return true
	}
	name, port := splitPort(hostport)
	for _, d := range p.domains {
		if u.Scheme == d.scheme && port == d.port && strings.HasSuffix(name, d.suffix) {
			return true
		}
	}
	return false
}

// corsMaxAge is how long browsers may cache a preflight answer, in seconds.
const corsMaxAge = "600"

// corsExposed are the response headers, beyond the CORS-safelisted ones,
// that a cross-site page may read: when to try again (429, 503) and why
// its credentials were refused (401).
const corsExposed = "Retry-After, WWW-Authenticate"

// withCORS answers preflight requests and adds CORS headers for allowed
// cross-site origins, and refuses requests from other origins with 403
// before they run: a browser would hide the answer from the script anyway,
// but a mutation would already have happened. A WebSocket handshake of
// another version is the one exception, refused by the transport instead,
// whatever its Origin (see otherWebSocketVersion).
//
// A cross-site origin that is listed (or under a listed domain) is trusted
// with the user's cookies: its Origin is echoed with
// Access-Control-Allow-Credentials. One allowed by "*" alone is not, as the
// Fetch standard's "*" excludes credentials: it gets
// Access-Control-Allow-Origin: * and the request is served without its
// cookies (see withoutCookies), or any site the user visits could act as
// them with the cookie the browser attaches.
func (s *Server) withCORS(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.origins.allows(r) {
			if otherWebSocketVersion(r) {
				next(w, r) // refused by the transport, first (see otherWebSocketVersion)
				return
			}
			// The refusal depends on the Origin, and its body on Accept.
			w.Header().Add("Vary", "Origin")
			uncacheable(w.Header())
			s.responder.reject(w, r, fallbackMedia(r), http.StatusForbidden,
				fmt.Sprintf("origin %s is not allowed here; add it to --allowed-origins", clip(r.Header.Get("Origin"))))
			return
		}
		if !crossSite(r) {
			next(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if origin := r.Header.Get("Origin"); s.origins.allowsOrigin(origin, r.Host) {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
		} else {
			h.Set("Access-Control-Allow-Origin", "*")
			r = withoutCookies(r)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			// PUT and DELETE: graphql-sse's single connection mode.
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" {
				h.Set("Access-Control-Allow-Headers", asked)
			}
			h.Set("Access-Control-Max-Age", corsMaxAge)
			s.responder.deadline.extend(w) // the header, flushed after this returns
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposed)
		next(w, r)
	}
}

// otherWebSocketVersion reports whether r is a WebSocket upgrade naming
// only versions other than 13, which withCORS lets through whatever its
// Origin: the WebSocket transport refuses it before anything else, with
// 400 and Sec-WebSocket-Version: 13 (wsTransport.Do), since a client of
// another version cannot tell what else to change until it knows to retry
// with version 13 (RFC 6455 section 4.2.2). A 403 would not name the
// version. Nothing runs for such a request, so its Origin needs no check,
// and it gets no CORS headers: a browser speaks version 13 only.
func otherWebSocketVersion(r *http.Request) bool {
	return isWebSocketUpgrade(r) && offersOtherVersionsOnly(r)
}

// withoutCookies returns r without its Cookie header, for a cross-site
// request whose cookies must not authenticate it. The judgement is carried
// by the request itself, not by its context, so that it holds wherever the
// request's headers go: to any Authenticator (auth.JWT's --jwt-cookie, or
// one reading a cookie of its own), to a WebSocket upgrade's credentials,
// and through the Relay, which hands a graphql-sse request's headers to the
// replica holding its stream, where it is authenticated again. r itself is
// left as it is (a handler must not modify its request).
func withoutCookies(r *http.Request) *http.Request {
	if _, ok := r.Header["Cookie"]; !ok {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	r2.Header.Del("Cookie")
	return r2
}
