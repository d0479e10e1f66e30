package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/chat"
)

// Helpers of the connection-cut tests: raw TCP clients that cut their
// connection (RST, SetLinger(0)) at a chosen stage, and a check that the
// replica returns to its baseline afterwards.

// cutConn is a raw TCP connection to a replica.
type cutConn struct {
	t    *testing.T
	conn *net.TCPConn
	br   *bufio.Reader
}

func (r *replica) cutDial() *cutConn {
	r.t.Helper()
	addr := strings.TrimPrefix(r.http.URL, "http://")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		r.t.Fatalf("dial: %v", err)
	}
	tc := c.(*net.TCPConn)
	r.t.Cleanup(func() { _ = tc.Close() })
	return &cutConn{t: r.t, conn: tc, br: bufio.NewReader(tc)}
}

func (c *cutConn) write(s string) {
	c.t.Helper()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// rst resets the connection: no FIN, no close frame.
func (c *cutConn) rst() {
	_ = c.conn.SetLinger(0)
	_ = c.conn.Close()
}

// readHead reads a response's status line and headers.
func (c *cutConn) readHead() string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			c.t.Fatalf("read head: %v (so far %q)", err, b.String())
		}
		if line == "\r\n" {
			return b.String()
		}
	}
}

// readUntil reads until the bytes read contain s.
func (c *cutConn) readUntil(s string, within time.Duration) string {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	var b bytes.Buffer
	buf := make([]byte, 4096)
	for !bytes.Contains(b.Bytes(), []byte(s)) {
		n, err := c.br.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			c.t.Fatalf("waiting for %q: %v (read %q)", s, err, clipCut(b.String()))
		}
	}
	return b.String()
}

func clipCut(s string) string {
	if len(s) > 400 {
		return s[:400] + "…"
	}
	return s
}

const cutWSKey = "dGhlIHNhbXBsZSBub25jZQ=="

func cutUpgradeRequest(proto string) string {
	return "GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + cutWSKey + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + proto + "\r\n\r\n"
}

// wsFrame is a masked text frame (mask key 0: the payload as is).
func cutWSFrame(payload string) string {
	var b []byte
	b = append(b, 0x81)
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, 0, 0, 0, 0)
	return string(append(b, payload...))
}

func cutJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// cutBaseline is what the replica holds with no client.
type cutBaseline struct {
	goroutines int
}

func (r *replica) cutBaseline() cutBaseline {
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	return cutBaseline{goroutines: runtime.NumGoroutine()}
}

// cutState describes what the replica holds for clients now.
func (r *replica) cutState() (string, bool) {
	m := r.server.ws.metrics
	ss := r.server.sseSingle
	ss.mu.Lock()
	held, reserved := len(ss.held), ss.reserved
	ss.mu.Unlock()
	vals := []struct {
		name string
		v    float64
	}{
		{"openSessions", float64(r.openSockets())},
		{"placesTaken", float64(r.placesTaken())},
		{"execs", float64(r.server.ws.execs.count())},
		{"herald_ws_sockets{transport-ws}", testutil.ToFloat64(m.sockets.WithLabelValues(transportWS.String()))},
		{"herald_ws_sockets{legacy}", testutil.ToFloat64(m.sockets.WithLabelValues(legacyWS.String()))},
		{"herald_http_streams{sse}", testutil.ToFloat64(m.streams.WithLabelValues("sse"))},
		{"herald_http_streams{sse_single}", testutil.ToFloat64(m.streams.WithLabelValues("sse_single"))},
		{"herald_http_streams{multipart}", testutil.ToFloat64(m.streams.WithLabelValues("multipart"))},
		{"herald_ws_operations", testutil.ToFloat64(m.operations)},
		{"herald_shared_executions", testutil.ToFloat64(m.executions)},
		{"sseSingle.held", float64(held)},
		{"sseSingle.reserved", float64(reserved)},
	}
	var parts []string
	clean := true
	for _, v := range vals {
		if v.v != 0 {
			clean = false
		}
		parts = append(parts, fmt.Sprintf("%s=%v", v.name, v.v))
	}
	return strings.Join(parts, " "), clean
}

// cutSettled waits (bounded) for the replica to hold nothing for clients
// and for goroutines to return to the baseline, and fails naming what is
// left.
func (r *replica) cutSettled(t *testing.T, what string, base cutBaseline) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for {
		state, clean := r.cutState()
		g := runtime.NumGoroutine()
		if clean && g <= base.goroutines+3 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			t.Fatalf("%s: replica not back to its baseline after 8s: %s; goroutines %d (baseline %d)\n%s",
				what, state, g, base.goroutines, cutHeraldStacks(stacks))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cutHeraldStacks keeps the goroutine stacks that run server code.
func cutHeraldStacks(all string) string {
	var keep []string
	for _, g := range strings.Split(all, "\n\n") {
		if strings.Contains(g, "herald/server.") && !strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "cutSettled") {
			keep = append(keep, g)
		}
	}
	if len(keep) > 12 {
		keep = keep[:12]
	}
	return strings.Join(keep, "\n\n")
}

// cutCount counts the messages of room whose text is text.
func (r *replica) cutCount(room, text string) int {
	r.t.Helper()
	page, err := r.chat.Messages(context.Background(), room, chat.Window{Last: 100})
	if err != nil {
		r.t.Fatalf("messages: %v", err)
	}
	n := 0
	for _, m := range page.Items {
		if m.Text == text {
			n++
		}
	}
	return n
}
