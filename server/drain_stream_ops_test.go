package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// TestDrainDropEndsStreamedOperations: a query or mutation sent as an
// event stream (graphql-sse distinct connections mode: POST with
// Accept: text/event-stream) counts as a session; when a drain's deadline
// passes, the drop ends its context, as it ends a WebSocket's operations,
// so that the session finishes at once rather than when the resolver
// returns by itself (10 s here), with Drain giving up on it meanwhile.
func TestDrainDropEndsStreamedOperations(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(t *testing.T, url string) func()
	}{
		{"WebSocket", func(t *testing.T, url string) func() { return wsOperation(t, url, "query block { whoami }") }},
		{"event stream", func(t *testing.T, url string) func() {
			return streamOperation(t, url, mediaEventStream, "query block { whoami }")
		}},
		{"event stream, mutation", func(t *testing.T, url string) func() {
			return streamOperation(t, url, mediaEventStream, "mutation block { bump }")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			schema, s, hs := serveBlockingSchema(t)
			stop := tt.start(t, hs.URL+"/graphql")
			defer stop()
			receive(t, schema.entered, 5*time.Second, "the resolver to be reached")
			waitFor(t, "the session to be open", func() bool { return s.sessions.count() == 1 })

			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			drained := make(chan error, 1)
			go func() { drained <- s.Drain(ctx, 0) }()

			// The drop comes at 200 ms; the resolver would return by itself
			// only at 10 s.
			select {
			case <-schema.ended:
			case <-time.After(3 * time.Second):
				t.Errorf("the operation's context did not end within 3s of the drain's deadline: the drop did not reach it")
			}
			wantDropFinished(t, drained)
		})
	}
}

// TestDisconnectEndsStreamedOperation: DisconnectUser ends a query an
// event stream of the user's runs, as it closes a socket before its
// running query's result: the operation's context ends, and the stream
// ends with the disconnection's FORBIDDEN instead of the result.
func TestDisconnectEndsStreamedOperation(t *testing.T) {
	schema, s, hs := serveBlockingSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/graphql",
		strings.NewReader(`{"query":"query block { whoami }"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", mediaEventStream)
	req.Header.Set("X-Herald-User", "alice")
	type answer struct {
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		answered <- answer{string(b), err}
	}()
	receive(t, schema.entered, 5*time.Second, "the resolver to be reached")
	if n := s.DisconnectUser("alice"); n != 1 {
		t.Fatalf("DisconnectUser = %d sessions, want 1", n)
	}
	receive(t, schema.ended, 3*time.Second, "the operation's context to end")
	a := <-answered
	if a.err != nil {
		t.Fatal(a.err)
	}
	if !strings.Contains(a.body, codeForbidden) || strings.Contains(a.body, `"data"`) {
		t.Fatalf("stream: %q, want it ended with %s and no result", a.body, codeForbidden)
	}
}

// recordingExec is a GraphExecutor that records whether an operation was
// dispatched, and whether its context was still live then (a mutation's
// resolver stores its event then).
type recordingExec struct {
	graphql.GraphExecutor
	dispatched, live bool
}

func (e *recordingExec) DispatchOperation(ctx context.Context, _ *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	e.dispatched, e.live = true, ctx.Err() == nil
	return func(context.Context) *graphql.Response { return &graphql.Response{Data: []byte(`{"bump":1}`)} }, ctx
}

// TestStreamEndedBeforeItsOperationBegins: an event stream registered as
// a session may be dropped by a drain, or its user disconnected, before
// its query or mutation begins. A drop's operation runs with its context
// ended; a disconnected user's does not run at all (its stream answers
// FORBIDDEN, which must not hide a mutation stored meanwhile).
func TestStreamEndedBeforeItsOperationBegins(t *testing.T) {
	t.Run("dropped", func(t *testing.T) {
		st := &httpStream{cut: make(chan struct{}), released: true} // released: no ResponseController to set a deadline on
		st.drop()
		exec := &recordingExec{}
		st.run(context.Background(), exec, nil)
		if exec.live {
			t.Fatal("a stream dropped before its operation began ran it with a live context")
		}
	})
	t.Run("disconnected", func(t *testing.T) {
		r := newReplica(t, nil)
		st, _ := r.recordedStream(sseFormat{})
		st.disconnect() // DisconnectUser, between t.open and st.run
		exec := &recordingExec{}
		if resp := st.run(context.Background(), exec, nil); resp != nil || exec.dispatched {
			t.Fatalf("the user was disconnected before the stream's operation began, yet it was dispatched (live: %v)", exec.live)
		}
	})
}
