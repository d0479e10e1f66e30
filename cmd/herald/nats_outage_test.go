package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
)

// externalNATS is a NATS server with JetStream run by the test on loopback,
// that the test can stop and start again on the same port and store.
type externalNATS struct {
	t    *testing.T
	port int
	dir  string
	srv  *natsserver.Server
}

func newExternalNATS(t *testing.T) *externalNATS {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n := &externalNATS{t: t, dir: t.TempDir()}
	n.port, _ = strconv.Atoi(port)
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *externalNATS) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start runs a server on the port and store; it waits until it accepts
// clients.
func (n *externalNATS) start() {
	n.t.Helper()
	srv, err := natsserver.NewServer(&natsserver.Options{
		ServerName: "test-external",
		Host:       "127.0.0.1",
		Port:       n.port,
		JetStream:  true,
		StoreDir:   n.dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		n.t.Fatalf("new NATS server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		n.t.Fatalf("NATS server on port %d not ready after 10s", n.port)
	}
	n.srv = srv
}

// stop shuts the server down and waits for it; a no-op when stopped.
func (n *externalNATS) stop() {
	if n.srv == nil {
		return
	}
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
	n.srv = nil
}

// outageSubscriber is a graphql-transport-ws socket subscribed to
// messagePosted in one room.
type outageSubscriber struct {
	t    *testing.T
	conn *websocket.Conn
}

type outageFrame struct {
	ID, Type string
	Payload  struct {
		Data struct {
			MessagePosted struct{ Text string }
		}
		Extensions struct{ Cursor string }
	}
}

func subscribeMessages(t *testing.T, addr, room string) *outageSubscriber {
	t.Helper()
	conn := dialTransportWS(t, addr)
	s := &outageSubscriber{t: t, conn: conn}
	s.send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": "watcher"}})
	if f := s.read(); f.Type != "connection_ack" {
		t.Fatalf("got %+v, want connection_ack", f)
	}
	s.send(map[string]any{"id": "sub", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`,
		"variables": map[string]any{"r": room},
	}})
	// Messages are handled in order: once a query sent after the
	// subscription is answered, the subscription is registered.
	s.send(map[string]any{"id": "q", "type": "subscribe", "payload": map[string]any{"query": `{ viewer { id } }`}})
	for _, want := range []string{"next", "complete"} {
		if f := s.read(); f.ID != "q" || f.Type != want {
			t.Fatalf("got %+v, want %s for the query", f, want)
		}
	}
	return s
}

func (s *outageSubscriber) send(v any) {
	s.t.Helper()
	data, _ := json.Marshal(v)
	if err := s.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		s.t.Fatalf("write to the subscriber socket: %v", err)
	}
}

// read returns the next frame but the server's keepalive pings, which it
// answers.
func (s *outageSubscriber) read() outageFrame {
	s.t.Helper()
	for {
		_ = s.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var f outageFrame
		if err := s.conn.ReadJSON(&f); err != nil {
			s.t.Fatalf("read from the subscriber socket: %v", err)
		}
		if f.Type == "ping" {
			s.send(map[string]any{"type": "pong"})
			continue
		}
		return f
	}
}

// expectPosted reads the next frame and checks it is the post of text with
// a cursor not seen before.
func (s *outageSubscriber) expectPosted(text string, cursors map[string]bool) {
	s.t.Helper()
	f := s.read()
	if f.ID != "sub" || f.Type != "next" || f.Payload.Data.MessagePosted.Text != text {
		s.t.Fatalf("got %+v, want the post of %q", f, text)
	}
	if c := f.Payload.Extensions.Cursor; c == "" || cursors[c] {
		s.t.Fatalf("post %q: missing or repeated cursor %q", text, c)
	}
	cursors[f.Payload.Extensions.Cursor] = true
}

// waitReadyz polls /readyz until it answers status, and returns the body.
func waitReadyz(t *testing.T, addr string, status int, within time.Duration) string {
	t.Helper()
	client := &http.Client{Timeout: 3 * time.Second}
	deadline := time.Now().Add(within)
	for {
		resp, err := client.Get("http://" + addr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status {
				return string(body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz still %d after %s, want %d: %s", resp.StatusCode, within, status, body)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("/readyz: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNATSOutage runs a replica on an external NATS server and takes the
// server away: the replica turns unready, mutations fail fast with
// UNAVAILABLE, queries still answer and an open subscriber socket stays
// open. When NATS comes back on the same port and store, the replica turns
// ready and the subscriber receives every later post in order, exactly
// once, and nothing of the failed one.
func TestNATSOutage(t *testing.T) {
	nats := newExternalNATS(t)
	cfg := testConfig(t, t.TempDir())
	cfg.MutationRate = 0 // one user posts through the outage as fast as it can
	cfg.NATSURLs = []string{nats.url()}
	cfg.DrainTimeout = 0
	a := startTestApp(t, cfg)
	addr := a.Addr()

	room := createRoom(t, addr, "alice", "outage")
	sub := subscribeMessages(t, addr, room)
	cursors := map[string]bool{}
	postMessage(t, addr, "bob", room, "before")
	sub.expectPosted("before", cursors)

	nats.stop()
	// The first 503 may come from a stream check that was already waiting
	// when the connection dropped; soon the nats check itself fails.
	deadline := time.Now().Add(10 * time.Second)
	for body := ""; !strings.Contains(body, `"name":"nats","ok":false`); {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the outage does not blame NATS after 10s: %s", body)
		}
		body = waitReadyz(t, addr, http.StatusServiceUnavailable, 5*time.Second)
	}

	start := time.Now()
	r := gql(t, addr, "bob", `mutation($r: ID!) { postMessage(roomId: $r, text: "during") { id } }`, map[string]any{"r": room}, nil)
	if took := time.Since(start); took > time.Second {
		t.Errorf("a mutation during the outage took %s, want under 1s (apply timeout %s)", took, cfg.ApplyTimeout)
	}
	if r.code() != "UNAVAILABLE" {
		t.Fatalf("a mutation during the outage answered %+v, want code UNAVAILABLE", r.Errors)
	}
	t.Logf("mutation during the outage failed after %s: %s", time.Since(start), r.Errors[0].Message)
	var count struct{ Room struct{ MessageCount int } }
	gql(t, addr, "", `query($r: ID!) { room(id: $r) { messageCount } }`, map[string]any{"r": room}, &count)
	if count.Room.MessageCount != 1 {
		t.Errorf("messageCount during the outage = %d, want 1", count.Room.MessageCount)
	}
	// The socket is still open and served: ping gets pong.
	sub.send(map[string]any{"type": "ping"})
	if f := sub.read(); f.Type != "pong" {
		t.Fatalf("got %+v to a ping during the outage, want pong", f)
	}

	nats.start()
	waitReadyz(t, addr, http.StatusOK, 15*time.Second)
	const n = 50
	for i := range n {
		postMessage(t, addr, "bob", room, fmt.Sprintf("after %02d", i))
	}
	// A last post: any duplicate, or the failed post, would arrive before it.
	postMessage(t, addr, "bob", room, "last")
	for i := range n {
		sub.expectPosted(fmt.Sprintf("after %02d", i), cursors)
	}
	sub.expectPosted("last", cursors)

	stopTestApp(t, a) // while NATS is up, so the connection drains cleanly
}
