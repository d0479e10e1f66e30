package server

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// TestEncodeResponse: the hand-written encoding of an execution result
// decodes to what encoding/json would have written, cursor fast path or
// not, and stays valid JSON for any cursor text.
func TestEncodeResponse(t *testing.T) {
	tests := []struct {
		name string
		resp graphql.Response
	}{
		{"data only", graphql.Response{Data: json.RawMessage(`{"a":1}`)}},
		{"no data", graphql.Response{}},
		{"cursor", graphql.Response{Data: json.RawMessage(`{"a":1}`), Extensions: map[string]any{"cursor": "AbC-_123"}}},
		{"cursor needing escapes", graphql.Response{Data: json.RawMessage(`{}`), Extensions: map[string]any{"cursor": "a\"b\\c<d>\u00e9\n"}}},
		{"cursor and more", graphql.Response{Data: json.RawMessage(`{}`), Extensions: map[string]any{"cursor": "x", "n": 2}}},
		{"cursor not a string", graphql.Response{Data: json.RawMessage(`{}`), Extensions: map[string]any{"cursor": 7}}},
		{"errors", graphql.Response{Errors: gqlerror.List{{Message: "boom"}}, Data: json.RawMessage(`null`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := encodeResponse(&tt.resp)
			var gotV, wantV any
			if err := json.Unmarshal(got, &gotV); err != nil {
				t.Fatalf("encodeResponse wrote invalid JSON %s: %v", got, err)
			}
			data := tt.resp.Data
			if len(data) == 0 {
				data = json.RawMessage(`null`)
			}
			want, _ := json.Marshal(struct {
				Errors     gqlerror.List   `json:"errors,omitempty"`
				Data       json.RawMessage `json:"data"`
				Extensions map[string]any  `json:"extensions,omitempty"`
			}{tt.resp.Errors, data, tt.resp.Extensions})
			_ = json.Unmarshal(want, &wantV)
			if !reflect.DeepEqual(gotV, wantV) {
				t.Fatalf("encodeResponse = %s, want the equivalent of %s", got, want)
			}
		})
	}
}
