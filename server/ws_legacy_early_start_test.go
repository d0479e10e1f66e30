package server

import (
	"fmt"
	"testing"
	"time"
)

// TestLegacyStartBeforeInitIsHeld: subscriptions-transport-ws's client sends
// connection_init only once its connectionParams promise resolves
// (`await this.connectionParams()` in its socket's open handler), and
// sends a start the moment it is asked for one once the socket is open
// (sendMessageRaw, status OPEN). An application whose connectionParams
// fetches a token therefore sends the starts asked for meanwhile before
// connection_init; its own server runs them (initPromise starts resolved).
// Such a start must be answered once the connection is acknowledged, as
// the identity of connection_init, not close the socket with 4401, which
// a legacy client without reconnect: true never recovers from.
func TestLegacyStartBeforeInitIsHeld(t *testing.T) {
	r := newReplica(t, nil)

	t.Run("query and subscription held until the ack", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("early-start")
		c := r.dial(subprotocolLegacy)
		c.subscribe("start", "1", wspViewerQuery, nil)
		c.subscribe("start", "2", wspMessagePosted, map[string]any{"r": room})
		time.Sleep(50 * time.Millisecond) // the token is being fetched
		c.init("alice")
		c.expectType("connection_ack")
		f := wspExpect(c, "data", "1")
		wspSameJSON(t, string(f.Payload), `{"data":{"viewer":{"id":"alice","name":"alice"}}}`)
		wspExpectComplete(c, "1")
		waitFor(t, "the early subscription to start", func() bool { return r.members() == 1 })
		r.post(room, "bob", "after the ack")
		f = wspExpect(c, "data", "2")
		wspSameJSON(t, string(f.Payload), fmt.Sprintf(`{"data":{"messagePosted":{"text":"after the ack"}},"extensions":{"cursor":%q}}`, wspCursor(t, f)))
	})

	t.Run("a stop before init drops the held start", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dial(subprotocolLegacy)
		c.subscribe("start", "1", wspViewerQuery, nil)
		c.send(map[string]any{"type": "stop", "id": "1"})
		c.init("alice")
		c.expectType("connection_ack")
		wspQuiet(c, wspLegacy, wspSilence, "alice")
	})

	t.Run("no init: the init timeout still closes", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dial(subprotocolLegacy)
		c.subscribe("start", "1", wspViewerQuery, nil)
		wspExpectClose(c, closeInitTimeout, 10*time.Second)
	})

	t.Run("more than 16 held starts: 4401", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dial(subprotocolLegacy)
		for i := range 17 {
			c.subscribe("start", fmt.Sprint(i), wspViewerQuery, nil)
		}
		wspExpectClose(c, closeUnauthorized, 5*time.Second)
	})
}
