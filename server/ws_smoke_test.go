package server

import (
	"context"
	"strings"
	"testing"
)

func TestWebSocketSubscriptionDeliversLiveMessages(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	for _, tc := range []struct {
		name   string
		legacy bool
		typ    string
		next   string
	}{
		{"graphql-transport-ws", false, "subscribe", "next"},
		{"legacy graphql-ws", true, "start", "data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r.forTest(t)
			waitFor(t, "the previous socket's subscription to be released", func() bool { return r.members() == 0 })
			c := map[bool]func(string) *wsClient{false: r.dialTransport, true: r.dialLegacy}[tc.legacy]("alice")
			c.subscribe(tc.typ, "s1", `subscription($r: ID!) { messagePosted(roomId: $r) { text room { messageCount } } }`, map[string]any{"r": room})
			waitFor(t, "the subscription to start", func() bool { return r.members() == 1 })
			before, err := r.chat.RoomStats(context.Background(), room)
			if err != nil {
				t.Fatal(err)
			}
			r.post(room, "bob", "hello "+tc.name)
			f := c.next()
			if f.Type != tc.next || f.ID != "s1" {
				t.Fatalf("got %s", f.raw)
			}
			var got struct {
				MessagePosted struct {
					Text string
					Room struct{ MessageCount int }
				}
			}
			f.data(t, &got)
			if got.MessagePosted.Text != "hello "+tc.name || got.MessagePosted.Room.MessageCount != before.MessageCount+1 {
				t.Fatalf("payload %s: want the message and a count including it", f.raw)
			}
			if !strings.Contains(f.raw, `"extensions":{"cursor":"`) {
				t.Fatalf("no extensions.cursor in %s", f.raw)
			}
		})
	}
}

func TestPingPayloadIsEchoedInPong(t *testing.T) {
	r := newReplica(t, nil)
	c := r.dial(subprotocolTransportWS)
	c.sendRaw(`{"type":"ping","payload":{"n":1}}`)
	if f := c.expectType("pong"); string(f.Payload) != `{"n":1}` {
		t.Fatalf("pong %s does not echo the ping's payload", f.raw)
	}
	c.sendRaw(`{"type":"ping"}`)
	if f := c.expectType("pong"); f.raw != `{"type":"pong"}` {
		t.Fatalf("pong %s for a ping without payload", f.raw)
	}
}
