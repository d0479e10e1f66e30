package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// firstErrorCode decodes a GraphQL response body and returns its first
// error's extensions.code ("" when it has none).
func firstErrorCode(t *testing.T, body []byte) string {
	t.Helper()
	var resp struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Errors) == 0 {
		t.Fatalf("not a GraphQL error response (%v): %s", err, body)
	}
	code, _ := resp.Errors[0].Extensions["code"].(string)
	return code
}

// TestUnavailableAuthCarriesCode shows that a request whose credentials
// cannot be checked is answered 503 with code UNAVAILABLE however it came,
// as every request refused as a whole carries a code. Only a WebSocket
// upgrade had it; a POST, a GET, an event stream or a multipart stream
// (runner.authenticate) got an error without a code.
func TestUnavailableAuthCarriesCode(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) { o.Authenticator = failing{} })
	stream := func(accept string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"subscription { ticks }"}`))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("Accept", accept)
		return r
	}
	cases := []struct {
		name string
		req  func() *http.Request
	}{
		{"WebSocket upgrade", func() *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
			r.Header.Set("Connection", "Upgrade")
			r.Header.Set("Upgrade", "websocket")
			r.Header.Set("Sec-WebSocket-Version", "13")
			r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			r.Header.Set("Sec-WebSocket-Protocol", subprotocolTransportWS)
			r.Header.Set("Authorization", "Bearer x")
			return r
		}},
		{"POST query", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ whoami }"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}},
		{"GET query", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/graphql?query=%7B%20whoami%20%7D", nil)
		}},
		{"event stream", func() *http.Request { return stream(mediaEventStream) }},
		{"multipart stream", func() *http.Request { return stream(acceptApollo4) }},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.ServeHTTP(w, tt.req())
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503; body %s", w.Code, w.Body)
			}
			if code := firstErrorCode(t, w.Body.Bytes()); code != "UNAVAILABLE" {
				t.Errorf("503 (credentials cannot be checked) has extensions.code %q, want UNAVAILABLE; body %s", code, w.Body)
			}
		})
	}
}

// aliasedPosts is a mutation of n postMessage fields, aliased.
func aliasedPosts(n int) string {
	var b strings.Builder
	b.WriteString(`mutation($r: ID!) {`)
	for i := range n {
		fmt.Fprintf(&b, ` p%d: postMessage(roomId: $r, text: "m%d") { id }`, i, i)
	}
	b.WriteString(` }`)
	return b.String()
}

// TestMutationRateCountsMutations shows that --mutation-rate counts the
// mutations an operation runs (its root fields), not the operation: one
// request of n aliased postMessage fields posted n messages for one token,
// so a user limited to 1 a second with a burst of 2 posted 40 in one
// request. Now an operation of more mutations than the burst is refused
// (LIMIT_EXCEEDED; no wait allows it), and one within it spends a token
// for each.
func TestMutationRateCountsMutations(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MutationRate = 1
		o.Limits.MutationBurst = 2
	})
	room := r.room("aliases")
	vars := map[string]any{"r": room}
	posted := func(body map[string]any) int {
		n := 0
		if data, ok := body["data"].(map[string]any); ok {
			for _, v := range data {
				if v != nil {
					n++
				}
			}
		}
		return n
	}
	code := func(body map[string]any) string {
		errs, _ := body["errors"].([]any)
		if len(errs) == 0 {
			return ""
		}
		ext, _ := errs[0].(map[string]any)["extensions"].(map[string]any)
		c, _ := ext["code"].(string)
		return c
	}

	status, _, body := r.graphqlPost("alice", aliasedPosts(40), vars, nil)
	if n := posted(body); n != 0 || code(body) != "LIMIT_EXCEEDED" {
		t.Fatalf("40 mutations in one request, burst 2: status %d, %d posted, code %q; want none posted and LIMIT_EXCEEDED", status, n, code(body))
	}
	status, _, body = r.graphqlPost("bob", aliasedPosts(2), vars, nil)
	if n := posted(body); status != http.StatusOK || n != 2 {
		t.Fatalf("2 mutations in one request, burst 2: status %d, %d posted; want both", status, n)
	}
	status, _, body = r.graphqlPost("bob", aliasedPosts(1), vars, nil)
	if status != http.StatusTooManyRequests || code(body) != "RATE_LIMITED" {
		t.Fatalf("a third mutation right after two in one request: status %d, code %q; want 429 RATE_LIMITED", status, code(body))
	}

	// The same over a WebSocket.
	c := r.dialTransport("carol")
	c.subscribe("subscribe", "m", aliasedPosts(3), vars)
	f := c.next()
	for f.keepalive() {
		f = c.next()
	}
	if f.Type != "error" || !strings.Contains(string(f.raw), "LIMIT_EXCEEDED") {
		t.Fatalf("3 mutations over a socket, burst 2: %s, want an error frame with LIMIT_EXCEEDED", f.raw)
	}
}
