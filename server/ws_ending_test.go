package server

import (
	"fmt"
	"testing"
)

// TestEndedOperationsAreForgotten: once an operation's last
// frame (complete, or error) has been written, the socket forgets it (lastFrameTaken);
// a long-lived socket running one query after another, each with a fresh
// id as graphql-ws sends them, must not hold every one it ever ran.
func TestEndedOperationsAreForgotten(t *testing.T) {
	r := newReplica(t, nil)
	c := r.dialTransport("ann")
	const n = 50
	for i := range n {
		id := fmt.Sprint("q", i)
		if i%2 == 0 {
			c.subscribe("subscribe", id, `{ __typename }`, nil)
			if f := c.next(); f.Type != "next" || f.ID != id {
				t.Fatalf("got %s, want next for %s", f.raw, id)
			}
			if f := c.next(); f.Type != "complete" || f.ID != id {
				t.Fatalf("got %s, want complete for %s", f.raw, id)
			}
			continue
		}
		// A document that fails validation: its error is its last frame.
		c.subscribe("subscribe", id, `{ noSuchField }`, nil)
		if f := c.next(); f.Type != "error" || f.ID != id {
			t.Fatalf("got %s, want error for %s", f.raw, id)
		}
	}
	s := r.server.sessions
	s.mu.Lock()
	var conn *wsConn
	for sess := range s.open {
		if wc, ok := sess.(*wsConn); ok {
			conn = wc
		}
	}
	s.mu.Unlock()
	if conn == nil {
		t.Fatal("no open socket")
	}
	conn.mu.Lock()
	held, open := len(conn.ending), len(conn.ops)
	conn.mu.Unlock()
	if open != 0 {
		t.Errorf("%d operations open after every query completed", open)
	}
	if held != 0 {
		t.Errorf("the socket still holds %d of the %d operations whose last frame (complete, error) it wrote "+
			"(wsConn.ending): a long-lived socket holds every refused operation it ever ran", held, n)
	}
}
