package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestNullForNonNullArgumentIsRefused: a nullable variable with a default
// may stand where a non-null argument is (validation allows it), but an
// explicit null there is refused before anything runs, with
// GRAPHQL_VALIDATION_FAILED and the variable's path, on every transport.
// A null @include(if:) in a subscription panicked on its first event,
// outside any recover, and took the replica's process down; in a query it
// was an "internal system error"; a null ID! reached addMember as the user
// "null", stored for good.
func TestNullForNonNullArgumentIsRefused(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	tests := []struct {
		name, query string
		vars        map[string]any
		variable    string
		where       string
	}{
		{"@include in a subscription", `subscription($r: ID!, $s: Boolean = true) { messagePosted(roomId: $r) { id text @include(if: $s) } }`,
			map[string]any{"r": room, "s": nil}, "s", `argument "if" of @include`},
		{"@skip on a query's field", `query($s: Boolean = true) { rooms @skip(if: $s) { totalCount } }`,
			map[string]any{"s": nil}, "s", `argument "if" of @skip`},
		{"@skip on a fragment spread", `query($s: Boolean = false) { ...F @skip(if: $s) } fragment F on Query { rooms { totalCount } }`,
			map[string]any{"s": nil}, "s", `argument "if" of @skip`},
		{"an ID! argument", `mutation($r: ID!, $u: ID = "bob") { addMember(roomId: $r, userId: $u) { id } }`,
			map[string]any{"r": room, "u": nil}, "u", `argument "userId" of addMember`},
		{"an ID! argument in a fragment", `query($id: ID = "x") { ...F } fragment F on Query { room(id: $id) { id } }`,
			map[string]any{"id": nil}, "id", `argument "id" of room`},
	}
	for _, tt := range tests {
		t.Run(tt.name+" over HTTP", func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"query": tt.query, "variables": tt.vars})
			e := refusedWithOne(t, send(t, r.server, post(string(body)).accepting().with("X-Herald-User", "alice")))
			checkNullRefusal(t, e, tt.variable, tt.where)
		})
		t.Run(tt.name+" over a socket", func(t *testing.T) {
			c := r.forTest(t).dial(subprotocolTransportWS)
			c.init("alice")
			c.expectType("connection_ack")
			c.subscribe("subscribe", "1", tt.query, tt.vars)
			f := c.expectType("error")
			var errs []gqlError
			if err := json.Unmarshal(f.Payload, &errs); err != nil || len(errs) != 1 {
				t.Fatalf("error %s, want one", f.Payload)
			}
			checkNullRefusal(t, errs[0], tt.variable, tt.where)
		})
	}
	// The same variables given values run.
	body, _ := json.Marshal(map[string]any{"query": tests[1].query, "variables": map[string]any{"s": false}})
	if w := send(t, r.server, post(string(body)).accepting()); strings.Contains(w.Body.String(), "errors") {
		t.Errorf("with s false: %s", w.Body)
	}
	body, _ = json.Marshal(map[string]any{"query": tests[1].query})
	if w := send(t, r.server, post(string(body)).accepting()); strings.Contains(w.Body.String(), "errors") {
		t.Errorf("with s omitted (its default): %s", w.Body)
	}
}

func checkNullRefusal(t *testing.T, e gqlError, variable, where string) {
	t.Helper()
	if e.Extensions["code"] != codeValidation || fmt.Sprint(e.Path) != fmt.Sprintf("[variable %s]", variable) ||
		!strings.Contains(e.Message, `"$`+variable+`" is null`) || !strings.Contains(e.Message, where) {
		t.Errorf("error %+v, want %s at [variable %s] saying it is null where %s is non-null", e, codeValidation, variable, where)
	}
}

// TestEventPanicEndsOnlyItsExecution: a panic while an event is made
// (gqlgen marshals an event's fields outside the recover it gives
// resolvers) ends the execution with INTERNAL_SERVER_ERROR instead of the
// process.
func TestEventPanicEndsOnlyItsExecution(t *testing.T) {
	s, logs := newTestServer(t, nil)
	resp, panicked := s.ws.execs.next(func(context.Context) *graphql.Response { panic("boom in an event") }, context.Background())
	if !panicked || resp == nil || len(resp.Errors) != 1 || resp.Errors[0].Extensions["code"] != codeInternal {
		t.Fatalf("next = %+v, %v; want one %s error and panicked", resp, panicked, codeInternal)
	}
	if !strings.Contains(logs.String(), "boom in an event") {
		t.Errorf("the panic was not logged: %s", logs.String())
	}
}
