package server

import (
	"encoding/json"
	"testing"
)

// TestLoneSurrogateInLiteralRefused: a string literal of the document that
// escapes half of a UTF-16 surrogate pair alone is a syntax error, on GET
// and POST, as the GraphQL spec and graphql-js have it. gqlparser read it
// as U+FFFD, so `hello(name: "a\ud800b")` ran on text the client did not
// send (in Herald's schema, a message, room name or emoji stored so).
// Pairs and braced escapes still run.
func TestLoneSurrogateInLiteralRefused(t *testing.T) {
	s, _ := newTestServer(t, nil)
	postDoc := func(doc string) request {
		body, err := json.Marshal(map[string]string{"query": doc})
		if err != nil {
			t.Fatal(err)
		}
		return post(string(body)).accepting()
	}
	refused := want{status: 400, contentType: ctResponse, err: "Invalid Unicode escape sequence", code: "GRAPHQL_PARSE_FAILED"}
	for _, tt := range []struct {
		name string
		q    request
		exp  want
	}{
		{"POST lead alone", postDoc(`{ hello(name: "a\ud800b") }`), refused},
		{"POST trail alone", postDoc(`{ hello(name: "\udc00") }`), refused},
		{"POST lead before a non-trail", postDoc(`{ hello(name: "\uD83D\u0041") }`), refused},
		{"GET lead alone", get("query", `{ hello(name: "\uDE00x") }`).accepting(), refused},
		{"POST as application/json", post(`{"query":"{ hello(name: \"\\ud800\") }"}`),
			want{status: 200, contentType: ctJSON, err: "Invalid Unicode escape sequence", code: "GRAPHQL_PARSE_FAILED"}},
		{"a pair", postDoc(`{ hello(name: "\ud83d\ude00") }`), want{status: 200, contentType: ctResponse, data: `{"hello":"hi 😀"}`}},
		{"a braced escape", postDoc(`{ hello(name: "\u{1F600}") }`), want{status: 200, contentType: ctResponse, data: `{"hello":"hi 😀"}`}},
		{"a block string", postDoc(`{ hello(name: """\ud800""") }`), want{status: 200, contentType: ctResponse, data: `{"hello":"hi \\ud800"}`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			check(t, send(t, s, tt.q), tt.exp)
		})
	}
}
