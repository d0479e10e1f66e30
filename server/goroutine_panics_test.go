package server

import (
	"context"
	"encoding/json"
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

// The tests of this file: code from outside the server package that
// panics on a goroutine the server started, where net/http's recover does
// not reach and the panic would end the replica's process, costs only the
// operation or the socket it ran for. Were a recover missing, the test
// binary itself would die of the panic.

// panickingSchema is the fake schema with two more operations:
// marshalPanic, a query whose result panics while it is made, outside the
// recover a field's resolution has (as gqlgen's generated Exec does when a
// value's MarshalGQL panics: data.MarshalGQL runs after every field's
// recover has returned); and gated, a subscription restricted to gate
// (auth.Restrict), with one result per value sent on events.
type panickingSchema struct {
	fakeSchema
	gate   auth.Gate
	events chan struct{}
}

// panickingViewerDirective marks no field: with it as the server's
// ViewerDirective, every subscriber of gated shares one execution.
const panickingViewerDirective = "viewer"

func newPanickingSchema(t *testing.T, gate auth.Gate) panickingSchema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "panicking.graphql",
		Input: fakeSDL + "directive @" + panickingViewerDirective + " on FIELD_DEFINITION\n"})
	if err != nil {
		t.Fatalf("load schema: %v", err)
	}
	return panickingSchema{fakeSchema: fakeSchema{schema: s}, gate: gate, events: make(chan struct{}, 1)}
}

const (
	marshalPanicQuery = `query marshalPanic { hello(name: "x") }`
	gatedSubscription = `subscription gated { ticks }`
)

func (s panickingSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	op := graphql.GetOperationContext(ctx).Operation
	switch {
	case op == nil:
	case op.Name == "marshalPanic":
		return func(context.Context) *graphql.Response { panic("MarshalGQL of a value panicked") }
	case op.Name == "gated":
		auth.Restrict(ctx, s.gate)
		return func(ctx context.Context) *graphql.Response {
			select {
			case <-s.events:
				return &graphql.Response{Data: json.RawMessage(`{"ticks":1}`)}
			case <-ctx.Done():
				return nil
			}
		}
	}
	return s.fakeSchema.Exec(ctx)
}

// panickingGate admits the users of admitted, since position 0. Its
// Access panics once panicking is set; its Confirm always does.
type panickingGate struct {
	admitted  map[string]bool
	panicking atomic.Bool
}

func (g *panickingGate) Access(user string) (uint64, bool) {
	if g.panicking.Load() {
		panic("the gate's Access panicked")
	}
	return 0, g.admitted[user]
}

func (g *panickingGate) Confirm(context.Context, string) { panic("the gate's Confirm panicked") }

// panickingAuthenticator is auth.Dev, whose connection_init check panics
// for the user "panic".
type panickingAuthenticator struct{ auth.Dev }

func (a panickingAuthenticator) FromInitPayload(ctx context.Context, payload map[string]any) (auth.Identity, bool, error) {
	if payload[auth.DevPayloadKey] == "panic" {
		panic("the authenticator panicked")
	}
	return a.Dev.FromInitPayload(ctx, payload)
}

// servePanicking serves schema with authn (nil: auth.Dev) on a loopback
// listener until the test ends, and returns it with its log.
func servePanicking(t *testing.T, schema graphql.ExecutableSchema, authn auth.Authenticator) (*replica, *testrig.LogBuffer) {
	t.Helper()
	s, logs := newTestServer(t, func(o *Options) {
		o.Schema = schema
		o.PingInterval = time.Minute // no keepalive among the frames the test reads
		o.ViewerDirective = panickingViewerDirective
		if authn != nil {
			o.Authenticator = authn
		}
	})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &replica{t: t, server: s, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}, logs
}

// checkLogged fails unless the log holds each of want.
func checkLogged(t *testing.T, logs *testrig.LogBuffer, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(logs.String(), s) {
			t.Fatalf("the log lacks %q:\n%s", s, logs.String())
		}
	}
}

// onlyErrorCode is the extensions.code of the one error of a result (or
// of an error frame's list of errors).
func onlyErrorCode(t *testing.T, payload json.RawMessage) string {
	t.Helper()
	type gqlErr struct{ Extensions struct{ Code string } }
	var result struct{ Errors []gqlErr }
	var list []gqlErr
	switch {
	case json.Unmarshal(payload, &result) == nil && len(result.Errors) == 1:
		return result.Errors[0].Extensions.Code
	case json.Unmarshal(payload, &list) == nil && len(list) == 1:
		return list[0].Extensions.Code
	}
	t.Fatalf("payload %s: want one error", payload)
	return ""
}

// expectFrame reads the next frame and checks its type and id.
func (c *wsClient) expectFrame(typ, id string) frame {
	c.t.Helper()
	f := c.next()
	if f.Type != typ || f.ID != id {
		c.t.Fatalf("got %s, want %s for %q", f.raw, typ, id)
	}
	return f
}

// expectHello asks a hello query as id and checks the answer: the
// socket still serves.
func (c *wsClient) expectHello(typ, id string) {
	c.t.Helper()
	next, complete := "next", "complete"
	if typ == "start" {
		next = "data"
	}
	c.subscribe(typ, id, `{ hello(name: "y") }`, nil)
	if f := c.expectFrame(next, id); !strings.Contains(string(f.Payload), `"hi y"`) {
		c.t.Fatalf("hello answered %s", f.raw)
	}
	c.expectFrame(complete, id)
}

// TestQueryPanicIsAnsweredWithInternalError: a query whose result panics
// while it is made, sent where the server runs it on a goroutine of its
// own (a socket's, a single-connection stream's), is answered with the
// internal error a resolver's panic gets, then completed, and logged with
// its stack; the connection goes on serving.
func TestQueryPanicIsAnsweredWithInternalError(t *testing.T) {
	for _, tc := range []struct {
		name string
		// open opens a connection as ann and returns what sends a query
		// on it as id and returns its result, checking the complete
		// that follows.
		open func(t *testing.T, r *replica) (ask func(id, query string) json.RawMessage)
	}{
		{"graphql-transport-ws", func(t *testing.T, r *replica) func(string, string) json.RawMessage {
			c := r.dialTransport("ann")
			return func(id, query string) json.RawMessage {
				c.subscribe("subscribe", id, query, nil)
				p := c.expectFrame("next", id).Payload
				c.expectFrame("complete", id)
				return p
			}
		}},
		{"graphql-ws (legacy)", func(t *testing.T, r *replica) func(string, string) json.RawMessage {
			c := r.dialLegacy("ann")
			return func(id, query string) json.RawMessage {
				c.subscribe("start", id, query, nil)
				p := c.expectFrame("data", id).Payload
				c.expectFrame("complete", id)
				return p
			}
		}},
		{"graphql-sse single connection", func(t *testing.T, r *replica) func(string, string) json.RawMessage {
			token := r.reserve("ann")
			c := r.openSingle(token, "ann")
			return func(id, query string) json.RawMessage {
				r.mustOperate(token, "ann", id, query, nil)
				p := c.expect("next", id).payload
				c.expect("complete", id)
				return p
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, logs := servePanicking(t, newPanickingSchema(t, nil), nil)
			ask := tc.open(t, r)
			if code := onlyErrorCode(t, ask("1", marshalPanicQuery)); code != codeInternal {
				t.Fatalf("the panicking query got %s, want %s", code, codeInternal)
			}
			if got := string(ask("2", `{ hello(name: "y") }`)); !strings.Contains(got, `"hi y"`) {
				t.Fatalf("the next query got %s", got)
			}
			checkLogged(t, logs, "recovered panic while executing a query or mutation",
				"operation=marshalPanic", "MarshalGQL of a value panicked", "stack=")
		})
	}
}

// TestGatePanicCostsOnlyItsSubscription: a subscription's gate is the
// domain's code, called by the engine on goroutines of its own: Access
// for every delivery, by the execution's goroutine; Confirm, for a
// subscriber the gate refuses, by the subscriber's (a socket's). Access
// panicking ends the execution, its members given the internal error
// (then complete); Confirm panicking is taken as one that found nothing,
// so the gate refuses the subscriber (FORBIDDEN). Each is logged, and
// every socket goes on serving.
func TestGatePanicCostsOnlyItsSubscription(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, r *replica, s panickingSchema, g *panickingGate)
		log  string
	}{
		{"Access, delivering an event", func(t *testing.T, r *replica, s panickingSchema, g *panickingGate) {
			ann := r.dialTransport("ann")
			ann.subscribe("subscribe", "1", gatedSubscription, nil)
			ann.expectHello("subscribe", "q") // handled after the subscribe: it has joined
			g.panicking.Store(true)
			s.events <- struct{}{}
			if code := onlyErrorCode(t, ann.expectFrame("next", "1").Payload); code != codeInternal {
				t.Fatalf("the subscription got %s, want %s", code, codeInternal)
			}
			ann.expectFrame("complete", "1")
			ann.expectHello("subscribe", "q2")
			waitFor(t, "the execution to end", func() bool { return r.server.execs.count() == 0 })
		}, "recovered panic while delivering a subscription's event"},
		{"Confirm, starting the execution", func(t *testing.T, r *replica, _ panickingSchema, _ *panickingGate) {
			bob := r.dialTransport("bob")
			bob.subscribe("subscribe", "1", gatedSubscription, nil)
			if code := onlyErrorCode(t, bob.expectFrame("error", "1").Payload); code != codeForbidden {
				t.Fatalf("the refused subscriber got %s, want %s", code, codeForbidden)
			}
			bob.expectHello("subscribe", "q")
		}, "recovered panic while confirming a subscriber's access"},
		{"Confirm, joining a running execution", func(t *testing.T, r *replica, s panickingSchema, _ *panickingGate) {
			ann := r.dialTransport("ann")
			ann.subscribe("subscribe", "1", gatedSubscription, nil)
			ann.expectHello("subscribe", "q")
			bob := r.dialTransport("bob")
			bob.subscribe("subscribe", "1", gatedSubscription, nil)
			if code := onlyErrorCode(t, bob.expectFrame("error", "1").Payload); code != codeForbidden {
				t.Fatalf("the refused subscriber got %s, want %s", code, codeForbidden)
			}
			bob.expectHello("subscribe", "q")
			s.events <- struct{}{} // the member goes on receiving
			if f := ann.expectFrame("next", "1"); !strings.Contains(string(f.Payload), `"ticks":1`) {
				t.Fatalf("the member got %s", f.raw)
			}
		}, "recovered panic while confirming a subscriber's access"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &panickingGate{admitted: map[string]bool{"ann": true}}
			s := newPanickingSchema(t, g)
			r, logs := servePanicking(t, s, nil)
			tc.run(t, r, s, g)
			checkLogged(t, logs, tc.log, "panicked", "stack=")
		})
	}
}

// TestAuthenticatorPanicClosesOnlyItsSocket: connection_init's check runs
// on the socket's reader. An authenticator that panics there is logged
// and taken as one that could not check the credentials: that socket is
// closed with 1013 (try again later), and the next is served.
func TestAuthenticatorPanicClosesOnlyItsSocket(t *testing.T) {
	for _, tc := range []struct {
		subprotocol string
		open        func(r *replica, user string) *wsClient
	}{
		{subprotocolTransportWS, (*replica).dialTransport},
		{subprotocolLegacy, (*replica).dialLegacy},
	} {
		t.Run(tc.subprotocol, func(t *testing.T) {
			r, logs := servePanicking(t, newPanickingSchema(t, nil), panickingAuthenticator{})
			c := r.dial(tc.subprotocol)
			c.init("panic")
			c.expectClose(closeTryAgainLater, 5*time.Second)
			tc.open(r, "ann") // acknowledged
			checkLogged(t, logs, "recovered panic while authenticating a WebSocket connection",
				"the authenticator panicked", "stack=")
		})
	}
}
