package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLargeQueryResultIsNotASlowConsumer shows that a query whose one
// result is larger than the outbound queue's bytes (--ws-queue-bytes,
// 1 MiB) is answered over a WebSocket and over an event stream, as over
// HTTP. The queue refused any item that would take it past its bytes, even
// empty, and a query's result is always queued: the socket was closed with
// 1013 as a "slow consumer", and graphql-ws clients, which retry 1013, sent
// the query again to be closed again.
func TestLargeQueryResultIsNotASlowConsumer(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("big")
	text := strings.Repeat("😀", 4000) // 16,000 bytes, within the 4,000 character limit
	for range 100 {
		r.post(room, "ann", text)
	}
	query := `query($r: ID!) { room(id: $r) { messages(last: 100) { nodes { text } } } }`

	// Over HTTP the query is answered (about 1.6 MB).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := `{"query":"query($r: ID!) { room(id: $r) { messages(last: 100) { nodes { text } } } }","variables":{"r":"` + room + `"}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	httpBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(httpBody), `"nodes"`) {
		t.Fatalf("HTTP status %d, %.200s", resp.StatusCode, httpBody)
	}

	for _, proto := range []string{subprotocolTransportWS, subprotocolLegacy} {
		t.Run(proto, func(t *testing.T) {
			var c *wsClient
			typ := "subscribe"
			if proto == subprotocolLegacy {
				c = r.forTest(t).dialLegacy("ann")
				typ = "start"
			} else {
				c = r.forTest(t).dialTransport("ann")
			}
			c.t = t
			c.subscribe(typ, "q1", query, map[string]any{"r": room})
			f, err := c.read(10 * time.Second)
			for err == nil && f.keepalive() {
				f, err = c.read(10 * time.Second)
			}
			if err != nil {
				t.Fatalf("a fast client's query, answered over HTTP (%d bytes), got no result over the socket: %v", len(httpBody), err)
			}
			if want := map[string]string{subprotocolTransportWS: "next", subprotocolLegacy: "data"}[proto]; f.Type != want || f.ID != "q1" {
				t.Fatalf("got %.200s, want %s for q1", f.raw, want)
			}
		})
	}
	t.Run("event stream", func(t *testing.T) {
		c, status, body := r.forTest(t).openSSE(sseRequest{method: http.MethodPost, query: query, vars: map[string]any{"r": room}})
		if c == nil {
			t.Fatalf("status %d: %.200s", status, body)
		}
		ev := c.next()
		data, errs, _ := ev.result(t)
		if ev.event != "next" || len(errs) > 0 || data["room"] == nil {
			t.Fatalf("got event %q with errors %v, want the room's page", ev.event, errs)
		}
		if ev := c.next(); ev.event != "complete" {
			t.Fatalf("got event %q after the result, want complete", ev.event)
		}
		c.expectEnd(10 * time.Second)
	})
	t.Run("single connection stream", func(t *testing.T) {
		rt := r.forTest(t)
		token := rt.reserve("ann")
		c := rt.openSingle(token, "ann")
		rt.mustOperate(token, "ann", "q1", query, map[string]any{"r": room})
		ev := c.expect("next", "q1")
		if !strings.Contains(string(ev.payload), `"nodes"`) {
			t.Fatalf("got %.200s, want the room's page", ev.payload)
		}
		c.expect("complete", "q1")
	})
}
