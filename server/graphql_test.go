package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

const (
	helloQuery = `query($name: String!) { hello(name: $name) }`
	helloBody  = `{"query":"query($name: String!) { hello(name: $name) }","variables":{"name":"Ada"}}`
	helloData  = `{"hello":"hi Ada"}`
)

// graphQLCases are the /graphql exchanges that need no state. They run in
// sequence against one server, so each bad request is also followed by the
// good requests after it.
var graphQLCases = []struct {
	name string
	req  request
	want want
}{
	// Successful execution.
	{"POST ok as application/json", post(helloBody),
		want{status: 200, contentType: ctJSON, data: helloData}},
	{"POST ok as graphql-response+json", post(helloBody).accepting(),
		want{status: 200, contentType: ctResponse, data: helloData}},
	{"POST ok with charset and */*", post(helloBody).with("Content-Type", "application/json; charset=UTF-8").with("Accept", "*/*"),
		want{status: 200, contentType: ctJSON, data: helloData}},
	{"POST ok with application/*", post(helloBody).with("Accept", "application/*"),
		want{status: 200, contentType: ctJSON, data: helloData}},
	{"POST ok with null members", post(`{"query":"{ whoami }","operationName":null,"variables":null,"extensions":null,"id":7}`),
		want{status: 200, contentType: ctJSON, data: `{"whoami":null}`}},
	{"GET query ok", get("query", helloQuery, "variables", `{"name":"Ada"}`),
		want{status: 200, contentType: ctJSON, data: helloData}},
	{"GET query ok as graphql-response+json", get("query", helloQuery, "variables", `{"name":"Ada"}`).accepting(),
		want{status: 200, contentType: ctResponse, data: helloData}},
	{"GET picks the query by operationName", get("query", "query Q { whoami } mutation M { bump }", "operationName", "Q"),
		want{status: 200, contentType: ctJSON, data: `{"whoami":null}`}},
	{"POST mutation", post(`{"query":"mutation { bump }"}`).accepting(),
		want{status: 200, contentType: ctResponse, data: `{"bump":1}`}},

	// Methods.
	// An operation the request cannot carry is BAD_REQUEST: 405 for GET,
	// which the spec requires; otherwise the status of every request
	// error, 200 as application/json and 400 as graphql-response+json.
	{"GET mutation", get("query", "mutation { bump }"),
		want{status: 405, contentType: ctJSON, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
	{"GET mutation by operationName", get("query", "query Q { whoami } mutation M { bump }", "operationName", "M").accepting(),
		want{status: 405, contentType: ctResponse, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
	// The document and operationName say a mutation is to run: 405 however
	// wrong its variables are (graphql-http checks them after, in execute).
	{"GET mutation without its variable", get("query", "mutation($s: Boolean!) { bump @skip(if: $s) }"),
		want{status: 405, contentType: ctJSON, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
	{"GET mutation with a variable of the wrong type", get("query", "query Q { whoami } mutation M($s: Boolean!) { bump @skip(if: $s) }",
		"operationName", "M", "variables", `{"s":"yes"}`).accepting(),
		want{status: 405, contentType: ctResponse, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
	// One that does not validate is a mutation all the same: its document
	// parsed, and with operationName it says what would run.
	{"GET mutation that does not validate", get("query", "mutation { nope }").accepting(),
		want{status: 405, contentType: ctResponse, err: "use POST", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
	{"GET subscription", get("query", "subscription { ticks }"),
		want{status: 405, contentType: ctJSON, err: "WebSocket", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
	{"GET subscription as graphql-response+json", get("query", "subscription { ticks }").accepting(),
		want{status: 405, contentType: ctResponse, err: "WebSocket", code: codeBadRequest, header: map[string]string{"Allow": "POST"}}},
	{"POST subscription as application/json", post(`{"query":"subscription { ticks }"}`),
		want{status: 200, contentType: ctJSON, err: "not supported over a plain HTTP request; send Accept: text/event-stream",
			code: codeBadRequest}},
	{"POST subscription as graphql-response+json", post(`{"query":"subscription { ticks }"}`).accepting(),
		want{status: 400, contentType: ctResponse, err: "not supported over a plain HTTP request; send Accept: text/event-stream",
			code: codeBadRequest}},
	{"PATCH", request{method: http.MethodPatch, target: "/graphql", body: helloBody},
		want{status: 405, contentType: ctJSON, err: "PATCH is not allowed", code: codeBadRequest, header: map[string]string{"Allow": "GET, POST, PUT, DELETE"}}},
	// HEAD would execute the GET's operation for nothing (see serveGraphQL).
	{"HEAD", request{method: http.MethodHead, target: "/graphql"},
		want{status: 405, contentType: ctJSON, err: "HEAD is not allowed", code: codeBadRequest, header: map[string]string{"Allow": "GET, POST, PUT, DELETE"}}},
	{"HEAD of a query", request{method: http.MethodHead, target: "/graphql?query=%7B%20whoami%20%7D"}.accepting(),
		want{status: 405, contentType: ctResponse, err: "HEAD is not allowed", code: codeBadRequest, header: map[string]string{"Allow": "GET, POST, PUT, DELETE"}}},
	// PUT and DELETE are graphql-sse's single connection mode (sse_single_test.go).
	{"PUT accepting no text/plain", request{method: http.MethodPut, target: "/graphql"}.accepting(),
		want{status: 406, contentType: ctJSON, err: "answers its token as text/plain", code: codeBadRequest}},
	{"DELETE without a stream token", request{method: http.MethodDelete, target: "/graphql"}.accepting(),
		want{status: 404, contentType: ctJSON, err: "stream not found", code: "NOT_FOUND"}},
	{"WebSocket upgrade without a subprotocol", get().with("Upgrade", "websocket").with("Connection", "Upgrade"),
		want{status: 400, contentType: ctJSON, err: "unsupported WebSocket subprotocol: offer graphql-transport-ws", code: codeBadRequest}},
	{"WebSocket upgrade with an unknown subprotocol", get().with("Upgrade", "websocket").with("Connection", "Upgrade").
		with("Sec-WebSocket-Protocol", "mqtt, graphql-sse"),
		want{status: 400, contentType: ctJSON, err: "unsupported WebSocket subprotocol", code: codeBadRequest}},
	// A handshake gorilla refuses is answered as every other refusal: a
	// GraphQL error saying what is wrong, and a 405 that says which method
	// a handshake takes (RFC 9110 section 15.5.6).
	{"WebSocket upgrade with POST", wsHandshake(http.MethodPost),
		want{status: 405, contentType: ctJSON, err: "request method is not GET", code: codeBadRequest,
			header: map[string]string{"Allow": "GET", "Sec-WebSocket-Version": "13"}}},
	{"WebSocket upgrade without Sec-WebSocket-Key", wsHandshake(http.MethodGet).with("Sec-WebSocket-Key", ""),
		want{status: 400, contentType: ctJSON, err: "Sec-WebSocket-Key", code: codeBadRequest, header: map[string]string{"Sec-WebSocket-Version": "13"}}},
	// Bad credentials on the upgrade request are judged at connection_init
	// (TestUpgradeCredentialsOverWebSocket), not refused here.
	{"WebSocket upgrade of an unsupported version", wsHandshake(http.MethodGet).with("Sec-WebSocket-Version", "8"),
		want{status: 400, contentType: ctJSON, err: "unsupported version", code: codeBadRequest, header: map[string]string{"Sec-WebSocket-Version": "13"}}},

	// Malformed HTTP requests: 4xx whatever the media type.
	{"malformed JSON", post(`{"query":`),
		want{status: 400, contentType: ctJSON, err: "request body is not valid JSON", code: codeBadRequest}},
	{"malformed JSON as graphql-response+json", post(`{"query": "{ whoami }",}`).accepting(),
		want{status: 400, contentType: ctResponse, err: "request body is not valid JSON", code: codeBadRequest}},
	{"trailing data", post(`{"query":"{ whoami }"} {}`),
		want{status: 400, contentType: ctJSON, err: "unexpected data after the top-level value", code: codeBadRequest}},
	{"empty body", post(""),
		want{status: 400, contentType: ctJSON, err: "request body is empty", code: codeBadRequest}},
	{"body is an array", post(`[{"query":"{ whoami }"}]`),
		want{status: 400, contentType: ctJSON, err: "request body must be a JSON object, got an array", code: codeBadRequest}},
	{"body is null", post(`null`),
		want{status: 400, contentType: ctJSON, err: "request body must be a JSON object, got null", code: codeBadRequest}},
	{"query is a number", post(`{"query":42}`),
		want{status: 400, contentType: ctJSON, err: "query must be a string, got a number", code: codeBadRequest}},
	{"operationName is an object", post(`{"query":"{ whoami }","operationName":{}}`),
		want{status: 400, contentType: ctJSON, err: "operationName must be a string, got an object", code: codeBadRequest}},
	{"variables is a string", post(`{"query":"{ whoami }","variables":"{}"}`),
		want{status: 400, contentType: ctJSON, err: "variables must be a JSON object, got a string", code: codeBadRequest}},
	{"extensions is an array", post(`{"query":"{ whoami }","extensions":[]}`),
		want{status: 400, contentType: ctJSON, err: "extensions must be a JSON object, got an array", code: codeBadRequest}},
	{"no query", post(`{"variables":{}}`).accepting(),
		want{status: 400, contentType: ctResponse, err: "request has no query", code: codeBadRequest}},
	{"GET no query", get(),
		want{status: 400, contentType: ctJSON, err: "request has no query", code: codeBadRequest}},
	{"GET variables not JSON", get("query", helloQuery, "variables", `{name:"Ada"}`),
		want{status: 400, contentType: ctJSON, err: "variables is not valid JSON", code: codeBadRequest}},
	{"GET variables an array", get("query", helloQuery, "variables", `["Ada"]`),
		want{status: 400, contentType: ctJSON, err: "variables must be a JSON object, got an array", code: codeBadRequest}},
	{"GET extensions not JSON", get("query", "{ whoami }", "extensions", `{`),
		want{status: 400, contentType: ctJSON, err: "extensions is not valid JSON", code: codeBadRequest}},
	{"GET malformed query string", request{method: http.MethodGet, target: "/graphql?query=%zz"},
		want{status: 400, contentType: ctJSON, err: "malformed query string", code: codeBadRequest}},
	// Not UTF-8 (Latin-1 "café"): refused, not executed with U+FFFD in
	// place of what the client meant.
	{"body not UTF-8", post("{\"query\":\"query($name: String!) { hello(name: $name) }\",\"variables\":{\"name\":\"caf\xe9\"}}").accepting(),
		want{status: 400, contentType: ctResponse, err: "request body is not valid UTF-8", code: codeBadRequest}},
	{"GET variables not UTF-8", request{method: http.MethodGet,
		target: "/graphql?query=query(%24name%3AString!)%7Bhello(name%3A%24name)%7D&variables=%7B%22name%22%3A%22caf%E9%22%7D"},
		want{status: 400, contentType: ctJSON, err: "variables is not valid UTF-8", code: codeBadRequest}},
	{"GET query not UTF-8", request{method: http.MethodGet, target: "/graphql?query=%7Bhello(name%3A%22caf%E9%22)%7D"},
		want{status: 400, contentType: ctJSON, err: "query is not valid UTF-8", code: codeBadRequest}},
	{"GET operationName not UTF-8", request{method: http.MethodGet, target: "/graphql?query=%7Bwhoami%7D&operationName=Q%E9"},
		want{status: 400, contentType: ctJSON, err: "operationName is not valid UTF-8", code: codeBadRequest}},
	// A lone surrogate escape is valid UTF-8 that encoding/json would
	// decode to U+FFFD.
	{"body escapes a lone surrogate", post(`{"query":"query($name: String!) { hello(name: $name) }","variables":{"name":"a\ud800b"}}`).accepting(),
		want{status: 400, contentType: ctResponse, err: "request body is not valid UTF-8: it escapes half of a UTF-16 surrogate pair", code: codeBadRequest}},
	{"GET variables escape a lone surrogate", get("query", helloQuery, "variables", `{"name":"\udc00"}`),
		want{status: 400, contentType: ctJSON, err: "variables is not valid UTF-8: it escapes half", code: codeBadRequest}},
	{"oversized body", post(`{"query":"{ whoami }","variables":{"pad":"` + strings.Repeat("x", testMaxBody) + `"}}`),
		want{status: 413, contentType: ctJSON, err: fmt.Sprintf("exceeds the limit of %d bytes", testMaxBody), code: codeBadRequest}},
	{"text/plain", post(helloBody).with("Content-Type", "text/plain"),
		want{status: 415, contentType: ctJSON, err: `unsupported Content-Type "text/plain"`, code: codeBadRequest}},
	{"no Content-Type", request{method: http.MethodPost, target: "/graphql", body: helloBody}.accepting(),
		want{status: 415, contentType: ctResponse, err: "no Content-Type", code: codeBadRequest}},
	{"latin1 charset", post(helloBody).with("Content-Type", "application/json; charset=latin1"),
		want{status: 415, contentType: ctJSON, err: `unsupported charset "latin1"`, code: codeBadRequest}},
	{"Accept text/html only", post(helloBody).with("Accept", "text/html"),
		want{status: 406, contentType: ctJSON, err: "Accept header allows neither", code: codeBadRequest}},
	{"GET Accept refusing JSON", get("query", "{ whoami }").with("Accept", "application/json;q=0, application/*;q=0, */*"),
		want{status: 406, contentType: ctJSON, err: "Accept header allows neither", code: codeBadRequest}},
	{"GET Accept refusing application/json only", get("query", "{ whoami }").with("Accept", "application/json;q=0, */*"),
		want{status: 200, contentType: ctResponse, data: `{"whoami":null}`}},

	// GraphQL request errors: 400 as graphql-response+json, 200 as
	// application/json, never with data.
	{"unknown field as graphql-response+json", post(`{"query":"{ nope }"}`).accepting(),
		want{status: 400, contentType: ctResponse, err: `Cannot query field "nope"`, code: "GRAPHQL_VALIDATION_FAILED"}},
	{"unknown field as application/json", post(`{"query":"{ nope }"}`),
		want{status: 200, contentType: ctJSON, err: `Cannot query field "nope"`, code: "GRAPHQL_VALIDATION_FAILED"}},
	{"missing variable as graphql-response+json", post(`{"query":"query($name: String!) { hello(name: $name) }"}`).accepting(),
		want{status: 400, contentType: ctResponse, err: "must be defined", code: "GRAPHQL_VALIDATION_FAILED"}},
	{"missing variable as application/json", post(`{"query":"query($name: String!) { hello(name: $name) }"}`),
		want{status: 200, contentType: ctJSON, err: "must be defined", code: "GRAPHQL_VALIDATION_FAILED"}},
	{"GET missing variable as graphql-response+json", get("query", helloQuery).accepting(),
		want{status: 400, contentType: ctResponse, err: "must be defined", code: "GRAPHQL_VALIDATION_FAILED"}},
	{"syntax error as graphql-response+json", post(`{"query":"{ hello("}`).accepting(),
		want{status: 400, contentType: ctResponse, err: "Expected Name", code: "GRAPHQL_PARSE_FAILED"}},
	{"syntax error as application/json", post(`{"query":"{ hello("}`),
		want{status: 200, contentType: ctJSON, err: "Expected Name", code: "GRAPHQL_PARSE_FAILED"}},
	{"unknown operationName as graphql-response+json", post(`{"query":"query Q { whoami }","operationName":"R"}`).accepting(),
		want{status: 400, contentType: ctResponse, err: `operation "R" not found: the document has 1 operation (Q)`, code: "GRAPHQL_VALIDATION_FAILED"}},

	// Identity.
	{"identity reaches the resolver", post(`{"query":"{ whoami }"}`).with("X-Herald-User", "ada"),
		want{status: 200, contentType: ctJSON, data: `{"whoami":"ada"}`}},
	{"GET identity reaches the resolver", get("query", "{ whoami }").with("X-Herald-User", "Ada Lovelace"),
		want{status: 200, contentType: ctJSON, data: `{"whoami":"Ada Lovelace"}`}},
	{"anonymous", post(`{"query":"{ whoami }"}`),
		want{status: 200, contentType: ctJSON, data: `{"whoami":null}`}},
	{"invalid user", post(`{"query":"{ whoami }"}`).with("X-Herald-User", strings.Repeat("a", 100)),
		want{status: 401, contentType: ctJSON, err: "at most 64 allowed", code: "UNAUTHENTICATED",
			header: map[string]string{"WWW-Authenticate": `Bearer realm="herald"`}}},
	{"GET invalid user", get("query", "{ whoami }").with("X-Herald-User", strings.Repeat("a", 100)).accepting(),
		want{status: 401, contentType: ctResponse, err: "invalid credentials", code: "UNAUTHENTICATED",
			header: map[string]string{"WWW-Authenticate": `Bearer realm="herald"`}}},

	// Field errors: execution started, so 200 with data either way.
	{"error extensions survive", post(`{"query":"{ fail whoami }"}`).accepting(),
		want{status: 200, contentType: ctResponse, data: `{"fail":null,"whoami":null}`, err: "thing not found", code: "NOT_FOUND"}},
	{"error extensions survive as application/json", get("query", "{ fail }"),
		want{status: 200, contentType: ctJSON, data: `{"fail":null}`, err: "thing not found", code: "NOT_FOUND"}},
}

// wsHandshake is a WebSocket opening handshake for graphql-transport-ws
// (RFC 6455 section 4.1) sent with method.
func wsHandshake(method string) request {
	return request{method: method, target: "/graphql"}.with("Upgrade", "websocket").with("Connection", "Upgrade").
		with("Sec-WebSocket-Version", "13").with("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==").
		with("Sec-WebSocket-Protocol", subprotocolTransportWS)
}

func TestGraphQL(t *testing.T) {
	s, _ := newTestServer(t, nil)
	for _, tc := range graphQLCases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, send(t, s, tc.req), tc.want)
		})
	}
	// Every bad request above left the server able to serve a good one.
	check(t, send(t, s, post(helloBody)), want{status: 200, contentType: ctJSON, data: helloData})
}

func TestFieldErrorPath(t *testing.T) {
	s, _ := newTestServer(t, nil)
	w := send(t, s, post(`{"query":"{ fail }"}`))
	if !strings.Contains(w.Body.String(), `"path":["fail"]`) {
		t.Errorf("body %s lacks the error path", w.Body)
	}
}

func TestResolverPanicIsLogged(t *testing.T) {
	s, logs := newTestServer(t, nil)
	w := send(t, s, post(`{"query":"{ boom whoami }"}`).accepting())
	check(t, w, want{status: 200, contentType: ctResponse, data: `{"boom":null,"whoami":null}`, err: "internal system error", code: codeInternal})
	if strings.Contains(w.Body.String(), "went the resolver") {
		t.Errorf("panic value leaked to the client: %s", w.Body)
	}
	for _, s := range []string{"level=ERROR", "recovered panic", "boom went the resolver", "path=boom", "stack="} {
		if !strings.Contains(logs.String(), s) {
			t.Errorf("log lacks %q:\n%s", s, logs)
		}
	}
}

func TestAutomaticPersistedQuery(t *testing.T) {
	s, _ := newTestServer(t, nil)
	const query = "{ whoami }"
	sum := sha256.Sum256([]byte(query))
	hash := hex.EncodeToString(sum[:])
	ext := fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hash)
	notFound := want{status: 200, err: "PersistedQueryNotFound", code: "PERSISTED_QUERY_NOT_FOUND"}
	withType := func(w want, ct string) want { w.contentType = ct; return w }

	steps := []struct {
		name string
		req  request
		want want
	}{
		{"hash only, unknown, graphql-response+json", post(`{"extensions":` + ext + `}`).accepting(),
			withType(notFound, ctResponse)},
		{"hash only, unknown, GET", get("extensions", ext),
			withType(notFound, ctJSON)},
		{"wrong hash is a request error", post(`{"query":"{ bump }","extensions":` + ext + `}`).accepting(),
			want{status: 400, contentType: ctResponse, err: "hash does not match", code: codeBadRequest}},
		{"query and hash register it", post(`{"query":"` + query + `","extensions":` + ext + `}`),
			want{status: 200, contentType: ctJSON, data: `{"whoami":null}`}},
		{"hash only, known, POST", post(`{"extensions":`+ext+`}`).accepting().with("X-Herald-User", "ada"),
			want{status: 200, contentType: ctResponse, data: `{"whoami":"ada"}`}},
		{"hash only, known, GET", get("extensions", ext),
			want{status: 200, contentType: ctJSON, data: `{"whoami":null}`}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			check(t, send(t, s, step.req), step.want)
		})
	}
}

// TestConcurrentRequests shares one server between goroutines mixing good
// and bad requests, for the race detector.
func TestConcurrentRequests(t *testing.T) {
	s, _ := newTestServer(t, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 20 {
				tc := graphQLCases[(i*20+j)%len(graphQLCases)]
				w := send(t, s, tc.req)
				if w.Code != tc.want.status {
					t.Errorf("%s: status = %d, want %d", tc.name, w.Code, tc.want.status)
				}
			}
		})
	}
	wg.Wait()
}

func TestPresentError(t *testing.T) {
	ctx := context.Background()
	shared := &gqlerror.Error{Message: "coded", Err: notFoundError{what: "x"}, Extensions: map[string]any{"code": "MINE"}}
	cases := []struct {
		name string
		err  error
		want map[string]any
	}{
		{"plain error", errors.New("plain"), nil},
		{"extended error", notFoundError{what: "x"}, map[string]any{"code": "NOT_FOUND"}},
		{"wrapped extended error", fmt.Errorf("lookup: %w", notFoundError{what: "x"}), map[string]any{"code": "NOT_FOUND"}},
		{"GraphQL error's own extensions win", shared, map[string]any{"code": "MINE"}},
		{"GraphQL error wrapping an extended one", &gqlerror.Error{Message: "m", Err: notFoundError{what: "x"}},
			map[string]any{"code": "NOT_FOUND"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := presentError(ctx, tc.err)
			if !maps.Equal(got.Extensions, tc.want) {
				t.Errorf("extensions = %v, want %v", got.Extensions, tc.want)
			}
		})
	}
	if len(shared.Extensions) != 1 {
		t.Errorf("presentError mutated the resolver's error: %v", shared.Extensions)
	}
}

func TestErrorsDoNotEchoTheBody(t *testing.T) {
	s, _ := newTestServer(t, nil)
	secret := strings.Repeat("s3cr3t", 50)
	for _, body := range []string{`{"query":"` + secret, `["` + secret + `"]`, `{"query":{"` + secret + `":1}}`} {
		w := send(t, s, post(body))
		if w.Code != http.StatusBadRequest || strings.Contains(w.Body.String(), "s3cr3t") {
			t.Errorf("POST %.20s…: status %d, body %s", body, w.Code, w.Body)
		}
	}
}

// TestGraphQLCachingHeaders: every answer on /graphql depends on the
// Accept header (JSON or graphql-response+json, their statuses, an event
// stream, a multipart stream), so every one says so to caches (RFC 9110
// section 12.5.5), beside the Origin a cross-site answer depends on. And
// none may be stored: results are live data, often of one user, and a
// cache that stores a response without Cache-Control (Varnish and Fastly
// do, for GET) would hand them out stale, or to someone else.
func TestGraphQLCachingHeaders(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) { o.AllowedOrigins = []string{"https://app.example.com"} })
	const stream = "no-cache, no-transform" // a stream's own, which proxies read as "do not buffer" too
	tests := []struct {
		name         string
		req          request
		vary         []string
		cacheControl string
	}{
		{"GET query", get("query", "{ whoami }"), []string{"Accept"}, "no-store"},
		{"GET query as graphql-response+json", get("query", "{ whoami }").accepting(), []string{"Accept"}, "no-store"},
		{"GET query of a user", get("query", "{ whoami }").with("X-Herald-User", "ann"), []string{"Accept"}, "no-store"},
		{"GET validation error", get("query", "{ nope }").accepting(), []string{"Accept"}, "no-store"},
		{"GET mutation", get("query", "mutation { bump }"), []string{"Accept"}, "no-store"},
		{"GET not acceptable", get("query", "{ whoami }").with("Accept", "text/html"), []string{"Accept"}, "no-store"},
		{"GET event stream", get("query", "{ whoami }").with("Accept", "text/event-stream"), []string{"Accept"}, stream},
		{"GET multipart", get("query", "subscription { ticks }").with("Accept", acceptApollo4), []string{"Accept"}, stream},
		{"POST query", post(`{"query":"{ whoami }"}`), []string{"Accept"}, "no-store"},
		{"PUT reservation", request{method: http.MethodPut, target: "/graphql"}, []string{"Accept"}, "no-store"},
		{"cross-site GET", get("query", "{ whoami }").with("Origin", "https://app.example.com"), []string{"Origin", "Accept"}, "no-store"},
		// A refusal depends on the Origin as an answer depends on Accept.
		{"GET from a refused origin", get("query", "{ whoami }").with("Origin", "https://evil.example"), []string{"Origin", "Accept"}, "no-store"},
		{"POST from a refused origin", post(`{"query":"{ whoami }"}`).with("Origin", "https://evil.example"), []string{"Origin", "Accept"}, "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := send(t, s, tt.req)
			if got := w.Header().Values("Vary"); !slices.Equal(got, tt.vary) {
				t.Errorf("Vary = %q, want %q (status %d)", got, tt.vary, w.Code)
			}
			if got := w.Header().Values("Cache-Control"); len(got) != 1 || got[0] != tt.cacheControl {
				t.Errorf("Cache-Control = %q, want %q (status %d)", got, tt.cacheControl, w.Code)
			}
		})
	}
}
