package server

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
)

// gatedSchema is the fake schema whose operations named gate wait, in the
// resolver, until open is closed, and then count as stored (as a
// mutation's event appended to the log), or until their context ends,
// storing nothing.
type gatedSchema struct {
	fakeSchema
	entered chan struct{}
	open    chan struct{}
	stored  *atomic.Int32
}

func newGatedSchema(t *testing.T, capacity int) gatedSchema {
	return gatedSchema{fakeSchema: newFakeSchema(t), entered: make(chan struct{}, capacity),
		open: make(chan struct{}), stored: new(atomic.Int32)}
}

func (g gatedSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Name == "gate" {
		g.entered <- struct{}{}
		select {
		case <-g.open:
			g.stored.Add(1)
		case <-ctx.Done():
		}
	}
	return g.fakeSchema.Exec(ctx)
}

// serveSchema serves schema on a loopback listener until the test ends,
// as a replica the harness's dial helpers can reach.
func serveSchema(t *testing.T, schema graphql.ExecutableSchema) *replica {
	t.Helper()
	s, _ := newTestServer(t, func(o *Options) {
		o.Schema = schema
		o.PingInterval = time.Minute // no keepalive among the frames the test reads
	})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return &replica{t: t, server: s, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}
}

// leavingSockets counts the sockets a drain has told to go away.
func leavingSockets(s *Server) int {
	s.sessions.mu.Lock()
	defer s.sessions.mu.Unlock()
	n := 0
	for c := range s.sessions.open {
		if ws, ok := c.(*wsConn); ok && ws.isLeaving() {
			n++
		}
	}
	return n
}

// TestDrainAnswersOperationsInFlight: a socket has mutations (or
// queries) running when a drain tells it to go away. It is closed with
// 1001 only once each has been answered, so that no mutation is stored
// without its client learning it; an operation sent after the drain
// began is neither run nor answered (the client sends it again on the
// socket it reconnects with). A drain's deadline far off does not hurry
// any of it.
func TestDrainAnswersOperationsInFlight(t *testing.T) {
	tests := []struct {
		name     string
		dial     func(r *replica) *wsClient
		start    string // the message type that starts an operation
		result   string // the message type of its result
		document string
		// syncReader sends a message the socket answers at once, whatever
		// the drain: its answer shows that the reader has handled what
		// was sent before it.
		syncReader func(c *wsClient) (answer string)
	}{
		{"graphql-transport-ws, mutations", func(r *replica) *wsClient { return r.dialTransport("u") }, "subscribe", "next",
			"mutation gate { bump }", func(c *wsClient) string { c.send(map[string]any{"type": "ping"}); return "pong" }},
		{"graphql-transport-ws, queries", func(r *replica) *wsClient { return r.dialTransport("u") }, "subscribe", "next",
			"query gate { whoami }", func(c *wsClient) string { c.send(map[string]any{"type": "ping"}); return "pong" }},
		{"graphql-ws (legacy), mutations", func(r *replica) *wsClient { return r.dialLegacy("u") }, "start", "data",
			"mutation gate { bump }", func(c *wsClient) string { c.sendRaw("not JSON"); return "connection_error" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 4
			schema := newGatedSchema(t, n+1)
			r := serveSchema(t, schema)
			c := tt.dial(r)
			for i := range n {
				c.subscribe(tt.start, fmt.Sprintf("op%d", i), tt.document, nil)
			}
			for range n {
				receive(t, schema.entered, 5*time.Second, "the operations to be running")
			}

			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			drained := make(chan error, 1)
			go func() { drained <- r.server.Drain(ctx, 0) }()
			waitFor(t, "the drain to tell the socket to go away", func() bool { return leavingSockets(r.server) == 1 })

			c.subscribe(tt.start, "late", tt.document, nil)
			want := tt.syncReader(c)
			if f, err := c.read(5 * time.Second); err != nil || f.Type != want {
				t.Fatalf("got %s (%v) while the operations run, want only %s: the socket did not wait for them", f.raw, err, want)
			}
			close(schema.open)

			got := map[string][]string{} // id → its frames' types, in order
			closeCode := 0
			for {
				f, err := c.read(5 * time.Second)
				if err != nil {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) {
						t.Fatalf("socket ended with %v, want a close frame", err)
					}
					closeCode = ce.Code
					break
				}
				if !f.keepalive() {
					got[f.ID] = append(got[f.ID], f.Type)
				}
			}
			if closeCode != closeGoingAway {
				t.Errorf("close code %d, want %d (going away)", closeCode, closeGoingAway)
			}
			for i := range n {
				id := fmt.Sprintf("op%d", i)
				if frames := got[id]; !slices.Equal(frames, []string{tt.result, "complete"}) {
					t.Errorf("operation %s got %v before the close, want its answer: %s, complete", id, frames, tt.result)
				}
			}
			if frames, ok := got["late"]; ok {
				t.Errorf("the operation sent after the drain began got %v, want nothing", frames)
			}
			if len(got) > n {
				t.Errorf("frames for other ids: %v", got)
			}
			if len(schema.entered) != 0 {
				t.Error("the operation sent after the drain began was run")
			}
			if stored := schema.stored.Load(); stored != n {
				t.Errorf("%d operations stored, want %d, each answered", stored, n)
			}
			select {
			case err := <-drained:
				if err != nil {
					t.Errorf("Drain = %v, want nil", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Drain did not return within 5s of the socket's close")
			}
		})
	}
}

// TestDrainDeadlineCancelsOperationsInFlight: the wait for a socket's
// operations is bounded by the drain's deadline. A mutation that does not
// finish by itself runs until the deadline (not cancelled by the drain's
// start), is cancelled then, and the connection is cut, as the drop of
// any socket; Drain gives up on nothing.
func TestDrainDeadlineCancelsOperationsInFlight(t *testing.T) {
	schema := newBlockingSchema(t)
	r := serveSchema(t, schema)
	s := r.server
	c := r.dialTransport("u")
	c.subscribe("subscribe", "m", "mutation block { bump }", nil)
	receive(t, schema.entered, 5*time.Second, "the mutation to be running")

	const bound = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	deadline, _ := ctx.Deadline()
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(ctx, 0) }()

	receive(t, schema.ended, 3*time.Second, "the mutation's context to end at the drain's deadline")
	if early := time.Until(deadline); early > 0 {
		t.Errorf("the mutation was cancelled %s before the drain's deadline: the drain did not wait for it", early)
	}
	for {
		f, err := c.read(3 * time.Second)
		if err != nil {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the socket was still open 3s after the drain's deadline")
			}
			break // cut, or closed
		}
		if f.ID == "m" {
			t.Logf("after the deadline: %s", f.raw)
		}
	}
	wantDropFinished(t, drained)
	receive(t, s.sessions.finished(), 5*time.Second, "the socket to finish")
}
