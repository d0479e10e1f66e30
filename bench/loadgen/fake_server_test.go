package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A small graphql-transport-ws server whose deliveries of loadgen's events
// can be made to misbehave in known ways, to check that loadgen reports
// each misbehaviour and fails the run rather than passing it as clean.

// fakeSub is one subscription on the fake server.
type fakeSub struct {
	room  string
	id    string
	write func(b []byte)
	close func(code int)
}

func (s *fakeSub) send(text string) {
	b, _ := json.Marshal(map[string]any{"id": s.id, "type": "next",
		"payload": map[string]any{"data": map[string]any{"messagePosted": map[string]any{"text": text}}}})
	s.write(b)
}

// fakeServer answers createRoom and postMessage; a probe goes to every
// subscription of its room; an event ("lg|room|seq|sent") goes through
// deliver (nil: to every subscription of its room).
type fakeServer struct {
	mu      sync.Mutex
	rooms   int
	subs    []*fakeSub
	conns   []*websocket.Conn
	events  int
	deliver func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub)
}

func (f *fakeServer) roomSubs(room string) []*fakeSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeSub
	for _, s := range f.subs {
		if s.room == room {
			out = append(out, s)
		}
	}
	return out
}

func (f *fakeServer) start(t *testing.T) string {
	mux := http.NewServeMux()
	up := websocket.Upgrader{Subprotocols: []string{protoTransport}}
	mux.HandleFunc("GET /graphql", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		var wmu sync.Mutex
		write := func(b []byte) {
			wmu.Lock()
			defer wmu.Unlock()
			_ = c.WriteMessage(websocket.TextMessage, b)
		}
		closeWith := func(code int) {
			wmu.Lock()
			defer wmu.Unlock()
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, "fake"), time.Now().Add(time.Second))
			_ = c.Close()
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			var fr struct {
				ID      string
				Type    string
				Payload struct{ Variables map[string]string }
			}
			_ = json.Unmarshal(msg, &fr)
			switch fr.Type {
			case "connection_init":
				write([]byte(`{"type":"connection_ack"}`))
			case "ping":
				write([]byte(`{"type":"pong"}`))
			case "subscribe":
				f.mu.Lock()
				f.subs = append(f.subs, &fakeSub{room: fr.Payload.Variables["r"], id: fr.ID, write: write, close: closeWith})
				f.mu.Unlock()
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
			f.mu.Lock()
			f.rooms++
			id := "room-" + strconv.Itoa(f.rooms)
			f.mu.Unlock()
			_, _ = w.Write([]byte(`{"data":{"createRoom":{"id":"` + id + `"}}}`))
			return
		case strings.Contains(req.Query, "postMessage"):
		default:
			http.Error(w, "unexpected", 400)
			return
		}
		room, text := req.Variables["r"], req.Variables["t"]
		subs := f.roomSubs(room)
		if rest, ok := strings.CutPrefix(text, "lg|"); ok && f.deliver != nil {
			parts := strings.Split(rest, "|")
			seq, _ := strconv.Atoi(parts[1])
			f.mu.Lock()
			f.events++
			n := f.events
			f.mu.Unlock()
			f.deliver(f, n, seq, room, text, subs)
		} else {
			for _, s := range subs {
				s.send(text)
			}
		}
		_, _ = w.Write([]byte(`{"data":{"postMessage":{"id":"m"}}}`))
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL + "/graphql"
}

// runAgainstFake runs loadgen against f: 4 connections (graphql-transport-ws,
// one subscription each) over 2 rooms, 10 events, zero loss required;
// tweak changes the configuration.
func runAgainstFake(t *testing.T, f *fakeServer, tweak func(*Config)) *Report {
	t.Helper()
	cfg := Config{URL: f.start(t), Protocol: "transport", Connections: 4, Rooms: 2, Events: 10, Inflight: 2,
		RequireZeroLoss: true, SetupTimeout: 10 * time.Second, DrainTimeout: time.Second, Settle: 300 * time.Millisecond}
	if tweak != nil {
		tweak(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Setup.Failed {
		t.Fatalf("setup failed: %v %v", rep.Failures, rep.ErrorSample)
	}
	return rep
}

func toAll(subs []*fakeSub, text string) {
	for _, s := range subs {
		s.send(text)
	}
}

// onStarted runs do 200 ms after loadgen creates the started file (at the
// start of its publish or idle phase), giving up after 20 s.
func onStarted(started string, do func()) {
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(started); err == nil {
				time.Sleep(200 * time.Millisecond)
				do()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
}

// wantFailure checks that rep failed with a failure starting with prefix.
func wantFailure(t *testing.T, rep *Report, prefix string) {
	t.Helper()
	if rep.Pass || !slices.ContainsFunc(rep.Failures, func(f string) bool { return strings.HasPrefix(f, prefix) }) {
		d := rep.Delivery
		if d == nil {
			d = &DeliveryReport{}
		}
		t.Errorf("pass %v, failures %q; want a failure %q. lost %d dup %d reordered %d misrouted %d foreign %d bad frames %d; "+
			"received %d of %d, drain complete %v; open at end %d of %d; errors %v",
			rep.Pass, rep.Failures, prefix, d.Lost, d.Duplicated, d.Reordered, d.Misrouted, d.Foreign, d.BadFrames,
			d.Received, d.Expected, d.DrainComplete, rep.Setup.ConnectionsOpenAtEnd, rep.Setup.ConnectionsEstablished, rep.Errors)
	}
}
