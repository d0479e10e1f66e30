package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestConnectionsLeaveTheStoreItsDescriptors runs a replica under an
// open-file limit with the default --max-connections, and has clients
// open more connections than the limit allows: idle keep-alive ones (a
// browser's, a proxy's pool, a reconnect storm's queries) or ones that
// send nothing. The listener holds no more than the limit less a reserve,
// so the embedded store can still open its message block: a mutation on
// a WebSocket open all along succeeds and the store logs no write error
// (which nats-server keeps as permanent: every later write would fail).
// New clients are served at once past idle keep-alive connections, which
// are closed as the listener nears its cap, and once the silent ones are
// closed past those.
func TestConnectionsLeaveTheStoreItsDescriptors(t *testing.T) {
	// The default sizing: --max-connections 1100 − 512 = 588, the
	// listener's cap 1100 − 128 − 1 = 971.
	const limit = 1100
	tests := []struct {
		name    string
		request bool // each connection sends a request, and then idles
	}{
		{"idle keep-alive connections", true},
		{"connections that send nothing", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, room, ws := restartedReplicaUnder(t, limit)
			conns := openConnsTo(t, p, limit+50, tt.request)
			defer closeConns(conns)
			if free, ok := freeDescriptors(p, limit); ok {
				t.Logf("%d connections opened; the replica has %d descriptors left of %d", len(conns), free, limit)
				if free < fdReserve/2 {
					t.Errorf("with %d connections open to it, the replica has %d descriptors left of %d", len(conns), free, limit)
				}
			}

			raw := postOver(t, ws, "post", room, "while many connections are open")
			var answer struct {
				Type    string
				Payload struct{ Errors []gqlError }
			}
			_ = json.Unmarshal([]byte(raw), &answer)
			if answer.Type != "next" || len(answer.Payload.Errors) > 0 {
				t.Errorf("with %d connections open, a mutation on a WebSocket open all along got:\n%s", len(conns), raw)
			}
			for _, bad := range []string{"Critical write error", "too many open files"} {
				if strings.Contains(p.logs.String(), bad) {
					t.Errorf("the replica logged %q", bad) // its logs follow
				}
			}

			if tt.request {
				// Shed as the listener neared its cap: a new client is
				// served while the idle connections are still open.
				if err := healthzOnNewConn(p.addr, 5*time.Second); err != nil {
					t.Errorf("a new client while %d idle connections are open: %v", len(conns), err)
				}
			} else if !p.logged("new clients wait to be accepted", 5*time.Second) {
				t.Errorf("the listener never said it reached its cap (%d silent connections)", len(conns))
			}
			closeConns(conns)
			if err := healthzOnNewConn(p.addr, 5*time.Second); err != nil {
				t.Errorf("a new client once the %d connections are closed: %v", len(conns), err)
			}
		})
	}
}

// restartedReplicaUnder starts Herald under `ulimit -n limit` on a data
// dir that already holds a room with one message, as a replica restarted
// by a deploy finds it (nats-server keeps no descriptor of a recovered
// message block until its next write, the same as after a 30 s quiet
// spell, so that write must open one), and returns it with the room
// (loaded) and a graphql-transport-ws socket acknowledged as alice.
func restartedReplicaUnder(t *testing.T, limit int) (*heraldProcess, string, *crashSubscriber) {
	t.Helper()
	dir := t.TempDir()
	shell := fmt.Sprintf("ulimit -n %d", limit)
	first := launchProcessAfter(t, shell, "herald before the restart", "--data-dir", dir, "--drain-timeout", "0s")
	first.waitReady()
	room := createRoom(t, first.addr, "alice", "general")
	postMessage(t, first.addr, "alice", room, "before the restart")
	first.stop(15 * time.Second)

	p := launchProcessAfter(t, shell, "herald", "--data-dir", dir, "--ws-ping-interval", "60s")
	p.waitReady()
	if !p.logged("Herald is serving", 5*time.Second) {
		t.Fatalf("the replica answered /readyz but never logged that it is serving:\n%s", p.logs.String())
	}
	if logs := p.logs.String(); strings.Contains(logs, "cannot size the WebSocket connection limit") ||
		!strings.Contains(logs, fmt.Sprintf("max_connections=%d", limit-socketReserve)) {
		t.Fatalf("the replica did not size --max-connections from the open-file limit %d:\n%s", limit, logs)
	}
	ws := &crashSubscriber{t: t, conn: dialTransportWS(t, p.addr)}
	ws.send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": "alice"}})
	if typ, _, err := ws.next(5 * time.Second); typ != "connection_ack" {
		t.Fatalf("got %q (%v), want connection_ack", typ, err)
	}
	// The room is loaded (read from its block) before the connections
	// come, so that what follows is about writing.
	var out struct {
		Room struct {
			Messages struct{ Nodes []struct{ Text string } }
		}
	}
	gql(t, p.addr, "", `query($id: ID!) { room(id: $id) { messages(last: 10) { nodes { text } } } }`, map[string]any{"id": room}, &out)
	if n := out.Room.Messages.Nodes; len(n) != 1 || n[0].Text != "before the restart" {
		t.Fatalf("room after the restart: %+v", out)
	}
	return p, room, ws
}

// openConnsTo opens n connections to p. With request, each sends GET
// /healthz and reads the answer, then idles (net/http would keep it for
// IdleTimeout, 120 s); it stops early, at the first that is not answered
// within 2 s (the replica no longer accepts). Without, they send nothing,
// and it returns once the replica has taken in what it will.
func openConnsTo(t *testing.T, p *heraldProcess, n int, request bool) []net.Conn {
	t.Helper()
	var conns []net.Conn
	deadline := time.Now().Add(20 * time.Second)
	for range n {
		if time.Now().After(deadline) {
			closeConns(conns)
			t.Fatalf("opening connections took over 20 s (%d open)", len(conns))
		}
		c, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
		if !request {
			continue
		}
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		if err := healthzOn(c); err != nil {
			break // not accepted: the process is out of descriptors
		}
		_ = c.SetDeadline(time.Time{})
	}
	if !request {
		waitDescriptorsSettle(p)
	}
	return conns
}

func closeConns(conns []net.Conn) {
	for _, c := range conns {
		_ = c.Close()
	}
}

// healthzOn sends GET /healthz on c and reads the answer.
func healthzOn(c net.Conn) error {
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}

// healthzOnNewConn asks /healthz on a new connection, answered within
// wait.
func healthzOnNewConn(addr string, wait time.Duration) error {
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	return healthzOn(c)
}

// openDescriptors counts p's open files (Linux's /proc); ok is false
// where it cannot.
func openDescriptors(p *heraldProcess) (int, bool) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	return len(fds), true
}

// freeDescriptors is how many more files p may open under limit.
func freeDescriptors(p *heraldProcess, limit int) (int, bool) {
	n, ok := openDescriptors(p)
	return limit - n, ok
}

// waitDescriptorsSettle waits until p's open files have not changed for
// 300 ms, at most 5 s (or 1 s where they cannot be counted): the replica
// has accepted the connections it will.
func waitDescriptorsSettle(p *heraldProcess) {
	last, ok := openDescriptors(p)
	if !ok {
		time.Sleep(time.Second)
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for stable := time.Now(); time.Now().Before(deadline) && time.Since(stable) < 300*time.Millisecond; {
		time.Sleep(50 * time.Millisecond)
		if n, _ := openDescriptors(p); n != last {
			last, stable = n, time.Now()
		}
	}
}

// postOver sends postMessage on ws and returns the raw answer.
func postOver(t *testing.T, ws *crashSubscriber, id, room, text string) string {
	t.Helper()
	ws.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{
		"query":     `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id text } }`,
		"variables": map[string]any{"r": room, "t": text},
	}})
	_ = ws.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, raw, err := ws.conn.ReadMessage()
	if err != nil {
		t.Fatalf("read the answer to postMessage: %v", err)
	}
	return string(raw)
}
