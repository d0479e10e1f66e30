package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/testrig"
)

// The tests of this file: code from outside the server package that the
// engine calls while a subscriber joins (the gate's Access and Denial, the
// resolver's join hook, the executor's interceptors and preparation), on
// the subscriber's goroutine: a socket's, where nothing would recover a
// panic and the process would end (the test binary with it), or an HTTP
// stream's, where net/http recovers it but the locks the engine held stayed
// held and every later subscription waited for them. A panic costs only
// the subscriber it was raised for. See goroutine_panics_test.go for the
// goroutines the server runs queries and events on.

// joinSchema is the panicking schema's SDL, with resumable, a subscription
// taking a resume cursor, served through these operations:
//   - joined and resumable: restricted to gate and announcing topic when
//     set, with onJoin as the join hook when set; one result per value sent
//     on events, "panic" making that result's making panic;
//   - dispatchPanic: its Exec panics, outside any resolver's recover, as an
//     operation interceptor's panic is raised (within DispatchOperation).
//
// The complexity function panics for boom (with Limits.MaxComplexity set,
// the executor calls it while it prepares an operation) and for resumable
// without a cursor (the live form of a resumed subscription).
type joinSchema struct {
	fakeSchema
	gate   auth.Gate
	topic  string
	onJoin func()
	events chan string
}

const (
	joinedSubscription    = `subscription joined { ticks }`
	dispatchPanicSub      = `subscription dispatchPanic { ticks }`
	resumableSubscription = `subscription resumable($after: String) { resumable(after: $after) }`
)

func newJoinSchema(t *testing.T) *joinSchema {
	t.Helper()
	sdl := strings.Replace(fakeSDL, "type Subscription { ticks: Int! }",
		"type Subscription { ticks: Int!, resumable(after: String): Int! }", 1)
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "join.graphql",
		Input: sdl + "directive @" + panickingViewerDirective + " on FIELD_DEFINITION\n"})
	if err != nil {
		t.Fatalf("load schema: %v", err)
	}
	return &joinSchema{fakeSchema: fakeSchema{schema: s}, events: make(chan string, 1)}
}

func (s *joinSchema) Complexity(_ context.Context, _, field string, _ int, args map[string]any) (int, bool) {
	switch {
	case field == "boom":
		panic("the complexity function panicked")
	case field == "resumable" && args["after"] == nil:
		panic("the complexity function panicked on the live form")
	}
	return 0, false
}

func (s *joinSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx).Operation
	switch {
	case op == nil:
	case op.Name == "dispatchPanic":
		panic("an operation interceptor panicked")
	case op.Name == "joined" || op.Name == "resumable":
		if s.gate != nil {
			auth.Restrict(ctx, s.gate)
		}
		if s.topic != "" {
			auth.Announce(ctx, s.topic)
		}
		if s.onJoin != nil {
			auth.OnJoin(ctx, s.onJoin)
		}
		return func(ctx context.Context) *graphql.Response {
			select {
			case v := <-s.events:
				if v == "panic" {
					panic("making an event's result panicked")
				}
				return &graphql.Response{Data: json.RawMessage(`{"ticks":1}`)}
			case <-ctx.Done():
				return nil
			}
		}
	}
	return s.fakeSchema.Exec(ctx)
}

// annGate admits ann, since position 0; its Access panics while panicking
// is set. It is no Confirmer: Access is asked only by admit, under the
// registry's and the execution's locks.
type annGate struct{ panicking atomic.Bool }

func (g *annGate) Access(user string) (uint64, bool) {
	if g.panicking.Load() {
		panic("the gate's Access panicked")
	}
	return 0, user == "ann"
}

// denyingGate is annGate, saying why it refuses with a Denial that
// panics.
type denyingGate struct{ annGate }

func (*denyingGate) Denial() string { panic("the gate's Denial panicked") }

// leavePanicking is a Presence whose Leave panics for bob.
type leavePanicking struct{}

func (leavePanicking) Enter(string, string) {}
func (leavePanicking) Leave(_, user string) {
	if user == "bob" {
		panic("presence's Leave panicked")
	}
}

// serveJoinPanics serves s as servePanicking does, after tweak (nil: none).
func serveJoinPanics(t *testing.T, s *joinSchema, tweak func(*Options)) (*replica, *testrig.LogBuffer) {
	t.Helper()
	srv, logs := newTestServer(t, func(o *Options) {
		o.Schema = s
		o.PingInterval = time.Minute // no keepalive among the frames the test reads
		o.ViewerDirective = panickingViewerDirective
		if tweak != nil {
			tweak(o)
		}
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &replica{t: t, server: srv, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}, logs
}

// joinSub is one subscription of joinedSubscription, as its client sees
// it on one transport.
type joinSub interface {
	// result is the payload of its next result.
	result() json.RawMessage
	// refused is the code of the error that ends it (FORBIDDEN,
	// INTERNAL_SERVER_ERROR), checking that it ends.
	refused() string
	// complete checks that it ends with nothing more.
	complete()
	// joined returns once it has joined (not for one refused).
	joined()
}

// joinTransport opens subscriptions of joinedSubscription as a user.
type joinTransport struct {
	name      string
	subscribe func(t *testing.T, r *replica, user string) joinSub
}

var joinTransports = []joinTransport{
	{"graphql-transport-ws", func(t *testing.T, r *replica, user string) joinSub {
		c := r.dialTransport(user)
		c.subscribe("subscribe", "1", joinedSubscription, nil)
		return socketSub{c, "next"}
	}},
	{"graphql-ws (legacy)", func(t *testing.T, r *replica, user string) joinSub {
		c := r.dialLegacy(user)
		c.subscribe("start", "1", joinedSubscription, nil)
		return socketSub{c, "data"}
	}},
	{"SSE", func(t *testing.T, r *replica, user string) joinSub {
		// The head goes out once the stream has joined (httpStream.subscribe):
		// the open is bounded, for a registry that hangs.
		var c *sseClient
		within(t, 5*time.Second, "an SSE stream to join", func() {
			c, _, _ = r.openSSE(sseRequest{method: http.MethodPost, query: joinedSubscription,
				header: http.Header{auth.DevHeader: {user}}})
		})
		if c == nil {
			t.Fatal("the stream did not open")
		}
		return streamSub{t, c}
	}},
}

// socketSub is a subscription "1" on a socket, whose results come in
// frames of type next.
type socketSub struct {
	c    *wsClient
	next string
}

func (s socketSub) result() json.RawMessage { return s.c.expectFrame(s.next, "1").Payload }

func (s socketSub) refused() string {
	return onlyErrorCode(s.c.t, s.c.expectFrame("error", "1").Payload)
}

func (s socketSub) complete() { s.c.expectFrame("complete", "1") }

// joined asks a hello query, which the socket handles after the subscribe.
func (s socketSub) joined() {
	subscribe := "subscribe"
	if s.next == "data" {
		subscribe = "start"
	}
	s.c.expectHello(subscribe, "q")
}

// streamSub is an SSE stream's one subscription.
type streamSub struct {
	t *testing.T
	c *sseClient
}

func (s streamSub) result() json.RawMessage {
	ev := s.c.next()
	if ev.event != "next" {
		s.t.Fatalf("got event %q (%s), want next", ev.event, ev.data)
	}
	return json.RawMessage(ev.data)
}

func (s streamSub) refused() string {
	code := onlyErrorCode(s.t, s.result())
	s.complete()
	return code
}

func (s streamSub) complete() {
	if ev := s.c.next(); ev.event != "complete" {
		s.t.Fatalf("got event %q (%s), want complete", ev.event, ev.data)
	}
	s.c.expectEnd(5 * time.Second)
}

// joined returns at once: the stream opened once it had joined.
func (streamSub) joined() {}

// within runs f, failing the test if it has not returned within d.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: not within %s", what, d)
	}
}

// expectTick checks that sub's next result is an event's.
func expectTick(t *testing.T, sub joinSub) {
	t.Helper()
	if got := string(sub.result()); !strings.Contains(got, `"ticks":1`) {
		t.Fatalf("got %s, want the event", got)
	}
}

// waitExecutionsStopped waits until no execution runs on r: one that
// ended has stopped reading events.
func waitExecutionsStopped(t *testing.T, r *replica) {
	t.Helper()
	execs := r.server.execs
	waitFor(t, "the executions to stop", func() bool {
		execs.mu.Lock()
		defer execs.mu.Unlock()
		return execs.running == 0
	})
}

// TestGateAccessPanicAtJoinRefusesOnlyThatSubscriber: the gate's Access
// is asked as a subscriber joins, under the registry's and the
// execution's locks, for the subscriber starting the execution and for
// one joining it. A panic there is logged and taken as a refusal: that
// subscriber ends with FORBIDDEN, the locks are released, and a new
// subscriber of the same subscription joins within a bound and gets its
// events; the process goes on (a socket's panic would have ended it).
func TestGateAccessPanicAtJoinRefusesOnlyThatSubscriber(t *testing.T) {
	for _, tr := range joinTransports {
		for _, joining := range []bool{false, true} {
			name := tr.name + ", starting the execution"
			if joining {
				name = tr.name + ", joining a running execution"
			}
			t.Run(name, func(t *testing.T) {
				g := &annGate{}
				s := newJoinSchema(t)
				s.gate = g
				r, logs := serveJoinPanics(t, s, nil)
				var member *wsClient
				if joining {
					member = r.dialTransport("ann")
					member.subscribe("subscribe", "1", joinedSubscription, nil)
					member.expectHello("subscribe", "q") // handled after the subscribe: it has joined
				}
				g.panicking.Store(true)
				if code := tr.subscribe(t, r, "ann").refused(); code != codeForbidden {
					t.Fatalf("the subscriber Access panicked for got %s, want %s", code, codeForbidden)
				}
				g.panicking.Store(false)
				if !joining {
					waitExecutionsStopped(t, r) // the refused one's, memberless: it reads no more events
				}
				next := tr.subscribe(t, r, "ann")
				next.joined()
				s.events <- "tick"
				expectTick(t, next)
				if member != nil {
					expectTick(t, socketSub{member, "next"})
				}
				checkLogged(t, logs, "recovered panic while asking a subscription's gate whether a subscriber may join",
					"the gate's Access panicked", "stack=")
			})
		}
	}
}

// TestPanicWhileJoiningCostsOnlyTheOperation: what else of another
// package's runs on a socket's goroutine as an operation starts, and what
// its panic costs, once logged:
//   - the executor preparing the operation (here the schema's complexity
//     function): the operation is answered with the internal error as one
//     that failed before it ran, and the socket goes on;
//   - the gate's Denial: the subscriber is refused, FORBIDDEN, with the
//     generic reason;
//   - the resolver's join hook: the joining subscriber ends with the
//     internal error, the members go on;
//   - the executor's dispatch (an operation interceptor): the execution
//     fails as its resolver would, every member given the internal error;
//   - preparing a resumed subscription's live form: the subscriber keeps
//     a private execution;
//   - a panic out of the engine (here Presence's Leave, as the join hook's
//     subscriber leaves): the state is unknown, only that socket is closed,
//     4500 (legacy: 1011).
//
// In each case the socket, or another, goes on serving.
func TestPanicWhileJoiningCostsOnlyTheOperation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(s *joinSchema, o *Options)
		run   func(t *testing.T, r *replica, s *joinSchema, p protocolCase)
		log   string
	}{
		{"preparing the operation", func(_ *joinSchema, o *Options) { o.Limits.MaxComplexity = 100 },
			func(t *testing.T, r *replica, _ *joinSchema, p protocolCase) {
				c := p.open(r, "ann")
				c.subscribe(p.subscribe, "1", `{ boom }`, nil)
				if p.subscribe == "subscribe" {
					if code := onlyErrorCode(t, c.expectFrame("error", "1").Payload); code != codeInternal {
						t.Fatalf("got %s, want %s", code, codeInternal)
					}
				} else {
					if code := onlyErrorCode(t, c.expectFrame("data", "1").Payload); code != codeInternal {
						t.Fatalf("got %s, want %s", code, codeInternal)
					}
					c.expectFrame("complete", "1")
				}
				c.expectHello(p.subscribe, "q")
			}, "recovered panic while starting an operation on a WebSocket"},
		{"the gate's Denial", func(s *joinSchema, _ *Options) { s.gate = &denyingGate{} },
			func(t *testing.T, r *replica, s *joinSchema, p protocolCase) {
				ann := p.open(r, "ann")
				ann.subscribe(p.subscribe, "1", joinedSubscription, nil)
				ann.expectHello(p.subscribe, "q")
				bob := p.open(r, "bob")
				bob.subscribe(p.subscribe, "1", joinedSubscription, nil)
				f := bob.expectFrame("error", "1")
				if code := onlyErrorCode(t, f.Payload); code != codeForbidden ||
					!strings.Contains(string(f.Payload), "you may not receive this subscription's events") {
					t.Fatalf("the refused subscriber got %s, want %s with the generic reason", f.raw, codeForbidden)
				}
				bob.expectHello(p.subscribe, "q")
				s.events <- "tick"
				expectTick(t, socketSub{ann, p.next})
			}, "recovered panic while asking a subscription's gate why it refuses a subscriber"},
		{"the resolver's join hook", func(s *joinSchema, _ *Options) { s.onJoin = func() { panic("the join hook panicked") } },
			func(t *testing.T, r *replica, s *joinSchema, p protocolCase) {
				ann := p.open(r, "ann")
				ann.subscribe(p.subscribe, "1", joinedSubscription, nil)
				ann.expectHello(p.subscribe, "q")
				bob := p.open(r, "bob")
				bob.subscribe(p.subscribe, "1", joinedSubscription, nil)
				if code := onlyErrorCode(t, bob.expectFrame("error", "1").Payload); code != codeInternal {
					t.Fatalf("the joining subscriber got %s, want %s", code, codeInternal)
				}
				bob.expectHello(p.subscribe, "q")
				s.events <- "tick"
				expectTick(t, socketSub{ann, p.next})
			}, "recovered panic while telling a subscription's resolver that a subscriber joined"},
		{"the executor's dispatch", nil,
			func(t *testing.T, r *replica, s *joinSchema, p protocolCase) {
				c := p.open(r, "ann")
				c.subscribe(p.subscribe, "1", dispatchPanicSub, nil)
				if code := onlyErrorCode(t, c.expectFrame(p.next, "1").Payload); code != codeInternal {
					t.Fatalf("got %s, want %s", code, codeInternal)
				}
				c.expectFrame("complete", "1")
				c.expectHello(p.subscribe, "q")
				waitFor(t, "the execution to end", func() bool { return r.server.execs.count() == 0 })
				c.subscribe(p.subscribe, "2", joinedSubscription, nil)
				c.expectHello(p.subscribe, "q2")
				s.events <- "tick"
				expectTick(t, socketSub{c, p.next}.withID("2"))
			}, "recovered panic while starting a subscription"},
		{"preparing the live form", func(_ *joinSchema, o *Options) {
			o.Limits.MaxComplexity = 100
			o.ResumeArgument = "after"
		}, func(t *testing.T, r *replica, s *joinSchema, p protocolCase) {
			c := p.open(r, "ann")
			c.subscribe(p.subscribe, "1", resumableSubscription, map[string]any{"after": "c1"})
			c.expectHello(p.subscribe, "q")
			s.events <- "tick"
			expectTick(t, socketSub{c, p.next})
		}, "recovered panic while preparing a resumed subscription's live form"},
		{"out of the engine", func(s *joinSchema, o *Options) {
			s.topic, s.onJoin = "room", func() { panic("the join hook panicked") }
			o.Presence = leavePanicking{}
		}, func(t *testing.T, r *replica, s *joinSchema, p protocolCase) {
			ann := p.open(r, "ann")
			ann.subscribe(p.subscribe, "1", joinedSubscription, nil)
			ann.expectHello(p.subscribe, "q")
			bob := p.open(r, "bob")
			bob.subscribe(p.subscribe, "1", joinedSubscription, nil)
			bob.expectClose(p.internalClose, 5*time.Second)
			ann.expectHello(p.subscribe, "q2")
			s.events <- "tick"
			expectTick(t, socketSub{ann, p.next})
		}, "recovered panic while starting an operation on a WebSocket"},
	} {
		for _, p := range protocolCases {
			t.Run(tc.name+", "+p.name, func(t *testing.T) {
				s := newJoinSchema(t)
				r, logs := serveJoinPanics(t, s, func(o *Options) {
					if tc.setup != nil {
						tc.setup(s, o)
					}
				})
				tc.run(t, r, s, p)
				checkLogged(t, logs, tc.log, "panicked", "stack=")
			})
		}
	}
}

// protocolCase is one WebSocket protocol as these tests speak it.
type protocolCase struct {
	name          string
	open          func(r *replica, user string) *wsClient
	subscribe     string // the type of the message that starts an operation
	next          string // the type of a result's message
	internalClose int    // the close code of a socket a panic left in an unknown state
}

var protocolCases = []protocolCase{
	{"graphql-transport-ws", (*replica).dialTransport, "subscribe", "next", 4500}, // graphql-ws's InternalServerError
	{"graphql-ws (legacy)", (*replica).dialLegacy, "start", "data", 1011},         // RFC 6455's internal error
}

// socketSubID is a socketSub of another id.
type socketSubID struct {
	socketSub
	id string
}

func (s socketSub) withID(id string) socketSubID { return socketSubID{s, id} }

func (s socketSubID) result() json.RawMessage { return s.c.expectFrame(s.next, s.id).Payload }

// TestPanickedEventReachesEveryMember: an event whose result panics while
// it is made, after the first, ends the execution with the internal error
// for every member: one that joined after the execution started and
// awaits the state its join hook has sent (it skips other results until
// then) gets it too, then complete, rather than complete alone.
func TestPanickedEventReachesEveryMember(t *testing.T) {
	s := newJoinSchema(t)
	s.onJoin = func() {} // sends no state: a joiner awaits one
	r, logs := serveJoinPanics(t, s, nil)
	ann := r.dialTransport("ann")
	ann.subscribe("subscribe", "1", joinedSubscription, nil)
	ann.expectHello("subscribe", "q")
	s.events <- "tick"
	expectTick(t, socketSub{ann, "next"}) // the first result
	bob := r.dialTransport("bob")
	bob.subscribe("subscribe", "1", joinedSubscription, nil)
	bob.expectHello("subscribe", "q")
	s.events <- "panic"
	for _, c := range []*wsClient{ann, bob} {
		if code := onlyErrorCode(t, c.expectFrame("next", "1").Payload); code != codeInternal {
			t.Fatalf("a member got %s, want %s", code, codeInternal)
		}
		c.expectFrame("complete", "1")
	}
	checkLogged(t, logs, "recovered panic while executing a subscription's event", "making an event's result panicked")
}
