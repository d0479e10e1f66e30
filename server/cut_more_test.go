package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCutMutationsAndWritesLeaveNothing cuts connections while a mutation is in
// flight (on every transport that carries one) and while the server
// writes large results to a client that does not read, and checks that
// each mutation is stored at most once and the replica returns to its
// baseline.
func TestCutMutationsAndWritesLeaveNothing(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxConnections = 4
		o.WriteTimeout = 2 * time.Second
	})
	room := r.room("general")
	base := r.cutBaseline()
	mut := `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`
	req := func(accept, body string, extra string) string {
		return "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Herald-User: alice\r\n" + extra +
			"Accept: " + accept + "\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	}
	n := 0
	for _, tr := range []string{"ws", "legacy", "post", "sse", "multipart", "single"} {
		for i := range 3 {
			n++
			text := fmt.Sprintf("cut-%s-%d", tr, i)
			body := cutJSON(map[string]any{"query": mut, "variables": map[string]any{"r": room, "t": text}})
			c := r.cutDial()
			switch tr {
			case "ws", "legacy":
				proto, typ := subprotocolTransportWS, "subscribe"
				if tr == "legacy" {
					proto, typ = subprotocolLegacy, "start"
				}
				c.write(cutUpgradeRequest(proto))
				c.readHead()
				c.write(cutWSFrame(`{"type":"connection_init","payload":{"user":"alice"}}`))
				c.readUntil("connection_ack", 5*time.Second)
				c.write(cutWSFrame(cutJSON(map[string]any{"id": "m", "type": typ,
					"payload": map[string]any{"query": mut, "variables": map[string]any{"r": room, "t": text}}})))
			case "post":
				c.write(req("application/json", body, ""))
			case "sse":
				c.write(req("text/event-stream", body, ""))
			case "multipart":
				c.write(req("multipart/mixed;subscriptionSpec=1.0,application/json", body, ""))
			case "single":
				tok := cutReserve(t, r)
				c.write("GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Herald-User: alice\r\n" +
					streamTokenHeader + ": " + tok + "\r\n\r\n")
				c.readHead()
				op := cutJSON(map[string]any{"query": mut, "variables": map[string]any{"r": room, "t": text},
					"extensions": map[string]any{"operationId": "op1"}})
				c2 := r.cutDial()
				c2.write(req("application/json", op, streamTokenHeader+": "+tok+"\r\n"))
				c2.readHead()
				c2.rst()
			}
			c.rst()
			r.cutSettled(t, fmt.Sprintf("%s mutation cut (#%d)", tr, i), base)
			time.Sleep(50 * time.Millisecond)
			if got := r.cutCount(room, text); got > 1 {
				t.Fatalf("%s: mutation cut in flight stored %d times", tr, got)
			}
		}
	}

	// Large results to a client that does not read, then cut.
	sub := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	subBody := cutJSON(map[string]any{"query": sub, "variables": map[string]any{"r": room}})
	big := strings.Repeat("x", 3900)
	for _, tr := range []string{"ws", "legacy", "sse", "multipart", "sse10"} {
		c := r.cutDial()
		_ = c.conn.SetReadBuffer(4096)
		switch tr {
		case "ws", "legacy":
			proto, typ := subprotocolTransportWS, "subscribe"
			if tr == "legacy" {
				proto, typ = subprotocolLegacy, "start"
			}
			c.write(cutUpgradeRequest(proto))
			c.readHead()
			c.write(cutWSFrame(`{"type":"connection_init","payload":{"user":"alice"}}`))
			c.readUntil("connection_ack", 5*time.Second)
			c.write(cutWSFrame(cutJSON(map[string]any{"id": "1", "type": typ,
				"payload": map[string]any{"query": sub, "variables": map[string]any{"r": room}}})))
		case "sse":
			c.write(req("text/event-stream", subBody, ""))
			c.readHead()
		case "multipart":
			c.write(req("multipart/mixed;subscriptionSpec=1.0,application/json", subBody, ""))
			c.readHead()
		case "sse10":
			c.write("POST /graphql HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\n" +
				"Content-Length: " + fmt.Sprint(len(subBody)) + "\r\n\r\n" + subBody)
			c.readHead()
		}
		waitFor(t, "subscriber", func() bool { return r.members() == 1 })
		var wg sync.WaitGroup
		for i := range 150 {
			wg.Go(func() {
				_, _ = r.chat.PostMessage(context.Background(), chatActor("bob"), room, fmt.Sprintf("%d %s", i, big), "")
			})
		}
		wg.Wait()
		c.rst()
		r.cutSettled(t, tr+" cut while writing large results", base)
	}

	// Cut during a drain spread over a window.
	var conns []*cutConn
	for i := range 4 {
		c := r.cutDial()
		switch i % 4 {
		case 0:
			c.write(cutUpgradeRequest(subprotocolTransportWS))
			c.readHead()
		case 1:
			c.write(req("text/event-stream", subBody, ""))
			c.readHead()
		case 2:
			c.write(req("multipart/mixed;subscriptionSpec=1.0,application/json", subBody, ""))
			c.readHead()
		case 3:
			c.write(cutUpgradeRequest(subprotocolLegacy))
			c.readHead()
			c.write(cutWSFrame(`{"type":"connection_init","payload":{"user":"alice"}}`))
			c.readUntil("connection_ack", 5*time.Second)
		}
		conns = append(conns, c)
	}
	waitFor(t, "sessions", func() bool { return r.openSockets() == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- r.server.Drain(ctx, 2*time.Second) }()
	time.Sleep(300 * time.Millisecond)
	for _, c := range conns {
		c.rst()
	}
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain = %v after every client cut", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("Drain did not return")
	}
	r.cutSettled(t, "cut during drain", base)
	_ = n
}
