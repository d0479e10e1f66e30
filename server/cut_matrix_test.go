package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCutAtEveryStageLeavesNothing cuts connections (RST) at every stage
// of their life on every transport, and checks after each that the
// replica is back to its baseline: sessions, places toward MaxConnections,
// executions, gauges, goroutines.
func TestCutAtEveryStageLeavesNothing(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxConnections = 4
		o.PingInterval = 500 * time.Millisecond
	})
	room := r.room("general")
	sub := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	subBody := cutJSON(map[string]any{"query": sub, "variables": map[string]any{"r": room}})
	subGETQuery := "query=" + strings.ReplaceAll(strings.ReplaceAll(sub, " ", "%20"), "$", "%24") +
		"&variables=" + strings.ReplaceAll(cutJSON(map[string]any{"r": room}), `"`, "%22")
	base := r.cutBaseline()

	post := func(accept, body string) string {
		return "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Herald-User: alice\r\n" +
			"Accept: " + accept + "\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\n\r\n" + body
	}
	const acceptSSE = "text/event-stream"
	const acceptMP = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json"

	wsUp := func(c *cutConn, proto string) {
		c.write(cutUpgradeRequest(proto))
		head := c.readHead()
		if !strings.HasPrefix(head, "HTTP/1.1 101") {
			t.Fatalf("upgrade: %s", head)
		}
	}
	wsInit := func(c *cutConn, proto string) {
		wsUp(c, proto)
		c.write(cutWSFrame(`{"type":"connection_init","payload":{"user":"alice"}}`))
		c.readUntil("connection_ack", 5*time.Second)
	}
	subscribeType := map[string]string{subprotocolTransportWS: "subscribe", subprotocolLegacy: "start"}

	type scenario struct {
		name string
		run  func(c *cutConn)
	}
	var scenarios []scenario
	for _, proto := range []string{subprotocolTransportWS, subprotocolLegacy} {
		proto := proto
		scenarios = append(scenarios,
			scenario{proto + "/half upgrade request", func(c *cutConn) {
				c.write(cutUpgradeRequest(proto)[:60])
			}},
			scenario{proto + "/upgrade sent, answer unread", func(c *cutConn) {
				c.write(cutUpgradeRequest(proto))
				time.Sleep(20 * time.Millisecond)
			}},
			scenario{proto + "/before init", func(c *cutConn) { wsUp(c, proto) }},
			scenario{proto + "/mid init frame", func(c *cutConn) {
				wsUp(c, proto)
				f := cutWSFrame(`{"type":"connection_init","payload":{"user":"alice"}}`)
				c.write(f[:10])
				time.Sleep(20 * time.Millisecond)
			}},
			scenario{proto + "/right after subscribe", func(c *cutConn) {
				wsInit(c, proto)
				c.write(cutWSFrame(cutJSON(map[string]any{"id": "1", "type": subscribeType[proto],
					"payload": map[string]any{"query": sub, "variables": map[string]any{"r": room}}})))
			}},
			scenario{proto + "/subscribed", func(c *cutConn) {
				wsInit(c, proto)
				c.write(cutWSFrame(cutJSON(map[string]any{"id": "1", "type": subscribeType[proto],
					"payload": map[string]any{"query": sub, "variables": map[string]any{"r": room}}})))
				waitFor(t, "subscriber", func() bool { return r.members() == 1 })
			}},
		)
	}
	for _, tr := range []struct{ name, accept string }{{"sse", acceptSSE}, {"multipart", acceptMP}} {
		tr := tr
		scenarios = append(scenarios,
			scenario{tr.name + "/half headers", func(c *cutConn) {
				c.write(post(tr.accept, subBody)[:50])
				time.Sleep(20 * time.Millisecond)
			}},
			scenario{tr.name + "/mid body", func(c *cutConn) {
				p := post(tr.accept, subBody)
				c.write(p[:len(p)-10])
				time.Sleep(20 * time.Millisecond)
			}},
			scenario{tr.name + "/request sent, answer unread", func(c *cutConn) {
				c.write(post(tr.accept, subBody))
				time.Sleep(20 * time.Millisecond)
			}},
			scenario{tr.name + "/streaming", func(c *cutConn) {
				c.write(post(tr.accept, subBody))
				c.readHead()
				waitFor(t, "subscriber", func() bool { return r.members() == 1 })
			}},
			scenario{tr.name + "/GET streaming", func(c *cutConn) {
				c.write("GET /graphql?" + subGETQuery + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: " + tr.accept + "\r\n\r\n")
				head := c.readHead()
				if !strings.Contains(head, " 200 ") {
					t.Fatalf("GET stream: %s", head)
				}
				waitFor(t, "subscriber", func() bool { return r.members() == 1 })
			}},
		)
	}
	// Single connection mode.
	scenarios = append(scenarios,
		scenario{"sse_single/open stream then cut", func(c *cutConn) {
			tok := cutReserve(t, r)
			c.write("GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Herald-User: alice\r\n" +
				streamTokenHeader + ": " + tok + "\r\n\r\n")
			head := c.readHead()
			if !strings.Contains(head, " 200 ") {
				t.Fatalf("open: %s", head)
			}
		}},
		scenario{"sse_single/operation on stream, stream cut", func(c *cutConn) {
			tok := cutReserve(t, r)
			c.write("GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Herald-User: alice\r\n" +
				streamTokenHeader + ": " + tok + "\r\n\r\n")
			c.readHead()
			op := cutJSON(map[string]any{"query": sub, "variables": map[string]any{"r": room}, "extensions": map[string]any{"operationId": "op1"}})
			c2 := r.cutDial()
			c2.write("POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Herald-User: alice\r\n" +
				streamTokenHeader + ": " + tok + "\r\nContent-Length: " + fmt.Sprint(len(op)) + "\r\n\r\n" + op)
			head := c2.readHead()
			if !strings.Contains(head, " 202 ") {
				t.Fatalf("operation: %s", head)
			}
			c2.rst()
			waitFor(t, "subscriber", func() bool { return r.members() == 1 })
		}},
		scenario{"sse_single/operation mid body", func(c *cutConn) {
			tok := cutReserve(t, r)
			c.write("GET /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nX-Herald-User: alice\r\n" +
				streamTokenHeader + ": " + tok + "\r\n\r\n")
			c.readHead()
			op := cutJSON(map[string]any{"query": sub, "variables": map[string]any{"r": room}, "extensions": map[string]any{"operationId": "op1"}})
			c2 := r.cutDial()
			c2.write("POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Herald-User: alice\r\n" +
				streamTokenHeader + ": " + tok + "\r\nContent-Length: " + fmt.Sprint(len(op)) + "\r\n\r\n" + op[:20])
			time.Sleep(20 * time.Millisecond)
			c2.rst()
		}},
	)

	for _, sc := range scenarios {
		for i := range 3 {
			c := r.cutDial()
			sc.run(c)
			c.rst()
			r.cutSettled(t, fmt.Sprintf("%s (#%d)", sc.name, i), base)
		}
	}
}

// cutReserve reserves a single-connection stream as alice.
func cutReserve(t *testing.T, r *replica) string {
	t.Helper()
	c := r.cutDial()
	c.write("PUT /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Herald-User: alice\r\nContent-Length: 0\r\n\r\n")
	head := c.readHead()
	if !strings.Contains(head, " 201 ") {
		t.Fatalf("reserve: %s", head)
	}
	body := c.readUntil("", time.Second)
	_ = body
	// The token is the body: 22 characters.
	var tok []byte
	buf := make([]byte, 22)
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(tok) < 22 {
		n, err := c.br.Read(buf[:22-len(tok)])
		tok = append(tok, buf[:n]...)
		if err != nil {
			t.Fatalf("token: %v", err)
		}
	}
	_ = c.conn.Close()
	return string(tok)
}
