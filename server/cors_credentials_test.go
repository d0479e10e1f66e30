package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
)

// cookieJWT is an HS256 authenticator that also reads the token from the
// cookie herald_token (--jwt-cookie), and what signs its tokens for alice,
// expiring at exp (unix seconds).
func cookieJWT(t *testing.T) (*auth.JWT, func(exp int64) string) {
	t.Helper()
	secret := []byte(strings.Repeat("s", 32))
	authn, err := auth.NewJWT(context.Background(), auth.JWTOptions{Secret: secret, CookieName: "herald_token"})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(exp int64) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": exp}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	return authn, sign
}

// year2100 is an expiry the tests' tokens do not reach.
const year2100 = 4102444800

// TestRefusedTokenChallenge: a 401 answers a token that was sent and
// refused, and RFC 6750 section 3.1 has its challenge say
// error="invalid_token", so that the client gets a new token rather than
// retrying this one: on every transport that answers 401, the token in a
// header or in the cookie. A request without a token is anonymous and is
// challenged by nobody.
func TestRefusedTokenChallenge(t *testing.T) {
	authn, sign := cookieJWT(t)
	s, _ := newTestServer(t, func(o *Options) { o.Authenticator = authn })
	expired, good := sign(1000), sign(year2100)
	const query = `{"query":"{ whoami }"}`
	const sub = `{"query":"subscription { ticks }"}`
	for _, tc := range []struct {
		name string
		q    request
	}{
		{"malformed bearer", post(query).with("Authorization", "Bearer x.y.z")},
		{"expired bearer", post(query).with("Authorization", "Bearer "+expired)},
		{"tampered bearer", post(query).with("Authorization", "Bearer "+good+"x")},
		{"not a bearer", post(query).with("Authorization", "Basic YTpi")},
		{"expired cookie, GET", get("query", "{ whoami }").with("Cookie", "herald_token="+expired)},
		{"expired cookie, POST", post(query).with("Cookie", "herald_token="+expired)},
		{"event stream", post(sub).with("Accept", "text/event-stream").with("Authorization", "Bearer "+expired)},
		{"multipart", post(sub).with("Accept", acceptApollo4).with("Authorization", "Bearer "+expired)},
		{"single connection mode reservation", request{method: http.MethodPut, target: "/graphql"}.
			with("Authorization", "Bearer "+expired)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := send(t, s, tc.q)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401; body %s", w.Code, w.Body)
			}
			if got, want := w.Header().Get("WWW-Authenticate"), `Bearer realm="herald", error="invalid_token"`; got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
		})
	}
	if w := send(t, s, post(query)); w.Code != http.StatusOK || w.Header().Get("WWW-Authenticate") != "" {
		t.Errorf("anonymous request: %d, WWW-Authenticate %q; want 200 without a challenge", w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

// TestWildcardOriginWithoutCredentials: "*" lets any page call Herald, but
// not with the user's cookie (the Fetch standard's "*" excludes
// credentials): such a cross-site request gets Access-Control-Allow-Origin:
// * without Access-Control-Allow-Credentials, and runs as if it carried no
// cookie, while a token the page holds itself still counts. A listed
// origin's page keeps the cookie, next to "*" too, and a same-origin page
// is not cross-site at all. Otherwise every site the user visits could act
// as them and read the answer.
func TestWildcardOriginWithoutCredentials(t *testing.T) {
	const listed = "https://app.example.com"
	authn, sign := cookieJWT(t)
	tok := sign(year2100)
	wildcard, _ := newTestServer(t, func(o *Options) { o.Authenticator = authn; o.AllowedOrigins = []string{"*"} })
	both, _ := newTestServer(t, func(o *Options) { o.Authenticator = authn; o.AllowedOrigins = []string{"*", listed} })
	listedOnly, _ := newTestServer(t, func(o *Options) { o.Authenticator = authn; o.AllowedOrigins = []string{listed} })
	cookie := func(q request) request { return q.with("Cookie", "herald_token="+tok) }
	query := post(`{"query":"{ whoami }"}`)
	for _, tc := range []struct {
		name        string
		s           *Server
		q           request
		whoami      string // the data's JSON
		allowOrigin string // Access-Control-Allow-Origin
		credentials bool   // Access-Control-Allow-Credentials: true
	}{
		{"*: another site's cookie", wildcard, cookie(query.with("Origin", "https://evil.example")), `{"whoami":null}`, "*", false},
		{"*: a sandboxed page's cookie", wildcard, cookie(query.with("Origin", "null")), `{"whoami":null}`, "*", false},
		{"*: another site's cookie, GET", wildcard, cookie(get("query", "{ whoami }").with("Origin", "https://evil.example")),
			`{"whoami":null}`, "*", false},
		{"*: another site's bearer token", wildcard, query.with("Origin", "https://evil.example").with("Authorization", "Bearer "+tok),
			`{"whoami":"alice"}`, "*", false},
		{"*: the same origin's cookie", wildcard, cookie(query.with("Origin", "http://example.com")), `{"whoami":"alice"}`, "", false},
		{"*: no Origin", wildcard, cookie(query), `{"whoami":"alice"}`, "", false},
		{"* and a listed origin: its cookie", both, cookie(query.with("Origin", listed)), `{"whoami":"alice"}`, listed, true},
		{"* and a listed origin: another site's cookie", both, cookie(query.with("Origin", "https://evil.example")),
			`{"whoami":null}`, "*", false},
		{"a listed origin's cookie", listedOnly, cookie(query.with("Origin", listed)), `{"whoami":"alice"}`, listed, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := send(t, tc.s, tc.q)
			var body struct{ Data json.RawMessage }
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || w.Code != http.StatusOK || string(body.Data) != tc.whoami {
				t.Fatalf("%d %s, want 200 with data %s", w.Code, w.Body, tc.whoami)
			}
			h := w.Header()
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.allowOrigin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.allowOrigin)
			}
			if got := h.Get("Access-Control-Allow-Credentials") == "true"; got != tc.credentials {
				t.Errorf("Access-Control-Allow-Credentials %q, want credentials %v", h.Get("Access-Control-Allow-Credentials"), tc.credentials)
			}
			if tc.allowOrigin != "" && h.Get("Vary") != "Origin" {
				t.Errorf("Vary %q, want Origin", h.Get("Vary"))
			}
		})
	}
	t.Run("*: preflight", func(t *testing.T) {
		w := send(t, wildcard, request{method: http.MethodOptions, target: "/graphql"}.
			with("Origin", "https://evil.example").with("Access-Control-Request-Method", "POST").
			with("Access-Control-Request-Headers", "content-type, authorization"))
		h := w.Header()
		if w.Code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Credentials") != "" ||
			h.Get("Access-Control-Allow-Headers") != "content-type, authorization" {
			t.Errorf("preflight: %d, headers %v; want 204 allowing * without credentials", w.Code, h)
		}
	})
}

// TestWildcardOriginSocketCookie: a browser sends its cookies with a
// WebSocket upgrade from any site, and "*" lets any site upgrade, so the
// cookie of an upgrade allowed by "*" alone does not authenticate the
// socket (cross-site WebSocket hijacking); the token a page sends in
// connection_init does. A listed origin's upgrade keeps its cookie.
func TestWildcardOriginSocketCookie(t *testing.T) {
	const listed = "https://app.example.com"
	authn, sign := cookieJWT(t)
	tok := sign(year2100)
	s, _ := newTestServer(t, func(o *Options) { o.Authenticator = authn; o.AllowedOrigins = []string{"*", listed} })
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	for _, tc := range []struct {
		name, origin, initToken, whoami string
	}{
		{"another site's cookie", "https://evil.example", "", `{"whoami":null}`},
		{"another site's connection_init token", "https://evil.example", "Bearer " + tok, `{"whoami":"alice"}`},
		{"a listed origin's cookie", listed, "", `{"whoami":"alice"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
			h := http.Header{"Origin": {tc.origin}, "Cookie": {"herald_token=" + tok}}
			conn, resp, err := d.Dial("ws"+strings.TrimPrefix(hs.URL, "http")+"/graphql", h)
			if err != nil {
				t.Fatalf("upgrade: %v (response %v)", err, resp)
			}
			defer conn.Close()
			c := &wsClient{t: t, conn: conn}
			payload := map[string]any{}
			if tc.initToken != "" {
				payload["Authorization"] = tc.initToken
			}
			c.send(map[string]any{"type": "connection_init", "payload": payload})
			c.expectType("connection_ack")
			c.subscribe("subscribe", "1", "{ whoami }", nil)
			f := c.expectType("next")
			var data json.RawMessage
			f.data(t, &data)
			if string(data) != tc.whoami {
				t.Errorf("data %s, want %s", data, tc.whoami)
			}
		})
	}
}

// TestWithoutCookiesLeavesRequest: the cookie is dropped from a copy, as a
// handler must not modify the request it was given.
func TestWithoutCookiesLeavesRequest(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
	r.Header.Set("Cookie", "herald_token=x")
	r.Header.Set("Authorization", "Bearer y")
	r2 := withoutCookies(r)
	if r2.Header.Get("Cookie") != "" || r2.Header.Get("Authorization") != "Bearer y" {
		t.Errorf("copy's headers %v, want the Authorization header without the Cookie", r2.Header)
	}
	if r.Header.Get("Cookie") != "herald_token=x" {
		t.Errorf("the request's own Cookie header changed to %q", r.Header.Get("Cookie"))
	}
	if plain := httptest.NewRequest(http.MethodPost, "/graphql", nil); withoutCookies(plain) != plain {
		t.Error("a request without cookies was copied")
	}
}

// TestCrossOriginExposedHeaders: a cross-site page can read Retry-After
// (429, 503) and WWW-Authenticate (401), which are not CORS-safelisted
// response headers, only if Access-Control-Expose-Headers names them.
func TestCrossOriginExposedHeaders(t *testing.T) {
	const origin = "https://app.example.com"
	authn, sign := cookieJWT(t)
	tok := sign(year2100)
	for _, allowed := range [][]string{{origin}, {"*"}} {
		s, _ := newTestServer(t, func(o *Options) {
			o.Authenticator = authn
			o.AllowedOrigins = allowed
			o.Limits.MutationRate = 1
		})
		mutate := post(`{"query":"mutation { bump }"}`).with("Origin", origin).with("Authorization", "Bearer "+tok)
		var limited http.Header
		for range 5 {
			if w := send(t, s, mutate); w.Code == http.StatusTooManyRequests {
				limited = w.Header()
				break
			}
		}
		if limited == nil {
			t.Fatalf("%v: no 429 within 5 mutations at a mutation rate of 1", allowed)
		}
		unauthorized := send(t, s, post(`{"query":"{ whoami }"}`).with("Origin", origin).with("Authorization", "Bearer x.y.z"))
		if unauthorized.Code != http.StatusUnauthorized {
			t.Fatalf("%v: bad token answered %d, want 401", allowed, unauthorized.Code)
		}
		for _, c := range []struct {
			what, header string
			h            http.Header
		}{{"429", "Retry-After", limited}, {"401", "WWW-Authenticate", unauthorized.Header()}} {
			if c.h.Get(c.header) == "" {
				t.Fatalf("%v: %s without %s: %v", allowed, c.what, c.header, c.h)
			}
			exposed := strings.Split(strings.ToLower(strings.Join(c.h.Values("Access-Control-Expose-Headers"), ",")), ",")
			found := false
			for _, e := range exposed {
				found = found || strings.TrimSpace(e) == strings.ToLower(c.header)
			}
			if !found {
				t.Errorf("%v: cross-site %s carries %s but Access-Control-Expose-Headers is %q", allowed, c.what, c.header,
					c.h.Values("Access-Control-Expose-Headers"))
			}
		}
	}
}

// TestNoSniff: every body Herald writes says X-Content-Type-Options:
// nosniff, so that a browser never takes one (whose error messages may
// echo the request's text) for a script or a page: GraphQL answers and
// refusals, streams, the stream token, and the other endpoints.
func TestNoSniff(t *testing.T) {
	s, _ := newTestServer(t, nil)
	sub := post(`{"query":"subscription { ticks }"}`)
	for name, q := range map[string]request{
		"GET query error":     get("query", `{ nope_<script>alert(1)</script> }`),
		"POST bad JSON":       post(`<html><script>alert(1)</script>`),
		"POST result":         post(`{"query":"{ whoami }"}`),
		"refused origin":      post(`{"query":"{ whoami }"}`).with("Origin", "null"),
		"bad credentials":     post(`{"query":"{ whoami }"}`).with("X-Herald-User", strings.Repeat("a", 100)),
		"event stream":        sub.with("Accept", "text/event-stream"),
		"multipart stream":    sub.with("Accept", acceptApollo4),
		"stream reservation":  {method: http.MethodPut, target: "/graphql"},
		"method not allowed":  {method: http.MethodPatch, target: "/graphql"},
		"not found":           {method: http.MethodGet, target: "/x<script>"},
		"healthz":             {method: http.MethodGet, target: "/healthz"},
		"readyz":              {method: http.MethodGet, target: "/readyz"},
		"metrics":             {method: http.MethodGet, target: "/metrics"},
		"metrics, wrong verb": {method: http.MethodPost, target: "/metrics"},
	} {
		w := send(t, s, q)
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: %d %s without X-Content-Type-Options: nosniff (got %q)", name, w.Code, w.Header().Get("Content-Type"), got)
		}
	}
}
