package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
)

// blockingSchema is the fake schema whose operations named block wait,
// in the resolver, until their context ends (at most 10 s), and then say
// so on ended.
type blockingSchema struct {
	fakeSchema
	entered chan struct{}
	ended   chan struct{}
}

func newBlockingSchema(t *testing.T) blockingSchema {
	return blockingSchema{fakeSchema: newFakeSchema(t), entered: make(chan struct{}, 4), ended: make(chan struct{}, 4)}
}

func (b blockingSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Name == "block" {
		b.entered <- struct{}{}
		select {
		case <-ctx.Done():
			b.ended <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}
	return b.fakeSchema.Exec(ctx)
}

// pendingMembers counts the members of executions whose resolver is still
// running.
func pendingMembers(s *Server) int {
	reg := s.execs
	reg.mu.Lock()
	defer reg.mu.Unlock()
	n := 0
	for _, e := range reg.byKey {
		select {
		case <-e.started:
			continue
		default:
		}
		e.mu.RLock()
		n += len(e.members)
		e.mu.RUnlock()
	}
	return n
}

// streamOperation starts query as an HTTP stream of the media type accept
// and returns what ends the request (the client going).
func streamOperation(t *testing.T, url, accept, query string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"query":`+jsonString(query)+`}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			// Read until the stream ends or the request is cancelled:
			// closing the body at once would be the client going.
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	return func() { cancel(); <-done }
}

func jsonString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// TestStartingResolverEndsWithItsConnection: a subscription whose
// resolver is still starting when its socket or stream goes (dropped by a
// drain, or its client gone) has the resolver's context cancelled, so the
// session finishes and the drain gives up on nothing.
func TestStartingResolverEndsWithItsConnection(t *testing.T) {
	const query = "subscription block { ticks }"
	tests := []struct {
		name  string
		start func(t *testing.T, url string) func()
		drain bool // end it with a drain; otherwise its client goes
	}{
		{"WebSocket, drained", func(t *testing.T, url string) func() { return wsOperation(t, url, query) }, true},
		{"WebSocket, client gone", func(t *testing.T, url string) func() { return wsOperation(t, url, query) }, false},
		{"event stream, drained", func(t *testing.T, url string) func() {
			return streamOperation(t, url, mediaEventStream, query)
		}, true},
		{"event stream, client gone", func(t *testing.T, url string) func() {
			return streamOperation(t, url, mediaEventStream, query)
		}, false},
		{"multipart, drained", func(t *testing.T, url string) func() {
			return streamOperation(t, url, acceptMultipart, query)
		}, true},
		{"multipart, client gone", func(t *testing.T, url string) func() {
			return streamOperation(t, url, acceptMultipart, query)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema := newBlockingSchema(t)
			s, _ := newTestServer(t, func(o *Options) {
				o.Schema = schema
				o.PingInterval, o.PongTimeout = 100*time.Millisecond, 100*time.Millisecond
			})
			hs := httptest.NewServer(s)
			defer hs.Close()
			stop := tt.start(t, hs.URL+"/graphql")
			defer stop()
			receive(t, schema.entered, 5*time.Second, "the resolver to be reached")
			drained := make(chan error, 1)
			if tt.drain {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				go func() { drained <- s.Drain(ctx, 0) }()
			} else {
				stop()
			}
			receive(t, schema.ended, 3*time.Second, "the resolver's context to end with its connection")
			receive(t, s.sessions.finished(), 5*time.Second, "the session to finish")
			if tt.drain {
				if err := <-drained; err != nil && strings.Contains(err.Error(), "gave up") {
					t.Errorf("Drain = %v, want nothing given up on", err)
				}
			}
		})
	}
}

// TestStartingResolverKeptForOtherMembers: when the socket that started a
// shared execution goes while its resolver runs, the resolver goes on for
// the subscriber that joined meanwhile; it is cancelled once that one
// goes too.
func TestStartingResolverKeptForOtherMembers(t *testing.T) {
	const query = "subscription block { ticks }"
	schema := newBlockingSchema(t)
	s, _ := newTestServer(t, func(o *Options) {
		o.Schema = schema
		o.PingInterval, o.PongTimeout = 100*time.Millisecond, 100*time.Millisecond
	})
	hs := httptest.NewServer(s)
	defer hs.Close()
	closeStarter := wsOperation(t, hs.URL+"/graphql", query)
	defer closeStarter()
	receive(t, schema.entered, 5*time.Second, "the resolver to be reached")
	closeJoiner := wsOperation(t, hs.URL+"/graphql", query)
	defer closeJoiner()
	waitFor(t, "the second subscriber waiting for the start", func() bool { return pendingMembers(s) == 2 })

	closeStarter()
	waitFor(t, "the starter left", func() bool { return pendingMembers(s) == 1 })
	select {
	case <-schema.ended:
		t.Fatal("the resolver was cancelled though a member remains")
	case <-time.After(300 * time.Millisecond):
	}

	closeJoiner()
	receive(t, schema.ended, 3*time.Second, "the resolver's context to end once its last member went")
	receive(t, s.sessions.finished(), 5*time.Second, "the sessions to finish")
	if n := len(schema.entered); n != 0 {
		t.Errorf("%d more resolvers ran; want one shared execution", n)
	}
}
