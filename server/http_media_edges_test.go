package server

import (
	"net/http"
	"testing"
)

// TestHTTPNegotiationEdges pins Accept negotiation cases no other
// test guards: an element whose q is above 1 is malformed and ignored, a
// media range listed twice keeps its highest q, an Accept header that says
// nothing is a missing one, and a refusal sent whatever Accept says (a 405
// for a method, a 403 for an origin) is still JSON with a Content-Type.
func TestHTTPNegotiationEdges(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) { o.AllowedOrigins = []string{"https://app.example.com"} })
	okJSON := want{status: 200, contentType: ctJSON, data: `{"whoami":null}`}
	okResponse := want{status: 200, contentType: ctResponse, data: `{"whoami":null}`}
	cases := []struct {
		name string
		req  request
		want want
	}{
		// RFC 9110 section 12.4.2: a qvalue is at most 1; "q=2" makes the
		// element malformed, so only application/json is acceptable.
		{"q above 1 is ignored", get("query", "{ whoami }").with("Accept", "application/graphql-response+json;q=2, application/json"), okJSON},
		{"q above 1 alone is not acceptable", get("query", "{ whoami }").with("Accept", "application/json;q=1.5"),
			want{status: 406, contentType: ctJSON, err: "Accept header allows neither", code: codeBadRequest}},
		// The same range twice: the highest q counts, whichever comes first.
		{"range listed twice keeps its highest q", get("query", "{ whoami }").
			with("Accept", "application/graphql-response+json, application/graphql-response+json;q=0, application/json;q=0.5"), okResponse},
		// An empty Accept field value (RFC 9110 allows it) says nothing:
		// as a missing Accept, application/json, not 406.
		{"empty Accept is a missing one", get("query", "{ whoami }").with("Accept", ""), okJSON},
		{"blank Accept is a missing one", post(`{"query":"{ whoami }"}`).with("Accept", "  "), okJSON},
		// Refusals made before or instead of negotiation are JSON.
		{"405 for a client accepting no JSON", request{method: http.MethodPatch, target: "/graphql"}.with("Accept", "text/html"),
			want{status: 405, contentType: ctJSON, err: "PATCH is not allowed", code: codeBadRequest,
				header: map[string]string{"Allow": "GET, POST, PUT, DELETE"}}},
		{"403 for a client accepting no JSON", get("query", "{ whoami }").with("Origin", "https://evil.example").with("Accept", "text/html"),
			want{status: 403, contentType: ctJSON, err: "is not allowed here", code: "FORBIDDEN"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, send(t, s, tc.req), tc.want)
		})
	}
}

// TestHTTPUpgradeAmongOtherTokens: "Upgrade: h2c, websocket" (RFC
// 9110 section 7.8 lists protocols comma-separated, with optional
// whitespace) is a WebSocket handshake, handed to the WebSocket transport,
// not executed as a plain GET without a query.
func TestHTTPUpgradeAmongOtherTokens(t *testing.T) {
	s, _ := newTestServer(t, nil)
	req := get().with("Upgrade", "h2c, websocket").with("Connection", "Upgrade")
	check(t, send(t, s, req), want{status: 400, contentType: ctJSON,
		err: "unsupported WebSocket subprotocol: offer graphql-transport-ws", code: codeBadRequest})
}
