package server

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestIdleSocketStack guards what an idle socket costs in goroutines and
// their stacks: nothing. A subscribed socket with no input is parked with
// the replica's parker, and no goroutine waits for it; one goroutine per
// socket, even on the 2 KiB stack it started with, costs about 4 KiB of
// resident memory per socket once the collector's goal counts it, which at
// 19,000 sockets is the difference between meeting the idle-memory target
// and not.
func TestIdleSocketStack(t *testing.T) {
	if !parksSockets {
		t.Skip("no parker on this platform; each socket keeps a reader goroutine")
	}
	r := newReplica(t, nil)
	room := r.room("idle")
	const sockets = 400
	clients := make([]*wsClient, 0, sockets)
	open := func() {
		for range sockets {
			c := r.dialTransport("")
			c.subscribe("subscribe", "1", `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
			clients = append(clients, c)
		}
		waitFor(t, "every subscription live", func() bool { return r.members() == sockets })
	}
	goroutinesBefore, before := settledStack(t)
	open()
	goroutinesAfter, after := settledStack(t)
	perSocket := float64(after-before) / sockets
	goroutinesPerSocket := float64(goroutinesAfter-goroutinesBefore) / sockets
	t.Logf("goroutines %d → %d, stack in use %d → %d bytes: %.2f goroutines and %.0f bytes per idle socket",
		goroutinesBefore, goroutinesAfter, before, after, goroutinesPerSocket, perSocket)
	// The room's shared execution and the runtime account for a few.
	if goroutinesPerSocket > 0.05 {
		t.Fatalf("%.2f goroutines per idle socket; want none (the socket parked)", goroutinesPerSocket)
	}
	// The race detector enlarges stack frames: the goroutine count says
	// enough there.
	if !raceEnabled && perSocket > 512 {
		t.Fatalf("%.0f bytes of goroutine stack per idle socket; want under 512 (no goroutine per socket)", perSocket)
	}
	// The sockets still work after the measurement.
	r.post(room, "u1", "still here")
	for _, c := range clients[:3] {
		c.expectType("next")
	}
}

// stackInUse collects (freeing the stacks of goroutines that have ended
// and shrinking those of parked ones that use under a quarter of theirs)
// and returns the bytes of goroutine stacks in use.
func stackInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}

// settledStack waits, up to 10 s, until goroutines have stopped coming
// and going (two readings in a row agree), and returns the goroutine
// count and the stack in use then. A measurement taken while an earlier
// test's servers are still winding down would count their freed stacks
// against what is being measured.
func settledStack(t *testing.T) (goroutines int, stack int64) {
	t.Helper()
	goroutines, stack = runtime.NumGoroutine(), stackInUse()
	waitFor(t, "goroutines to settle", func() bool {
		g, s := runtime.NumGoroutine(), stackInUse()
		settled := g == goroutines && s == stack
		goroutines, stack = g, s
		return settled
	})
	return goroutines, stack
}

// readersInReadNext counts this process's goroutines inside a socket's
// reader (wsConn.readNext): a parked socket has none.
func readersInReadNext() int {
	buf := make([]byte, 8<<20)
	n := runtime.Stack(buf, true)
	return bytes.Count(buf[:n], []byte("server.(*wsConn).readNext("))
}

// TestIdleSocketsParkAfterControlFrames: an idle socket whose client
// answers the keepalive's WebSocket ping with a pong (the legacy protocol
// pings so, and browsers and gorilla answer), or pings on its own, still
// has no goroutine once the frame is handled. gorilla's NextReader handles
// control frames but then waits for a message, which an idle client does
// not send: every such socket used to keep a reader goroutine, and its
// grown stack, after its first keepalive.
func TestIdleSocketsParkAfterControlFrames(t *testing.T) {
	if !parksSockets {
		t.Skip("no parker on this platform; each socket keeps a reader goroutine")
	}
	const sockets = 20
	tests := []struct {
		name       string
		dial       func(r *replica) *wsClient
		subscribe  string
		clientPing bool // the client sends WebSocket pings of its own
	}{
		{"legacy protocol answering the server's pings", func(r *replica) *wsClient { return r.dialLegacy("") }, "start", false},
		{"graphql-transport-ws pinging", func(r *replica) *wsClient { return r.dialTransport("") }, "subscribe", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReplica(t, func(o *Options) {
				o.PingInterval = 100 * time.Millisecond
				o.PongTimeout = time.Minute
			})
			room := r.room("idle")
			var wg sync.WaitGroup
			var clients []*wsClient
			stop := make(chan struct{})
			t.Cleanup(func() {
				close(stop)
				for _, c := range clients {
					_ = c.conn.Close()
				}
				wg.Wait()
			})
			for range sockets {
				c := tt.dial(r)
				clients = append(clients, c)
				c.subscribe(tt.subscribe, "1", `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
				// The client reads, which runs gorilla's ping handler: a pong.
				wg.Go(func() {
					for {
						if _, _, err := c.conn.ReadMessage(); err != nil {
							return
						}
					}
				})
				if tt.clientPing {
					wg.Go(func() {
						for {
							select {
							case <-stop:
								return
							case <-time.After(100 * time.Millisecond):
							}
							if c.conn.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second)) != nil {
								return
							}
						}
					})
				}
			}
			waitFor(t, "every subscription live", func() bool { return r.members() == sockets })
			time.Sleep(500 * time.Millisecond) // several control frames each
			// A reader woken by a control frame handles it in microseconds:
			// the fewest seen over a second are those that never parked.
			n := sockets
			for range 20 {
				n = min(n, readersInReadNext())
				time.Sleep(50 * time.Millisecond)
			}
			if n > 0 {
				t.Fatalf("%d of %d idle sockets hold a reader goroutine in readNext after control frames; want none (parked)", n, sockets)
			}
		})
	}
}
