package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// bodyOfSize is a POST body of exactly n bytes.
func bodyOfSize(t *testing.T, n int) string {
	t.Helper()
	const frame = `{"query":"{ whoami }","variables":{"pad":""}}`
	if n < len(frame) {
		t.Fatalf("a body of %d bytes is too short", n)
	}
	return `{"query":"{ whoami }","variables":{"pad":"` + strings.Repeat("x", n-len(frame)) + `"}}`
}

// TestHTTPBodyAtItsLimit: a body of exactly MaxBodyBytes is served
// whether its length is announced or not, and one byte more is 413 either
// way (README: "an oversized body is 413").
func TestHTTPBodyAtItsLimit(t *testing.T) {
	s, _ := newTestServer(t, nil)
	for _, announced := range []bool{true, false} {
		for _, n := range []int{testMaxBody, testMaxBody + 1} {
			t.Run(fmt.Sprintf("%d bytes, length announced %v", n, announced), func(t *testing.T) {
				r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(bodyOfSize(t, n)))
				r.Header.Set("Content-Type", "application/json")
				if !announced {
					r.ContentLength = -1 // chunked: only reading finds its size
				}
				w := httptest.NewRecorder()
				s.ServeHTTP(w, r)
				if n <= testMaxBody {
					check(t, w, want{status: 200, contentType: ctJSON, data: `{"whoami":null}`})
				} else {
					check(t, w, want{status: 413, contentType: ctJSON,
						err: fmt.Sprintf("exceeds the limit of %d bytes", testMaxBody), code: codeBadRequest})
				}
			})
		}
	}
}

// stalledBody is a request body whose read times out, as a
// connection's read deadline makes it.
type stalledBody struct{}

func (stalledBody) Read([]byte) (int, error) {
	return 0, fmt.Errorf("read tcp 127.0.0.1:8080->127.0.0.1:5555: %w", os.ErrDeadlineExceeded)
}

// TestHTTPStalledBodyIs408: a body that does not arrive within the
// read timeout is 408 with the code every refusal of a request the server
// cannot take has (README: "... within the server's read timeout ...: 400,
// 405, 406, 408, 413, 415" are BAD_REQUEST), and its error's text, which
// names both ends' addresses, is not passed on.
func TestHTTPStalledBodyIs408(t *testing.T) {
	s, _ := newTestServer(t, nil)
	r := httptest.NewRequest(http.MethodPost, "/graphql", io.NopCloser(stalledBody{}))
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = -1
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	check(t, w, want{status: 408, contentType: ctJSON, err: "did not arrive in time", code: codeBadRequest})
	if strings.Contains(w.Body.String(), "127.0.0.1") {
		t.Errorf("the answer names an address: %s", w.Body.String())
	}
}

// TestHTTPReservationLimitIsRateLimited: a PUT beyond a user's
// stream reservations is 429 with Retry-After and the code RATE_LIMITED,
// the code of every other 429 (a mutation beyond the rate), so that a
// client can switch on it.
func TestHTTPReservationLimitIsRateLimited(t *testing.T) {
	s, _ := newTestServer(t, nil)
	put := request{method: http.MethodPut, target: "/graphql"}.with("X-Herald-User", "alice")
	for i := range maxUserReservations {
		if w := send(t, s, put); w.Code != http.StatusCreated {
			t.Fatalf("reservation %d: %d %s, want 201", i+1, w.Code, w.Body.String())
		}
	}
	w := send(t, s, put)
	check(t, w, want{status: 429, contentType: ctJSON, err: "stream reservations not yet opened", code: codeRateLimited})
	if w.Header().Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
}

// unreachableRelay is a Relay that cannot reach any other replica
// (NATS down, say).
type unreachableRelay struct{ Relay }

func (unreachableRelay) Send(context.Context, string, RelayMessage) (RelayMessage, error) {
	return RelayMessage{}, errors.New("nats: connection closed")
}

// TestHTTPUnreachableHolderIsUnavailable: an operation for a
// stream whose replica cannot be reached is 502 with the code UNAVAILABLE
// (respond.go's statusCode: 502 and 503 are UNAVAILABLE), which a client
// retries on, not an error without a code.
func TestHTTPUnreachableHolderIsUnavailable(t *testing.T) {
	relay := NewLocalRelay()
	a := newReplica(t, func(o *Options) { o.Relay = relay })
	b := newReplica(t, func(o *Options) { o.Relay = unreachableRelay{relay} })
	token := a.reserve("ann")
	a.openSingle(token, "ann")
	status, body := b.operation(token, "ann", "op1", `{ __typename }`, nil)
	if status != http.StatusBadGateway {
		t.Fatalf("%d %s, want 502", status, body)
	}
	var resp struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Errors) == 0 {
		t.Fatalf("body %s: want GraphQL errors (%v)", body, err)
	}
	if code := resp.Errors[0].Extensions["code"]; code != "UNAVAILABLE" {
		t.Errorf("extensions.code = %v, want UNAVAILABLE; body %s", code, body)
	}
}

// TestHTTPQueryStringAtItsLimit: a GET's query string of exactly
// the body limit is served; one byte more is 414.
func TestHTTPQueryStringAtItsLimit(t *testing.T) {
	s, _ := newTestServer(t, nil)
	base := "query=%7B%20whoami%20%7D&pad="
	exact := base + strings.Repeat("x", testMaxBody-len(base))
	check(t, send(t, s, request{method: http.MethodGet, target: "/graphql?" + exact}),
		want{status: 200, contentType: ctJSON, data: `{"whoami":null}`})
	check(t, send(t, s, request{method: http.MethodGet, target: "/graphql?" + exact + "x"}),
		want{status: 414, contentType: ctJSON, err: "query string exceeds the limit", code: codeBadRequest})
}

// TestHTTPIdentityCodingAnyCase: content codings are
// case-insensitive (RFC 9110 section 8.4.1): "Identity" is no coding, and
// the body is served, while "GZIP" is still refused with 415.
func TestHTTPIdentityCodingAnyCase(t *testing.T) {
	s, _ := newTestServer(t, nil)
	check(t, send(t, s, post(`{"query":"{ whoami }"}`).with("Content-Encoding", "Identity")),
		want{status: 200, contentType: ctJSON, data: `{"whoami":null}`})
	check(t, send(t, s, post(`{"query":"{ whoami }"}`).with("Content-Encoding", "GZIP")),
		want{status: 415, contentType: ctJSON, err: "Content-Encoding", code: codeBadRequest})
}

// TestHTTPVariablesAtTheirLimit: variables of exactly
// MaxVariablesBytes of compact JSON are served; one byte more is 413.
func TestHTTPVariablesAtTheirLimit(t *testing.T) {
	const limit = 100
	s, _ := newTestServer(t, func(o *Options) { o.Limits.MaxVariablesBytes = limit })
	body := func(n int) string {
		// {"s":"xx…"} takes 8+n bytes as compact JSON.
		return `{"query":"query($s: String) { echo(s: $s) }","variables":{"s":"` + strings.Repeat("x", n) + `"}}`
	}
	if w := send(t, s, post(body(limit-8))); w.Code != http.StatusOK || strings.Contains(w.Body.String(), "errors") {
		t.Errorf("variables of exactly %d bytes: %d %s, want 200 with data", limit, w.Code, w.Body.String())
	}
	check(t, send(t, s, post(body(limit-7))), want{status: 413, contentType: ctJSON,
		err: fmt.Sprintf("more than the limit of %d", limit), code: codeBadRequest})
}

// TestHTTPOnlyJSONBodies: a POST body is read only as
// application/json. Other application/ types are 415, among them
// application/x-www-form-urlencoded, which a page of any site can send
// cross-site without a preflight: served, it would run a mutation with the
// user's cookies (CSRF) before any CORS check could hide the answer.
func TestHTTPOnlyJSONBodies(t *testing.T) {
	s, _ := newTestServer(t, nil)
	for _, ct := range []string{"application/x-www-form-urlencoded", "application/graphql", "application/graphql-response+json"} {
		t.Run(ct, func(t *testing.T) {
			check(t, send(t, s, post(`{"query":"mutation { bump }"}`).with("Content-Type", ct)),
				want{status: 415, contentType: ctJSON, err: "unsupported Content-Type", code: codeBadRequest})
		})
	}
}

// TestHTTPShapeLimitsAtTheirBound: a document exactly at
// Limits.MaxDepth or Limits.MaxComplexity runs; one level or one field
// more is refused with the limit's code.
func TestHTTPShapeLimitsAtTheirBound(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) {
		o.Introspection = true
		o.Limits.MaxDepth = 3
		o.Limits.MaxComplexity = 4
	})
	// The fake schema resolves no introspection (null): what matters is
	// that the document runs, unrefused.
	if w := send(t, s, post(`{"query":"{ __schema { queryType { name } } }"}`).accepting()); w.Code != http.StatusOK ||
		strings.Contains(w.Body.String(), "limit") {
		t.Errorf("document 3 levels deep: %d %s, want it run", w.Code, w.Body.String())
	}
	check(t, send(t, s, post(`{"query":"{ __schema { queryType { fields { name } } } }"}`).accepting()),
		want{status: 400, contentType: ctResponse, err: "more than the limit of 3", code: codeDepthExceeded})
	check(t, send(t, s, post(`{"query":"{ whoami a: whoami b: whoami c: whoami }"}`).accepting()),
		want{status: 200, contentType: ctResponse, data: `{"whoami":null,"a":null,"b":null,"c":null}`})
	check(t, send(t, s, post(`{"query":"{ whoami a: whoami b: whoami c: whoami d: whoami }"}`).accepting()),
		want{status: 400, contentType: ctResponse, err: "more than the limit of 4", code: codeComplexityExceeded})
}

// TestHTTPOptionsWithoutPreflight: an OPTIONS request from an
// allowed origin that is no CORS preflight (no
// Access-Control-Request-Method, Fetch standard section 3.2.2) is answered
// as any method /graphql does not take, 405 naming what it takes, not with
// a preflight's 204.
func TestHTTPOptionsWithoutPreflight(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) { o.AllowedOrigins = []string{"https://app.example.com"} })
	req := request{method: http.MethodOptions, target: "/graphql"}.with("Origin", "https://app.example.com")
	check(t, send(t, s, req), want{status: 405, contentType: ctJSON, err: "method OPTIONS is not allowed", code: codeBadRequest,
		header: map[string]string{"Allow": "GET, POST, PUT, DELETE", "Access-Control-Allow-Origin": "https://app.example.com"}})
	// The same with Access-Control-Request-Method is a preflight.
	w := send(t, s, req.with("Access-Control-Request-Method", "POST"))
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Methods") == "" {
		t.Errorf("preflight: %d, Access-Control-Allow-Methods %q; want 204 naming the methods", w.Code, w.Header().Get("Access-Control-Allow-Methods"))
	}
	// Browsers cache it for Access-Control-Max-Age (else 5 s, a preflight
	// before nearly every request).
	if got := w.Header().Get("Access-Control-Max-Age"); got != corsMaxAge {
		t.Errorf("preflight: Access-Control-Max-Age %q, want %q", got, corsMaxAge)
	}
}

// TestHTTPShapeRefusalOfUnchosenOperation: a GET whose document
// holds a mutation and a query, with no operationName, runs neither: over
// the complexity limit it is refused for that (400), not as a mutation
// sent with GET (405), since no operation was chosen.
func TestHTTPShapeRefusalOfUnchosenOperation(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) { o.Limits.MaxComplexity = 1 })
	check(t, send(t, s, get("query", "mutation M { bump } query Q { whoami a: whoami }").accepting()),
		want{status: 400, contentType: ctResponse, err: "more than the limit of 1", code: codeComplexityExceeded})
	// With operationName naming the mutation, it is the GET's 405.
	check(t, send(t, s, get("query", "mutation M { bump } query Q { whoami a: whoami }", "operationName", "M").accepting()),
		want{status: 405, contentType: ctResponse, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}})
}

// TestHTTPRelayStatusHeaderStaysInside: an operation relayed to
// the replica holding its stream is answered with the holder's status, and
// the header that carried it between the replicas is not passed on.
func TestHTTPRelayStatusHeaderStaysInside(t *testing.T) {
	relay := NewLocalRelay()
	a := newReplica(t, func(o *Options) { o.Relay = relay })
	b := newReplica(t, func(o *Options) { o.Relay = relay })
	token := a.reserve("ann")
	a.openSingle(token, "ann")
	body, _ := json.Marshal(map[string]any{"query": "{ __typename }", "extensions": map[string]any{"operationId": "op1"}})
	req, _ := http.NewRequest(http.MethodPost, b.http.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Herald-User", "ann")
	req.Header.Set(streamTokenHeader, token)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("relayed operation: %d, want 202", resp.StatusCode)
	}
	for k := range resp.Header {
		if strings.HasPrefix(strings.ToLower(k), "herald-relay") {
			t.Errorf("the answer carries the relay's header %s: %q", k, resp.Header.Values(k))
		}
	}
}

// TestHTTPMalformedContentType: a Content-Type that does not parse
// is 415 saying so, even when it begins with application/json.
func TestHTTPMalformedContentType(t *testing.T) {
	s, _ := newTestServer(t, nil)
	check(t, send(t, s, post(`{"query":"{ whoami }"}`).with("Content-Type", "application/json; =utf-8")),
		want{status: 415, contentType: ctJSON, err: "malformed Content-Type", code: codeBadRequest})
}
