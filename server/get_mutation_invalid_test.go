package server

import (
	"net/http"
	"testing"
)

// TestGETMutationFailingValidationIs405: the GraphQL-over-HTTP
// spec has a GET whose query and operationName indicate a mutation
// answered with 405, and Herald answers one over the depth limit so
// (refuseShape keeps its operation). A GET mutation that fails any other
// check of its document (an unknown field, an unused variable, an Int
// literal beyond 32 bits) must be 405 too, not a validation error (200 as
// application/json, 400 as application/graphql-response+json).
func TestGETMutationFailingValidationIs405(t *testing.T) {
	s, _ := newTestServer(t, nil)
	refused := func(ct string) want {
		return want{status: http.StatusMethodNotAllowed, contentType: ct, err: "mutation operations cannot be sent with GET",
			code: codeBadRequest, header: map[string]string{"Allow": http.MethodPost}}
	}
	cases := []struct {
		name string
		req  request
		want want
	}{
		{"unknown field, application/json", get("query", "mutation { bumpx }"), refused(ctJSON)},
		{"unknown field, graphql-response+json", get("query", "mutation { bumpx }").accepting(), refused(ctResponse)},
		{"unused variable", get("query", "mutation M($a: Int) { bump }").accepting(), refused(ctResponse)},
		{"chosen by operationName", get("query", "query Q { whoami } mutation M { bump nope }", "operationName", "M").accepting(), refused(ctResponse)},
		{"with urql's Accept", get("query", "mutation { bumpx }").
			with("Accept", "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"), refused(ctResponse)},
		{"as graphql-sse's event stream", get("query", "mutation { bumpx }").with("Accept", "text/event-stream"), refused(ctJSON)},
		// Still validation errors: no mutation is indicated.
		{"query failing validation", get("query", "{ nope }").accepting(),
			want{status: 400, contentType: ctResponse, err: "Cannot query field", code: "GRAPHQL_VALIDATION_FAILED"}},
		{"document that does not parse", get("query", "mutation { bump").accepting(),
			want{status: 400, contentType: ctResponse, err: "Expected Name", code: "GRAPHQL_PARSE_FAILED"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check(t, send(t, s, tc.req), tc.want)
		})
	}
	// What the unvalidated document already gets when a shape limit
	// refuses it (refuseShape keeps the chosen operation): 405.
	t.Run("over the depth limit, for comparison", func(t *testing.T) {
		limited, _ := newTestServer(t, func(o *Options) { o.Limits.MaxDepth = 1 })
		check(t, send(t, limited, get("query", "mutation { bump { nope } }").accepting()), refused(ctResponse))
	})
}
