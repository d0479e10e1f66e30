package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func post(t *testing.T, url, query string, vars map[string]any) map[string]any {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Herald-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out["errors"] != nil {
		t.Fatalf("%s: errors %v", query, out["errors"])
	}
	return out["data"].(map[string]any)
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, url, proto string) *client {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 2 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if ws.Subprotocol() != proto {
		t.Fatalf("subprotocol %q", ws.Subprotocol())
	}
	_ = ws.SetReadDeadline(time.Now().Add(4 * time.Second))
	return &client{t, ws}
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() map[string]any {
	c.t.Helper()
	var m map[string]any
	if err := c.ws.ReadJSON(&m); err != nil {
		c.t.Fatal(err)
	}
	return m
}

func (c *client) expect(want map[string]any) {
	c.t.Helper()
	if got := c.read(); !reflect.DeepEqual(got, want) {
		c.t.Fatalf("frame\n got %v\nwant %v", got, want)
	}
}

const subQuery = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`

func next(id, text string) map[string]any {
	return map[string]any{"id": id, "type": "next", "payload": map[string]any{
		"data": map[string]any{"messagePosted": map[string]any{"text": text}},
	}}
}

func TestCreateRoomPostAndSubscribe(t *testing.T) {
	srv := httptest.NewServer(newServer(16).mux())
	defer srv.Close()
	url := srv.URL + "/graphql"

	room := post(t, url, `mutation($n: String!) { createRoom(name: $n) { id name } }`, map[string]any{"n": "bench"})
	if got, want := room["createRoom"], map[string]any{"id": "r1", "name": "bench"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("createRoom %v, want %v", got, want)
	}

	// Two sockets with the load generator's id "1" (one group, one encoding
	// per event) and one with id "2" (a group of its own).
	var subs []*client
	for _, id := range []string{"1", "1", "2"} {
		c := dial(t, url, "graphql-transport-ws")
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": "alice"}})
		c.expect(map[string]any{"type": "connection_ack"})
		c.send(map[string]any{"type": "ping"})
		c.expect(map[string]any{"type": "pong"})
		c.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{
			"query": subQuery, "variables": map[string]any{"r": "r1"},
		}})
		subs = append(subs, c)
	}
	legacy := dial(t, url, "graphql-ws")
	legacy.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
	legacy.expect(map[string]any{"type": "connection_ack"})
	legacy.expect(map[string]any{"type": "ka"})
	legacy.send(map[string]any{"id": "7", "type": "start", "payload": map[string]any{
		"query": `subscription { messagePosted(roomId: "r1") { id text roomId __typename } }`,
	}})
	// The baseline handles a socket's frames in order: a ping answered means
	// the subscribe before it is registered.
	for _, c := range subs {
		c.send(map[string]any{"type": "ping"})
		c.expect(map[string]any{"type": "pong"})
	}
	stopped := dial(t, url, "graphql-transport-ws")
	stopped.send(map[string]any{"type": "connection_init"})
	stopped.expect(map[string]any{"type": "connection_ack"})
	stopped.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": subQuery, "variables": map[string]any{"r": "r1"},
	}})
	stopped.send(map[string]any{"id": "1", "type": "complete"})
	stopped.send(map[string]any{"type": "ping"})
	stopped.expect(map[string]any{"type": "pong"})
	// The legacy socket: a bad subscribe answered means the start is in.
	legacy.send(map[string]any{"id": "8", "type": "start", "payload": map[string]any{"query": `{ rooms { id } }`}})
	if m := legacy.read(); m["type"] != "error" || m["id"] != "8" {
		t.Fatalf("want an error for 8, got %v", m)
	}

	got := post(t, url, `mutation postMessage($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`,
		map[string]any{"r": "r1", "t": `hi "there" (1)`})
	if want := map[string]any{"postMessage": map[string]any{"id": "m1"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("postMessage %v, want %v", got, want)
	}
	subs[0].expect(next("1", `hi "there" (1)`))
	subs[1].expect(next("1", `hi "there" (1)`))
	subs[2].expect(next("2", `hi "there" (1)`))
	legacy.expect(map[string]any{"id": "7", "type": "data", "payload": map[string]any{"data": map[string]any{
		"messagePosted": map[string]any{"id": "m1", "text": `hi "there" (1)`, "roomId": "r1", "__typename": "Message"},
	}}})

	// complete stops deliveries on that socket only.
	stopped.send(map[string]any{"type": "ping"})
	stopped.expect(map[string]any{"type": "pong"})
	subs[0].send(map[string]any{"id": "1", "type": "complete"})
	subs[0].send(map[string]any{"type": "ping"}) // answered: the complete is in
	subs[0].expect(map[string]any{"type": "pong"})
	post(t, url, `mutation { postMessage(roomId: "r1", text: "two") { id } }`, nil)
	subs[1].expect(next("1", "two"))
	subs[0].send(map[string]any{"type": "ping"}) // answered next: nothing came for the completed id
	subs[0].expect(map[string]any{"type": "pong"})
}

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(newServer(16).mux())
	defer srv.Close()
	url := srv.URL + "/graphql"

	body := `{"query":"mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }","variables":{"r":"nope","t":"x"}}`
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Errors []struct{ Message string } }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Message, "not found") {
		t.Fatalf("want room not found, got %+v", out)
	}

	c := dial(t, url, "graphql-transport-ws")
	c.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": subQuery}})
	_, _, err = c.ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4401 {
		t.Fatalf("subscribe before init: want close 4401, got %v", err)
	}
}

func TestSlowConsumerClosed(t *testing.T) {
	s := newServer(1)
	srv := httptest.NewUnstartedServer(s.mux())
	srv.Listener = smallSendBuffer{srv.Listener}
	srv.Start()
	defer srv.Close()
	url := srv.URL + "/graphql"
	post(t, url, `mutation { createRoom(name: "slow") { id } }`, nil)
	// A tiny receive buffer, so that the server's writes stall quickly.
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	c := &client{t, ws}
	_ = ws.SetReadDeadline(time.Now().Add(4 * time.Second))
	c.send(map[string]any{"type": "connection_init"})
	c.expect(map[string]any{"type": "connection_ack"})
	c.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": subQuery, "variables": map[string]any{"r": "r1"}}})
	c.send(map[string]any{"type": "ping"})
	c.expect(map[string]any{"type": "pong"})
	// Not reading: the socket buffers fill, then the queue of 1 overflows.
	big := strings.Repeat("x", 16<<10)
	posts, start := 0, time.Now()
	defer func() { t.Logf("%d posts, %v", posts, time.Since(start)) }()
	deadline := time.Now().Add(3 * time.Second)
	for {
		s.room("r1").mu.RLock()
		n := len(s.room("r1").groups)
		s.room("r1").mu.RUnlock()
		if n == 0 {
			break // unsubscribed: the socket was closed
		}
		if time.Now().After(deadline) {
			t.Fatal("slow consumer still subscribed")
		}
		posts++
		post(t, url, `mutation($t: String!) { postMessage(roomId: "r1", text: $t) { id } }`, map[string]any{"t": big})
	}
}

// smallSendBuffer gives the server's sockets a small send buffer, so that a
// client that does not read stalls the server's writes quickly.
type smallSendBuffer struct{ net.Listener }

func (l smallSendBuffer) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err == nil {
		_ = conn.(*net.TCPConn).SetWriteBuffer(4096)
	}
	return conn, err
}
