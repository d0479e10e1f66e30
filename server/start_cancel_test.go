package server

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
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

// singleConnectionOperation reserves a graphql-sse single-connection-mode
// stream, opens it and posts query to it as operation "1", and returns
// what ends the stream and the post (the client going). The post is
// answered only once the operation has started, so it is sent on a
// goroutine of its own.
func singleConnectionOperation(t *testing.T, url, query string) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	send := func(method, body string, header http.Header) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("new %s request: %w", method, err)
		}
		maps.Copy(req.Header, header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, url, err)
		}
		return resp, nil
	}
	resp, err := send(http.MethodPut, "", nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	token, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		cancel()
		t.Fatalf("PUT: %d %s, want 201 and a stream token", resp.StatusCode, token)
	}
	withToken := http.Header{streamTokenHeader: {string(token)}}
	stream, err := send(http.MethodGet, "", http.Header{streamTokenHeader: {string(token)}, "Accept": {mediaEventStream}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if stream.StatusCode != http.StatusOK {
		stream.Body.Close()
		cancel()
		t.Fatalf("GET the stream: %d, want 200", stream.StatusCode)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		// Read until the stream ends or the request is cancelled.
		_, _ = io.Copy(io.Discard, stream.Body)
		stream.Body.Close()
	})
	wg.Go(func() {
		header := withToken.Clone()
		header.Set("Content-Type", "application/json")
		if resp, err := send(http.MethodPost, `{"query":`+jsonString(query)+`,"extensions":{"operationId":"1"}}`, header); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	return func() { cancel(); wg.Wait() }
}

func jsonString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// connectionEnd is how TestStartingResolverEndsWithItsConnection ends a
// connection.
type connectionEnd int

const (
	clientGone  connectionEnd = iota // the client closes it
	drainGoAway                      // a drain whose deadline is far off: its goAway alone
	drainDrop                        // a drain whose deadline passes: its drop
)

// TestStartingResolverEndsWithItsConnection: a subscription whose
// resolver is still starting when its socket or stream goes (told to go
// away by a drain, dropped by one, or its client gone) has the resolver's
// context cancelled, so the session finishes and the drain gives up on
// nothing. A drain's goAway alone does it: the drain does not wait for its
// deadline's drop.
func TestStartingResolverEndsWithItsConnection(t *testing.T) {
	const query = "subscription block { ticks }"
	ws := func(t *testing.T, url string) func() { return wsOperation(t, url, query) }
	eventStream := func(t *testing.T, url string) func() { return streamOperation(t, url, mediaEventStream, query) }
	multipart := func(t *testing.T, url string) func() { return streamOperation(t, url, acceptMultipart, query) }
	single := func(t *testing.T, url string) func() { return singleConnectionOperation(t, url, query) }
	tests := []struct {
		name  string
		start func(t *testing.T, url string) func()
		end   connectionEnd
	}{
		{"WebSocket, drain's goAway", ws, drainGoAway},
		{"WebSocket, drain's drop", ws, drainDrop},
		{"WebSocket, client gone", ws, clientGone},
		{"event stream, drain's goAway", eventStream, drainGoAway},
		{"event stream, drain's drop", eventStream, drainDrop},
		{"event stream, client gone", eventStream, clientGone},
		{"multipart, drain's goAway", multipart, drainGoAway},
		{"multipart, drain's drop", multipart, drainDrop},
		{"multipart, client gone", multipart, clientGone},
		{"single connection, drain's goAway", single, drainGoAway},
		{"single connection, drain's drop", single, drainDrop},
		{"single connection, client gone", single, clientGone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schema, s, hs := serveBlockingSchema(t)
			stop := tt.start(t, hs.URL+"/graphql")
			defer stop()
			receive(t, schema.entered, 5*time.Second, "the resolver to be reached")
			drained := make(chan error, 1)
			switch tt.end {
			case clientGone:
				stop()
			case drainGoAway, drainDrop:
				// The drop comes after the resolver's 10 s unless the
				// drain's deadline is short.
				deadline := 30 * time.Second
				if tt.end == drainDrop {
					deadline = 100 * time.Millisecond
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				defer cancel()
				go func() { drained <- s.Drain(ctx, 0) }()
			}
			receive(t, schema.ended, 3*time.Second, "the resolver's context to end with its connection")
			receive(t, s.sessions.finished(), 5*time.Second, "the session to finish")
			switch tt.end {
			case drainGoAway:
				select {
				case err := <-drained:
					if err != nil {
						t.Errorf("Drain = %v, want nil: its goAway ends the session, nothing is dropped", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("timed out after 5s waiting for the drain to return")
				}
			case drainDrop:
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
	schema, s, hs := serveBlockingSchema(t)
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

// serveBlockingSchema serves a blocking schema (quick keepalives, so a
// socket gone is noticed at once) until the test ends.
func serveBlockingSchema(t *testing.T) (blockingSchema, *Server, *httptest.Server) {
	t.Helper()
	schema := newBlockingSchema(t)
	s, _ := newTestServer(t, func(o *Options) {
		o.Schema = schema
		o.PingInterval, o.PongTimeout = 100*time.Millisecond, 100*time.Millisecond
	})
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return schema, s, hs
}
