package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestUnsupportedDocumentsAreRefusedInValidation: @defer and @stream, and
// @skip or @include in a subscription's top-level selection, are
// GRAPHQL_VALIDATION_FAILED on every transport, before anything runs. A
// deferred fragment's non-null fields came back null with no error (and
// in a subscription each event left a goroutine behind); a subscription
// whose root field a variable skipped streamed one error without a code.
func TestUnsupportedDocumentsAreRefusedInValidation(t *testing.T) {
	r := newReplica(t, nil)
	tests := []struct {
		name, query, want string
		vars              map[string]any
	}{
		{"@defer in a query", `{ rooms { nodes { id ... @defer { name } } } }`, "@defer is not supported", nil},
		{"@defer with a label", `query { rooms { nodes { id ...F @defer(label: "f") } } } fragment F on Room { name }`, "@defer is not supported", nil},
		{"@defer in a subscription", `subscription { messagePosted(roomId: "general") { id ... @defer { text } } }`, "@defer is not supported", nil},
		{"@skip on a subscription's root field", `subscription S($off: Boolean!) { messagePosted(roomId: "general") @skip(if: $off) { id } }`,
			`Subscription "S" must not use @skip or @include`, map[string]any{"off": true}},
		{"@include on a root inline fragment", `subscription { ... @include(if: true) { messagePosted(roomId: "general") { id } } }`,
			"Anonymous Subscription must not use @skip or @include", nil},
		{"@skip inside a root fragment", `subscription { ...F } fragment F on Subscription { messagePosted(roomId: "general") @skip(if: false) { id } }`,
			"Anonymous Subscription must not use @skip or @include", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+" over HTTP", func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"query": tt.query, "variables": tt.vars})
			e := refusedWithOne(t, send(t, r.server, post(string(body)).accepting()))
			if !strings.Contains(e.Message, tt.want) || e.Extensions["code"] != codeValidation {
				t.Errorf("error %+v, want %q and code %s", e, tt.want, codeValidation)
			}
		})
		t.Run(tt.name+" over a socket", func(t *testing.T) {
			c := r.forTest(t).dial(subprotocolTransportWS)
			c.init("")
			c.expectType("connection_ack")
			c.subscribe("subscribe", "1", tt.query, tt.vars)
			f := c.expectType("error")
			var errs []gqlError
			if err := json.Unmarshal(f.Payload, &errs); err != nil || len(errs) != 1 ||
				!strings.Contains(errs[0].Message, tt.want) || errs[0].Extensions["code"] != codeValidation {
				t.Errorf("error %s, want one saying %q with code %s", f.Payload, tt.want, codeValidation)
			}
		})
	}
	// @skip and @include below the root, in subscriptions too, still run.
	for _, q := range []string{
		`subscription($off: Boolean!) { messagePosted(roomId: "general") { id text @skip(if: $off) } }`,
		`query($off: Boolean!) { rooms @skip(if: $off) { nodes { id } } }`,
	} {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]any{"off": true}})
		if w := send(t, r.server, post(string(body)).accepting()); strings.Contains(w.Body.String(), codeValidation) {
			t.Errorf("%s refused: %s", q, w.Body)
		}
	}
}
