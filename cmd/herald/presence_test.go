package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// presenceSocket is a graphql-transport-ws client of one process.
type presenceSocket struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialAs(t *testing.T, addr, user string) *presenceSocket {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+addr+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	s := &presenceSocket{t: t, ws: ws}
	s.send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": user}})
	if m := s.read(10 * time.Second); m.Type != "connection_ack" {
		t.Fatalf("got %+v, want connection_ack", m)
	}
	return s
}

func (s *presenceSocket) send(v any) {
	s.t.Helper()
	data, _ := json.Marshal(v)
	if err := s.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		s.t.Fatal(err)
	}
}

type presenceFrame struct {
	ID, Type string
	Payload  struct {
		Data struct {
			RoomPresence struct {
				Kind  string
				User  *struct{ ID string }
				Users []struct{ ID string }
			}
		}
	}
}

func (s *presenceSocket) read(within time.Duration) presenceFrame {
	s.t.Helper()
	for {
		_ = s.ws.SetReadDeadline(time.Now().Add(within))
		var m presenceFrame
		if err := s.ws.ReadJSON(&m); err != nil {
			s.t.Fatalf("read: %v", err)
		}
		if m.Type == "ping" {
			s.send(map[string]any{"type": "pong"})
			continue
		}
		return m
	}
}

// subscribe starts a subscription and returns once the process has it:
// a query sent next on the same socket is answered after it.
func (s *presenceSocket) subscribe(id, query, room string) {
	s.t.Helper()
	s.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": map[string]any{"r": room}}})
	s.send(map[string]any{"id": "q" + id, "type": "subscribe", "payload": map[string]any{"query": `{ viewer { id } }`}})
	for done := false; !done; {
		m := s.read(10 * time.Second)
		done = m.ID == "q"+id && m.Type == "complete"
	}
}

// until reads roomPresence events until users are present; how long it
// took.
func (s *presenceSocket) until(within time.Duration, users ...string) time.Duration {
	s.t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	for {
		if time.Now().After(deadline) {
			s.t.Fatalf("presence never became %q within %s", users, within)
		}
		m := s.read(time.Until(deadline))
		if m.Type != "next" || m.ID != "p" {
			continue
		}
		var got []string
		for _, u := range m.Payload.Data.RoomPresence.Users {
			got = append(got, u.ID)
		}
		if slices.Equal(got, users) {
			return time.Since(start)
		}
	}
}

// TestPresenceAcrossProcesses: three Herald processes on one NATS. A
// process stopped with SIGTERM takes its users out of the others'
// presence at once (it deletes its keys); a process killed with SIGKILL,
// which cleans nothing up, within 10 s (its keys expire).
func TestPresenceAcrossProcesses(t *testing.T) {
	natsAddr := freeAddr(t)
	a := startProcess(t, "replica A", "--data-dir", t.TempDir(), "--nats-listen", natsAddr)
	b := startProcess(t, "replica B", "--data-dir", t.TempDir(), "--nats-url", "nats://"+natsAddr, "--drain-timeout", "1s")
	c := startProcess(t, "replica C", "--data-dir", t.TempDir(), "--nats-url", "nats://"+natsAddr)
	room := createRoom(t, a.addr, "alice", "presence")
	waitVisible(t, b.addr, room)
	waitVisible(t, c.addr, room)

	const posted = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	w := dialAs(t, a.addr, "watcher")
	w.subscribe("p", `subscription($r: ID!) { roomPresence(roomId: $r) { kind user { id } users { id } } }`, room)
	dialAs(t, b.addr, "bob").subscribe("1", posted, room)
	dialAs(t, c.addr, "carol").subscribe("1", posted, room)
	dialAs(t, b.addr, "dave").subscribe("1", posted, room)
	dialAs(t, c.addr, "bob").subscribe("1", posted, room) // bob on two processes
	w.until(10*time.Second, "bob", "carol", "dave", "watcher")

	// B stops cleanly: its sockets close and its keys are deleted as it
	// drains, so dave has left by the time it exited, or just after; not a
	// TTL later. bob stays, present through C.
	b.stop(15 * time.Second)
	if d := w.until(5*time.Second, "bob", "carol", "watcher"); d > 2*time.Second {
		t.Errorf("a stopped process's user left %s after it exited; its keys should be deleted as it stops", d)
	}
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.done
	d := w.until(10*time.Second, "watcher")
	t.Logf("a killed process's users left after %s", d)
}
