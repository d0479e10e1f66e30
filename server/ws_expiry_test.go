package server

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestExpiredCredentialsStartNothing: an operation sent after the socket's
// credentials expired, before the keeper's next look at the socket (up to
// a second, or the next keepalive for an idle socket), is not run with
// them: the socket is closed with 4403 at once, as the keeper would.
func TestExpiredCredentialsStartNothing(t *testing.T) {
	r, sign := jwtReplica(t)
	room := r.room("spent")
	c := r.dial(subprotocolTransportWS)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + sign("alice", time.Hour)}})
	c.expectType("connection_ack")
	conn := scheduledConn(t, r)
	// The credentials have just expired; the keeper has not looked yet.
	conn.machine.expires.Store(time.Now().Add(-time.Millisecond).UnixNano())
	c.send(map[string]any{"id": "m", "type": "subscribe", "payload": map[string]any{
		"query": `mutation($r: ID!) { postMessage(roomId: $r, text: "after expiry") { id } }`, "variables": map[string]any{"r": room}}})
	for {
		f, err := c.read(5 * time.Second)
		if err == nil {
			if f.Type == "next" || f.Type == "error" {
				t.Fatalf("the operation ran with expired credentials: %s", f.raw)
			}
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != closeForbidden {
			t.Fatalf("socket ended with %v, want 4403", err)
		}
		break
	}
}

// TestNoEventAfterSocketExpiry: an event that comes after the socket's
// credentials expired, before the keeper's next look at the socket (up to
// a second), does not reach it: the socket is closed with 4403 at once, as
// an operation sent then is not run (TestExpiredCredentialsStartNothing)
// and as an event stream is sealed at its expiry.
func TestNoEventAfterSocketExpiry(t *testing.T) {
	r, sign := jwtReplica(t)
	room := r.room("spent-live")
	c := r.dial(subprotocolTransportWS)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + sign("alice", time.Hour)}})
	c.expectType("connection_ack")
	conn := scheduledConn(t, r)
	c.subscribe("subscribe", "s", postedSub, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	// The credentials expire now; the keeper has not looked yet.
	conn.machine.expires.Store(time.Now().Add(-time.Millisecond).UnixNano())
	r.post(room, "bob", "AFTER-expiry")
	for {
		f, err := c.read(5 * time.Second)
		if err == nil {
			if f.Type == "next" && strings.Contains(f.raw, "AFTER-expiry") {
				t.Fatalf("an event posted after the socket's credentials expired reached it: %s", f.raw)
			}
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != closeForbidden {
			t.Fatalf("socket ended with %v, want 4403", err)
		}
		return
	}
}
