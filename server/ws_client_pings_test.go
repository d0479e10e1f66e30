package server

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestClientPingsKeepSocketAlive: a client's WebSocket pings
// are traffic (README: only a socket silent for longer than the ping
// interval plus the pong timeout is closed as dead). A client that sends a
// ping every 50 ms, and answers nothing, keeps its socket for many times
// that bound.
func TestClientPingsKeepSocketAlive(t *testing.T) {
	const interval = 500 * time.Millisecond
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.PingInterval = interval
		o.PongTimeout = interval
	}, nil)
	c := rfcDial(t, r, wspTransport)
	until := time.Now().Add(6 * interval)
	for i := 0; time.Now().Before(until) && i < 200; i++ {
		if err := c.write(rawPing, []byte("alive")); err != nil {
			t.Fatalf("ping %d, %v into pinging every 50 ms: the server closed the socket as dead: %v", i, time.Since(until.Add(-6*interval)).Round(time.Millisecond), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 1000; i++ { // what the server sent meanwhile: pongs and keepalives, no close
		g, err := rfcRead(c, 200*time.Millisecond)
		if err != nil {
			if !isTimeout(err) {
				t.Fatalf("a client pinging every 50 ms lost its socket: %v", err)
			}
			break
		}
		if g.op == rawClose {
			t.Fatalf("a client pinging every 50 ms was closed as dead (ping interval %v + pong timeout %v): %v", interval, interval, g)
		}
	}
}
