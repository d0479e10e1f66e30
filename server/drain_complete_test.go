package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDrainClientCompletesWaitedOperation: a socket told to go away waits
// for its mutation; the client completes (stops) it. The socket then closes
// with 1001 at once rather than waiting for the drain's deadline.
func TestDrainClientCompletesWaitedOperation(t *testing.T) {
	for _, tc := range []struct{ name, start, stop string }{
		{"graphql-transport-ws", "subscribe", "complete"},
		{"legacy", "start", "stop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			schema := newGatedSchema(t, 2)
			r := serveSchema(t, schema)
			var c *wsClient
			if tc.start == "start" {
				c = r.dialLegacy("u")
			} else {
				c = r.dialTransport("u")
			}
			c.subscribe(tc.start, "op", "mutation gate { bump }", nil)
			receive(t, schema.entered, 5*time.Second, "the mutation to run")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			drained := make(chan error, 1)
			go func() { drained <- r.server.Drain(ctx, 0) }()
			waitFor(t, "the socket to be told to go away", func() bool { return leavingSockets(r.server) == 1 })
			stopped := time.Now()
			c.send(map[string]any{"id": "op", "type": tc.stop})
			for {
				f, err := c.read(5 * time.Second)
				if err != nil {
					var ce *websocket.CloseError
					if !errors.As(err, &ce) || ce.Code != closeGoingAway {
						t.Fatalf("socket ended with %v, want 1001", err)
					}
					break
				}
				if !f.keepalive() {
					t.Logf("frame %s", f.raw)
				}
			}
			if took := time.Since(stopped); took > 2*time.Second {
				t.Errorf("closed %v after the client stopped its operation", took)
			}
			if err := <-drained; err != nil {
				t.Errorf("Drain: %v", err)
			}
		})
	}
}
