package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCutRelayedRequestsLeaveNothing cuts single-connection-mode requests that cross
// replicas: a stream opened on the replica that did not reserve it (the
// claim goes over the relay), and an operation relayed to the stream's
// replica, each cut right after being sent; both replicas return to their
// baseline once the stream goes.
func TestCutRelayedRequestsLeaveNothing(t *testing.T) {
	relay := NewLocalRelay()
	shared := func(o *Options) { o.Relay = relay; o.Limits.MaxConnections = 4 }
	a, b := newReplica(t, shared), newReplica(t, shared)
	room := a.room("relay")
	baseA, baseB := a.cutBaseline(), b.cutBaseline()
	sub := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	for i := range 3 {
		// Claim over the relay, cut at once.
		tok := cutReserve(t, b)
		c := a.cutDial()
		c.write("GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Herald-User: alice\r\n" +
			streamTokenHeader + ": " + tok + "\r\n\r\n")
		time.Sleep(time.Duration(i) * 5 * time.Millisecond)
		c.rst()
		a.cutSettled(t, fmt.Sprintf("claim cut (#%d), opening replica", i), baseA)
		time.Sleep(100 * time.Millisecond)
		if state, clean := b.cutState(); !clean && !strings.Contains(state, "sseSingle.reserved=1") {
			t.Fatalf("claim cut (#%d), reserving replica: %s", i, state)
		}

		// An operation relayed, its request cut; then the stream cut.
		tok = cutReserve(t, a)
		s := a.cutDial()
		s.write("GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Herald-User: alice\r\n" +
			streamTokenHeader + ": " + tok + "\r\n\r\n")
		s.readHead()
		op := cutJSON(map[string]any{"query": sub, "variables": map[string]any{"r": room}, "extensions": map[string]any{"operationId": "op1"}})
		o := b.cutDial()
		o.write("POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Herald-User: alice\r\n" +
			streamTokenHeader + ": " + tok + "\r\nContent-Length: " + fmt.Sprint(len(op)) + "\r\n\r\n" + op)
		time.Sleep(30 * time.Millisecond)
		o.rst()
		waitFor(t, "the relaying replica to hold nothing", func() bool { _, clean := b.cutState(); return clean })
		s.rst()
		a.cutSettled(t, fmt.Sprintf("relayed operation cut then stream cut (#%d), stream's replica", i), baseA)
		b.cutSettled(t, fmt.Sprintf("relayed operation cut then stream cut (#%d), relaying replica", i), baseB)
	}
}
