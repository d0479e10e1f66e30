package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// stalledPostServer answers createRoom and probe posts (delivering the
// probes to its graphql-transport-ws subscribers) but never answers an
// event post ("lg|..."): a server whose mutation path has stalled.
type stalledPostServer struct {
	mu      sync.Mutex
	subs    []func(text string)
	release chan struct{}
}

func (s *stalledPostServer) handler() http.Handler {
	mux := http.NewServeMux()
	up := websocket.Upgrader{Subprotocols: []string{protoTransport}}
	mux.HandleFunc("GET /graphql", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var wmu sync.Mutex
		write := func(v any) {
			b, _ := json.Marshal(v)
			wmu.Lock()
			defer wmu.Unlock()
			_ = c.WriteMessage(websocket.TextMessage, b)
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			var f struct{ ID, Type string }
			_ = json.Unmarshal(msg, &f)
			switch f.Type {
			case "connection_init":
				write(map[string]any{"type": "connection_ack"})
			case "subscribe":
				id := f.ID
				s.mu.Lock()
				s.subs = append(s.subs, func(text string) {
					write(map[string]any{"id": id, "type": "next", "payload": map[string]any{"data": map[string]any{"messagePosted": map[string]any{"text": text}}}})
				})
				s.mu.Unlock()
			}
		}
	})
	mux.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Query     string
			Variables map[string]string
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch {
		case strings.Contains(req.Query, "createRoom"):
			_, _ = w.Write([]byte(`{"data":{"createRoom":{"id":"room-1"}}}`))
		case strings.HasPrefix(req.Variables["t"], "probe|"):
			s.mu.Lock()
			subs := append([]func(string){}, s.subs...)
			s.mu.Unlock()
			for _, send := range subs {
				send(req.Variables["t"])
			}
			_, _ = w.Write([]byte(`{"data":{"postMessage":{"id":"m"}}}`))
		default: // an event: stalled
			select {
			case <-r.Context().Done():
			case <-s.release:
			}
		}
	})
	return mux
}

// TestPublishTimeoutEndsStalledRun shows that a server that stops answering
// posts fails the run within PublishTimeout. Before, publishing had no bound
// of its own: each post waited out the HTTP client's 30 s timeout, one at a
// time per room, so S1 (1,000 events on one room) would have run for over
// 8 hours.
func TestPublishTimeoutEndsStalledRun(t *testing.T) {
	s := &stalledPostServer{release: make(chan struct{})}
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	defer close(s.release)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	cfg := Config{URL: srv.URL + "/graphql", Protocol: "transport", Rooms: 1, Connections: 2, Events: 4,
		RequireZeroLoss: true, SetupTimeout: 5 * time.Second, HandshakeTimeout: 5 * time.Second,
		PublishTimeout: 2 * time.Second, DrainTimeout: 2 * time.Second, Settle: 100 * time.Millisecond}
	type outcome struct {
		rep *Report
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		rep, err := Run(ctx, cfg)
		done <- outcome{rep, err}
	}()
	// Setup, 2 s of publishing, 2 s of drain, the settle and closing.
	select {
	case o := <-done:
		if o.err != nil {
			t.Fatal(o.err)
		}
		if o.rep.Pass || !slices.ContainsFunc(o.rep.Failures, func(f string) bool {
			return strings.HasPrefix(f, "publish: not done within 2s")
		}) {
			t.Fatalf("a run whose posts stalled: pass %v, failures %q; want the publish timeout among them", o.rep.Pass, o.rep.Failures)
		}
	case <-time.After(20 * time.Second):
		cancel()
		o := <-done
		t.Fatalf("Run still publishing 20s after it started with a publish timeout of 2s (failures %q)", o.rep.Failures)
	}
}
