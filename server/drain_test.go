package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestDrainOffset(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		window time.Duration
		want   []time.Duration
	}{
		{"one socket closes at once", 1, 10 * time.Second, []time.Duration{0}},
		{"two sockets: start and middle", 2, 10 * time.Second, []time.Duration{0, 5 * time.Second}},
		{"four sockets", 4, time.Second, []time.Duration{0, 250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond}},
		{"window not divisible by n", 3, 10 * time.Nanosecond, []time.Duration{0, 3, 6}},
		{"window shorter than n", 4, 2 * time.Nanosecond, []time.Duration{0, 0, 1, 1}},
		{"no window: all at once", 3, 0, []time.Duration{0, 0, 0}},
		{"negative window: all at once", 2, -time.Second, []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, want := range tt.want {
				if got := drainOffset(i, tt.n, tt.window); got != want {
					t.Errorf("drainOffset(%d, %d, %s) = %s, want %s", i, tt.n, tt.window, got, want)
				}
			}
		})
	}
}

// TestDrainOffsetSpreadsEvenly checks the schedule's properties for many
// sizes: it starts at once, never goes backwards, ends inside the window,
// equals i*window/n exactly (no overflow even for a 10-minute window over a
// million sockets), and no tenth of the window holds more than a tenth of
// the sockets (rounded up).
func TestDrainOffsetSpreadsEvenly(t *testing.T) {
	tests := []struct {
		n      int
		window time.Duration
	}{
		{1, time.Second}, {7, time.Second}, {10, 2 * time.Second}, {999, 2 * time.Second},
		{2000, 2 * time.Second}, {2001, 2 * time.Second}, {50_000, 10 * time.Second},
		{1_000_000, 10 * time.Minute}, {3, 10 * time.Minute}, {123_457, 7*time.Minute + 13*time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d over %s", tt.n, tt.window), func(t *testing.T) {
			var buckets [10]int
			prev := time.Duration(-1)
			for i := range tt.n {
				got := drainOffset(i, tt.n, tt.window)
				exact := new(big.Int).Mul(big.NewInt(int64(tt.window)), big.NewInt(int64(i)))
				exact.Quo(exact, big.NewInt(int64(tt.n)))
				if !exact.IsInt64() || exact.Int64() != int64(got) {
					t.Fatalf("offset %d = %d, want %s", i, got, exact)
				}
				if got < prev || got < 0 || got >= tt.window {
					t.Fatalf("offset %d = %s after %s: not within [0, %s) and non-decreasing", i, got, prev, tt.window)
				}
				prev = got
				buckets[int(got*10/tt.window)]++
			}
			if first := drainOffset(0, tt.n, tt.window); first != 0 {
				t.Fatalf("first close at %s, want at once", first)
			}
			most := (tt.n + 9) / 10
			for b, count := range buckets {
				if count > most {
					t.Errorf("tenth %d of the window holds %d closes, more than %d", b, count, most)
				}
			}
		})
	}
}

// drainClient records how and when the server closed a socket.
type drainClient struct {
	conn   *websocket.Conn
	code   int // 0: ended without a close frame
	err    error
	closed time.Time
}

// await reads until the socket ends, answering nothing (keepalive is off
// for the test's duration), and records the ending.
func (c *drainClient) await(within time.Duration) {
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			c.closed, c.err = time.Now(), err
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.code = ce.Code
			}
			return
		}
	}
}

// TestDrainClosesSocketsOneByOneOverTheWindow drains a replica with open
// sockets: readiness fails and new sockets are refused as soon as the
// drain starts, while the open ones keep working; then each is closed with
// 1001, oldest first, not before its slot in the window and not long after.
//
// "Not long after" is a third of the window: that leaves a second for a
// loaded machine to deliver the close frame and run the reader, and still
// fails if the closes were spread over a longer window than asked, or
// bunched at its end. (The window was 600 ms with 250 ms to spare, which a
// loaded machine exceeded.)
func TestDrainClosesSocketsOneByOneOverTheWindow(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.PingInterval = time.Minute })
	room := r.room("drain")
	const n = 10
	const window = 3 * time.Second
	const late = window / 3
	clients := make([]*drainClient, n)
	for i := range clients {
		c := r.dialTransport("u")
		if i%2 == 0 {
			// Half of them subscribe: the shared execution must stop too.
			c.subscribe("subscribe", "s", `subscription($r: ID!) { messagePosted(roomId: $r) { id } }`, map[string]any{"r": room})
		}
		clients[i] = &drainClient{conn: c.conn}
	}
	waitFor(t, "the subscriptions to join", func() bool { return r.members() == n/2 })
	if status, body := r.get("/readyz"); status != http.StatusOK {
		t.Fatalf("before the drain /readyz = %d %s", status, body)
	}

	r.server.StartDrain()
	if !r.server.Draining() {
		t.Fatal("Draining() = false after StartDrain")
	}
	status, body := r.get("/readyz")
	var ready readiness
	if err := json.Unmarshal([]byte(body), &ready); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if status != http.StatusServiceUnavailable || ready.Ready || len(ready.Checks) == 0 ||
		ready.Checks[0].Name != "draining" || ready.Checks[0].OK {
		t.Fatalf("while draining /readyz = %d %s, want 503 with a failing draining check first", status, body)
	}
	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	if conn, resp, err := d.Dial(r.wsURL, nil); err == nil {
		conn.Close()
		t.Fatal("a new socket was accepted while draining")
	} else if resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new socket while draining: %v (response %v), want 503", err, resp)
	}
	// Open sockets still work until their turn.
	probe := &wsClient{t: t, conn: clients[n-1].conn}
	probe.send(map[string]any{"type": "ping"})
	probe.expectType("pong")

	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.await(window + 5*time.Second) })
	}
	ctx, cancel := context.WithTimeout(context.Background(), window+5*time.Second)
	defer cancel()
	start := time.Now()
	if err := r.server.Drain(ctx, window); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	took := time.Since(start)
	wg.Wait()
	if took < drainOffset(n-1, n, window) || took > window+2*time.Second {
		t.Errorf("Drain took %s, want between the last slot %s and the window plus 2s", took, drainOffset(n-1, n, window))
	}
	for i, c := range clients {
		if c.code != websocket.CloseGoingAway {
			t.Fatalf("socket %d ended with %v, want close 1001", i, c.err)
		}
		slot := start.Add(drainOffset(i, n, window))
		if c.closed.Before(slot) {
			t.Errorf("socket %d closed %s before its slot", i, slot.Sub(c.closed))
		}
		if after := c.closed.Sub(slot); after > late {
			t.Errorf("socket %d closed %s after its slot, want at most %s", i, after, late)
		}
		if i > 0 && c.closed.Before(clients[i-1].closed) {
			t.Errorf("socket %d closed before the older socket %d", i, i-1)
		}
	}
	if got := r.server.ws.execs.count(); got != 0 {
		t.Errorf("%d shared executions still running after Drain", got)
	}
}

// TestDrainCutShortByContext ends the drain's context early: the sockets
// not yet closed are closed at once and Drain returns promptly.
func TestDrainCutShortByContext(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.PingInterval = time.Minute })
	const n = 5
	clients := make([]*drainClient, n)
	for i := range clients {
		clients[i] = &drainClient{conn: r.dialTransport("u").conn}
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() { c.await(30 * time.Second) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan error, 1)
	go func() { drained <- r.server.Drain(ctx, time.Hour) }()
	// The oldest socket is closed at once; the next would wait 12 minutes.
	waitFor(t, "the first socket to be closed", func() bool { return r.openSockets() < n })
	cancelled := time.Now()
	cancel()
	select {
	case err := <-drained:
		// Usually some connection has not finished its close handshake
		// yet and is dropped; if all had, there is nothing to report.
		if err != nil && (!strings.Contains(err.Error(), "dropped") || !errors.Is(err, context.Canceled)) {
			t.Errorf("Drain cut short = %v, want nil or an error about dropped connections wrapping context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		// Uncut, it would take 12 minutes more: seconds leave room for a
		// loaded machine and still tell the two apart.
		t.Fatal("Drain did not return within 5s of its context ending")
	}
	wg.Wait()
	for i, c := range clients {
		if c.err == nil || c.closed.Sub(cancelled) > 5*time.Second {
			t.Errorf("socket %d: ended %v at %s after the cut, want ended within 5s", i, c.err, c.closed.Sub(cancelled))
		}
	}
	if clients[0].code != websocket.CloseGoingAway {
		t.Errorf("the first socket ended with %v, want close 1001", clients[0].err)
	}
}
