package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// socketOperationState counts what the replica's one open socket tracks
// by operation id.
func socketOperationState(r *replica) (ops, ending int, found bool) {
	s := r.server.sessions
	s.mu.Lock()
	var conns []*wsConn
	for sess := range s.open {
		if c, ok := sess.(*wsConn); ok {
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.mu.Lock()
		ops += len(c.ops)
		ending += len(c.ending)
		c.mu.Unlock()
		found = true
	}
	return ops, ending, found
}

// TestOperationIDsReleasedOnLongLivedSocket runs many operations with
// distinct ids on one long-lived socket of each protocol, ending each in a
// different way (a query, a refused operation, a subscription that fails
// at once, one the client completes, one the client completes after it
// ended by itself, a legacy start reusing a running id), and checks that
// the socket tracks nothing for them afterwards and the operations gauge
// is back to zero.
func TestOperationIDsReleasedOnLongLivedSocket(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		name := "transport-ws"
		if legacy {
			name = "legacy"
		}
		t.Run(name, func(t *testing.T) {
			r := newReplica(t, nil)
			room := r.room("ids")
			r.post(room, "poster", "m0")
			var c *wsClient
			start, stop := "subscribe", "complete"
			if legacy {
				c, start, stop = r.dialLegacy("alice"), "start", "stop"
			} else {
				c = r.dialTransport("alice")
			}
			const rounds = 40
			for i := range rounds {
				id := func(k string) string { return fmt.Sprintf("%s-%d", k, i) }
				// A query.
				c.subscribe(start, id("q"), `{ rooms { nodes { name } } }`, nil)
				// Refused before it runs.
				c.subscribe(start, id("bad"), `{ nope }`, nil)
				// A subscription that fails at once.
				c.subscribe(start, id("nf"), `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": "no-such-room"})
				// A live subscription the client completes.
				c.subscribe(start, id("live"), `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
				c.send(map[string]any{"id": id("live"), "type": stop})
				// A query completed by the client right away (it may have
				// ended by itself already).
				c.subscribe(start, id("qc"), `{ rooms { nodes { id } } }`, nil)
				c.send(map[string]any{"id": id("qc"), "type": stop})
				if legacy {
					// A start reusing a running id: the old one stops.
					c.subscribe(start, id("re"), `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
					c.subscribe(start, id("re"), `subscription($r: ID!) { roomCreated { id } }`, nil)
					c.send(map[string]any{"id": id("re"), "type": stop})
				}
			}
			// A final query, answered after everything above was handled.
			c.subscribe(start, "last", `{ rooms { nodes { name } } }`, nil)
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				f, err := c.read(time.Until(deadline))
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if f.ID == "last" && f.Type == "complete" {
					break
				}
			}
			var ops, ending int
			var gauge, execs float64
			for range 100 {
				var found bool
				ops, ending, found = socketOperationState(r)
				if !found {
					t.Fatal("the socket is gone")
				}
				gauge = testutil.ToFloat64(r.server.ws.metrics.operations)
				execs = float64(r.server.ws.execs.count())
				if ops == 0 && ending == 0 && gauge == 0 && execs == 0 {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
			t.Fatalf("after %d rounds of operations, all ended: ops=%d ending=%d herald_ws_operations=%v executions=%v, want all 0",
				rounds, ops, ending, gauge, execs)
		})
	}
}
