package server

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
)

// stubSession is a session whose drop finishes it, or does nothing (a
// session stuck on something that ignores the drop).
type stubSession struct {
	s       *sessions
	stuck   bool
	dropped sync.Once
}

func (c *stubSession) openedAt() time.Time { return time.Time{} }
func (c *stubSession) goAway()             {}
func (c *stubSession) ended() bool         { return false }
func (c *stubSession) user() string        { return "" }
func (c *stubSession) disconnect()         {}

// drop runs under s.mu (see waitServed): the session finishes on a
// goroutine of its own, as a socket's reader does once its connection is
// closed.
func (c *stubSession) drop() {
	if c.stuck {
		return
	}
	c.dropped.Do(func() {
		go func() {
			c.s.track(c, false)
			c.s.done()
		}()
	})
}

// TestWaitServedGivesUpOnStuckSessions: once the drain's context has
// ended and the connections are dropped, waitServed waits dropGrace at
// most, and counts the sessions that had not finished, dropped or only
// admitted.
func TestWaitServedGivesUpOnStuckSessions(t *testing.T) {
	tests := []struct {
		name           string
		finishing      int // open sessions that finish when dropped
		stuck          int // open sessions that ignore the drop
		admittedOnly   int // admitted, never open (an upgrade being authenticated)
		wantDropped    int
		wantUnfinished int
	}{
		{"every session finishes when dropped", 3, 0, 0, 3, 0},
		{"a session ignores the drop", 2, 1, 0, 3, 1},
		{"an admitted session never opens", 1, 0, 1, 1, 1},
		{"nothing admitted", 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSessions(0)
			s.dropGrace = 100 * time.Millisecond
			for i := range tt.finishing + tt.stuck + tt.admittedOnly {
				if s.admit() != admitted {
					t.Fatal("not admitted")
				}
				if i < tt.finishing+tt.stuck {
					s.track(&stubSession{s: s, stuck: i >= tt.finishing}, true)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			type result struct{ dropped, unfinished int }
			got := make(chan result, 1)
			start := time.Now()
			go func() {
				d, u := s.waitServed(ctx)
				got <- result{d, u}
			}()
			select {
			case r := <-got:
				if r.dropped != tt.wantDropped || r.unfinished != tt.wantUnfinished {
					t.Errorf("waitServed = %d dropped, %d unfinished; want %d, %d", r.dropped, r.unfinished, tt.wantDropped, tt.wantUnfinished)
				}
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("waitServed took %s, want about dropGrace (%s)", took, s.dropGrace)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("waitServed did not return within 5s of its context ending")
			}
			// The stuck sessions finish now, so that no goroutine outlives
			// the test.
			for c := range s.open {
				if st, ok := c.(*stubSession); ok && st.stuck {
					s.track(c, false)
					s.done()
				}
			}
		})
	}
}

// hangingSchema is the fake schema whose operations named hang wait, in
// the resolver and heedless of their context, until release is closed.
type hangingSchema struct {
	fakeSchema
	entered chan struct{}
	release chan struct{}
}

func (h hangingSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Name == "hang" {
		h.entered <- struct{}{}
		<-h.release
	}
	return h.fakeSchema.Exec(ctx)
}

// TestDrainGivesUpOnAStuckResolver: a session held by a resolver that
// ignores its context (a socket's query, whose teardown waits for it; a
// socket's or an event stream's subscription, whose resolver runs on the
// session's own goroutine) does not finish when its connection is
// dropped. Drain returns anyway, within about dropGrace of its context
// ending, and says what it gave up on.
func TestDrainGivesUpOnAStuckResolver(t *testing.T) {
	tests := []struct {
		name      string
		start     func(t *testing.T, url string) func()
		wantError []string
	}{
		{"WebSocket query", func(t *testing.T, url string) func() {
			return wsOperation(t, url, "query hang { hello(name: \"x\") }")
		}, []string{"gave up on 1 connections"}},
		{"WebSocket subscription", func(t *testing.T, url string) func() {
			return wsOperation(t, url, "subscription hang { ticks }")
		}, []string{"gave up on 1 connections", "gave up on 1 subscription executions"}},
		{"event stream subscription", func(t *testing.T, url string) func() {
			return streamOperation(t, url, mediaEventStream, "subscription hang { ticks }")
		}, []string{"gave up on 1 connections", "gave up on 1 subscription executions"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := hangingSchema{fakeSchema: newFakeSchema(t), entered: make(chan struct{}, 1), release: make(chan struct{})}
			s, _ := newTestServer(t, func(o *Options) { o.Schema = schema })
			s.sessions.dropGrace = 200 * time.Millisecond
			hs := httptest.NewServer(s)
			released := sync.OnceFunc(func() { close(schema.release) })
			defer hs.Close()
			defer released()
			stop := tt.start(t, hs.URL+"/graphql")
			defer stop()
			receive(t, schema.entered, 5*time.Second, "the resolver to be reached")

			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			drained := make(chan error, 1)
			start := time.Now()
			go func() { drained <- s.Drain(ctx, 0) }()
			select {
			case err := <-drained:
				if took := time.Since(start); took > 3*time.Second {
					t.Errorf("Drain took %s, want about its context (100ms) plus twice dropGrace", took)
				}
				for _, want := range tt.wantError {
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("Drain = %v, want an error saying %q", err, want)
					}
				}
			case <-time.After(5 * time.Second):
				t.Error("Drain did not return within 5s of its context ending")
				released()
				<-drained
			}
			released()
			receive(t, s.sessions.finished(), 5*time.Second, "the session to finish once its resolver returned")
		})
	}
}

// wsOperation opens a graphql-transport-ws socket, starts query on it and
// returns what closes it.
func wsOperation(t *testing.T, url, query string) func() {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatalf("dial: %v (response %v)", err, resp)
	}
	c := &wsClient{t: t, conn: conn}
	c.init("u")
	c.expectType("connection_ack")
	c.subscribe("subscribe", "1", query, nil)
	return func() { _ = conn.Close() }
}
