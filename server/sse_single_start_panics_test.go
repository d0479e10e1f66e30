package server

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSingleStartPanicCostsOnlyItsOperation: an operation sent to a
// single-connection stream is prepared and started on the goroutine of
// the request that sent it. gqlgen's handler recovered a panic there and
// answered that request 500, but the operation stayed registered on the
// stream: the stream never got its error nor its complete, its id stayed
// in use (a retry was 409, "running on the stream"), and it counted
// against Limits.MaxOperations until the stream ended. Now the panic is
// logged, the operation ends on the stream with the internal error, its
// id freed, the request is answered 202 as for the stream's other
// operations that fail before they run, and the stream goes on:
//   - preparing the operation (here the schema's complexity function);
//   - out of the engine's join (here Presence's Leave, as a joiner its
//     join hook's panic refused leaves), the operation released.
func TestSingleStartPanicCostsOnlyItsOperation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s *joinSchema, o *Options)
		// before, if set, starts the execution on a socket of another
		// user's, which after checks still serves that user.
		before func(t *testing.T, r *replica) *wsClient
		query  string // of p1, whose start panics
		after  func(t *testing.T, s *joinSchema, member *wsClient)
	}{
		{"preparing the operation", func(_ *joinSchema, o *Options) {
			o.Limits.MaxComplexity = 100
			o.Limits.MaxOperations = 1
		}, nil, `{ boom }`, nil},
		{"out of the engine's join", func(s *joinSchema, o *Options) {
			s.topic, s.onJoin = "room", func() { panic("the join hook panicked") }
			o.Presence = leavePanicking{}
		}, func(t *testing.T, r *replica) *wsClient {
			ann := r.dialTransport("ann")
			ann.subscribe("subscribe", "1", joinedSubscription, nil)
			ann.expectHello("subscribe", "q")
			return ann
		}, joinedSubscription, func(t *testing.T, s *joinSchema, ann *wsClient) {
			s.events <- "tick"
			expectTick(t, socketSub{ann, "next"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newJoinSchema(t)
			r, logs := serveJoinPanics(t, s, func(o *Options) { tc.setup(s, o) })
			var member *wsClient
			if tc.before != nil {
				member = tc.before(t, r)
			}
			token := r.reserve("bob")
			c := r.openSingle(token, "bob")

			var status int
			var body string
			within(t, 10*time.Second, "the POST of an operation whose start panics to be answered", func() {
				status, body = r.operation(token, "bob", "p1", tc.query, nil)
			})
			if status != http.StatusAccepted {
				t.Fatalf("the POST of an operation whose start panicked: %d %s, want 202 (its error on the stream)", status, body)
			}
			if code := onlyErrorCode(t, c.expect("next", "p1").payload); code != codeInternal {
				t.Fatalf("the operation got %s on the stream, want %s", code, codeInternal)
			}
			c.expect("complete", "p1")
			checkLogged(t, logs, "recovered panic while starting an operation on a single-connection stream", "panicked", "stack=")

			// Its id is free, and it counts against no limit: another
			// operation (of a stream allowed one at a time, in the first
			// case), then one of the same id, run.
			for _, id := range []string{"p2", "p1"} {
				r.mustOperate(token, "bob", id, `{ hello(name: "x") }`, nil)
				if ev := c.expect("next", id); !strings.Contains(string(ev.payload), `"hello"`) {
					t.Fatalf("operation %s got %s, want its result", id, ev.payload)
				}
				c.expect("complete", id)
			}
			if tc.after != nil {
				tc.after(t, s, member)
			}
		})
	}
}
