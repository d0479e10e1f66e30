package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestOriginEntries: what an --allowed-origins entry may be. An origin has
// no query, fragment or (beyond "/") path; a trailing "/" is tolerated;
// host names match regardless of case; a wildcard needs a domain after
// "*.".
func TestOriginEntries(t *testing.T) {
	for _, bad := range []string{"https://x.example?a=1", "https://x.example#top", "https://*.", "https://*.:8443"} {
		if _, err := newOriginPolicy([]string{bad}); err == nil {
			t.Errorf("allowed origin %q accepted, want it refused", bad)
		}
	}
	for _, tt := range []struct{ entry, origin string }{
		{"https://app.example.com/", "https://app.example.com"},
		{"https://APP.Example.com", "https://app.example.com"},
		{"https://*.Example.ORG", "https://a.example.org"},
	} {
		p, err := newOriginPolicy([]string{tt.entry})
		if err != nil {
			t.Errorf("allowed origin %q refused: %v", tt.entry, err)
			continue
		}
		if !p.allowsOrigin(tt.origin, "herald.internal") {
			t.Errorf("allowed origins [%s]: origin %s refused, want it allowed", tt.entry, tt.origin)
		}
	}
}

// TestUnparseableOriginIsCrossSite: an Origin that does not parse names no
// host, so it is never same-origin: under "*" it is served as a cross-site
// request, with Access-Control-Allow-Origin: * and without its cookie.
func TestUnparseableOriginIsCrossSite(t *testing.T) {
	for _, origin := range []string{"http://[::1", "http://a b.example", "http://%zz"} {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Origin", origin)
		if !crossSite(r) {
			t.Errorf("Origin %q: crossSite false, want true", origin)
		}
	}
	authn, sign := cookieJWT(t)
	tok := sign(year2100)
	s, _ := newTestServer(t, func(o *Options) { o.Authenticator = authn; o.AllowedOrigins = []string{"*"} })
	w := send(t, s, post(`{"query":"{ whoami }"}`).with("Origin", "http://[::1").with("Cookie", "herald_token="+tok))
	var body struct{ Data json.RawMessage }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusOK || string(body.Data) != `{"whoami":null}` {
		t.Errorf("cookie with an unparseable Origin under *: %d %s, want 200 with whoami null (cookie dropped)", w.Code, w.Body)
	}
	if got := w.Header().Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("Access-Control-Allow-Origin %q, want *", got)
	}
}
