package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/internal/testrig"
)

// heraldProcess is Herald running as a separate OS process.
type heraldProcess struct {
	t    *testing.T
	name string
	addr string
	cmd  *exec.Cmd
	logs *testrig.LogBuffer
	done chan error
}

// startProcess runs Herald (this test binary in main mode) with args,
// logging warnings and errors only, and waits until it is ready. It is
// killed at the end of the test if still running.
func startProcess(t *testing.T, name string, args ...string) *heraldProcess {
	t.Helper()
	p := launchProcess(t, name, append([]string{"--log-level", "warn"}, args...)...)
	p.waitReady()
	return p
}

// launchProcess runs Herald (this test binary in main mode) with args on a
// free address, and does not wait for it. It is killed at the end of the
// test if still running.
func launchProcess(t *testing.T, name string, args ...string) *heraldProcess {
	t.Helper()
	return launchProcessAfter(t, "", name, args...)
}

// launchProcessAfter is launchProcess, with Herald exec'd by /bin/sh after
// it ran shell (as `trap "" HUP`, which Herald then inherits) when shell
// is not empty: the process is Herald's all the same.
func launchProcessAfter(t *testing.T, shell, name string, args ...string) *heraldProcess {
	t.Helper()
	addr := freeAddr(t)
	p := &heraldProcess{t: t, name: name, addr: addr, logs: &testrig.LogBuffer{}, done: make(chan error, 1)}
	self, err := os.Executable() // absolute: the process runs in another directory
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	p.cmd = exec.Command(self, append([]string{"--addr", addr}, args...)...)
	if shell != "" {
		p.cmd = exec.Command("/bin/sh", append([]string{"-c", shell + `; exec "$0" "$@"`, self, "--addr", addr}, args...)...)
	}
	p.cmd.Env = append(os.Environ(), runAsHeraldEnv+"=1")
	p.cmd.Dir = t.TempDir() // a default --data-dir (./data) lands there, not in the source tree
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s logs:\n%s", name, p.logs.String())
		}
	})
	return p
}

// waitReady waits until /readyz answers 200, at most 20 s.
func (p *heraldProcess) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-p.done:
			p.t.Fatalf("%s exited before it was ready: %v\n%s", p.name, err, p.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not ready after 20s:\n%s", p.name, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logged reports whether p has logged s within the given time. Its
// output reaches p.logs through a pipe and a copying goroutine, so a line
// written before the process answered a request may not be there yet.
func (p *heraldProcess) logged(s string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for !strings.Contains(p.logs.String(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// exitCode waits up to within for the process to exit and returns its
// exit code; it fails the test if the process is still running then.
func (p *heraldProcess) exitCode(within time.Duration) int {
	p.t.Helper()
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			return exit.ExitCode()
		case err != nil:
			p.t.Fatalf("%s ended with %v:\n%s", p.name, err, p.logs.String())
		}
		return 0
	case <-time.After(within):
		p.t.Fatalf("%s still running %s later:\n%s", p.name, within, p.logs.String())
		return -1
	}
}

// stop sends SIGTERM and expects a clean exit within the bound.
func (p *heraldProcess) stop(within time.Duration) {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("%s exited with %v after SIGTERM:\n%s", p.name, err, p.logs.String())
		}
	case <-time.After(within):
		p.t.Fatalf("%s did not exit within %v of SIGTERM", p.name, within)
	}
}

// TestSubscriberOnOneProcessReceivesPostsFromAnother runs two Herald
// processes sharing the first one's embedded NATS: a subscriber on A
// receives, in order and exactly once, every message posted on B.
func TestSubscriberOnOneProcessReceivesPostsFromAnother(t *testing.T) {
	natsAddr := freeAddr(t)
	// One user posts 200 messages as fast as it can: no mutation rate limit.
	a := startProcess(t, "replica A", "--data-dir", t.TempDir(), "--nats-listen", natsAddr, "--mutation-rate", "0")
	b := startProcess(t, "replica B", "--data-dir", t.TempDir(), "--nats-url", "nats://"+natsAddr, "--mutation-rate", "0")

	room := createRoom(t, b.addr, "alice", "cross")
	waitVisible(t, a.addr, room)

	dialer := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := dialer.Dial("ws://"+a.addr+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	send := func(v any) {
		data, _ := json.Marshal(v)
		if err := ws.WriteMessage(websocket.TextMessage, data); err != nil {
			t.Fatal(err)
		}
	}
	type message struct {
		ID, Type string
		Payload  struct {
			Data struct {
				MessagePosted struct{ Text string }
			}
			Extensions struct{ Cursor string }
		}
	}
	read := func() message {
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		var m message
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatalf("read from replica A: %v", err)
		}
		return m
	}
	send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": "watcher"}})
	if m := read(); m.Type != "connection_ack" {
		t.Fatalf("got %+v, want connection_ack", m)
	}
	send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`,
		"variables": map[string]any{"r": room},
	}})
	// The subscription is registered once a query on the same socket
	// answers: messages are handled in order.
	send(map[string]any{"id": "q", "type": "subscribe", "payload": map[string]any{"query": `{ viewer { id } }`}})
	for _, want := range []string{"next", "complete"} {
		if m := read(); m.ID != "q" || m.Type != want {
			t.Fatalf("got %+v, want %s for the query", m, want)
		}
	}

	const n = 200
	for i := range n {
		postMessage(t, b.addr, "bob", room, fmt.Sprintf("m%03d", i))
	}
	cursors := map[string]bool{}
	for i := range n {
		m := read()
		if m.Type == "ping" {
			send(map[string]any{"type": "pong"})
			m = read()
		}
		want := fmt.Sprintf("m%03d", i)
		if m.ID != "1" || m.Type != "next" || m.Payload.Data.MessagePosted.Text != want {
			t.Fatalf("event %d: got %+v, want %s", i, m, want)
		}
		if m.Payload.Extensions.Cursor == "" || cursors[m.Payload.Extensions.Cursor] {
			t.Fatalf("event %d: missing or repeated cursor %q", i, m.Payload.Extensions.Cursor)
		}
		cursors[m.Payload.Extensions.Cursor] = true
	}

	// Stopping A closes the subscriber's socket with 1001, and A exits 0.
	b.stop(15 * time.Second)
	a.stop(15 * time.Second)
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
				t.Fatalf("socket ended with %v, want close 1001", err)
			}
			break
		}
	}
}

func waitVisible(t *testing.T, addr, room string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct{ Room *struct{ ID string } }
		gql(t, addr, "", `query($id: ID!) { room(id: $id) { id } }`, map[string]any{"id": room}, &out)
		if out.Room != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s not visible on %s", room, addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
