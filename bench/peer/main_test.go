package main

import (
	"bytes"
	"encoding/json"
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

func TestCreateRoomPostAndSubscribe(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	defer srv.Close()
	url := srv.URL + "/graphql"

	room := post(t, url, `mutation($n: String!) { createRoom(name: $n) { id } }`, map[string]any{"n": "bench"})
	roomID, _ := room["createRoom"].(map[string]any)["id"].(string)
	if roomID == "" {
		t.Fatalf("createRoom: %v", room)
	}

	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 2 * time.Second}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(url, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if ws.Subprotocol() != "graphql-transport-ws" {
		t.Fatalf("subprotocol %q", ws.Subprotocol())
	}
	_ = ws.SetReadDeadline(time.Now().Add(4 * time.Second))
	send := func(v any) {
		if err := ws.WriteJSON(v); err != nil {
			t.Fatal(err)
		}
	}
	read := func() map[string]any {
		var m map[string]any
		if err := ws.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": "alice"}})
	if m := read(); m["type"] != "connection_ack" {
		t.Fatalf("want connection_ack, got %v", m)
	}
	send(map[string]any{"type": "ping"})
	if m := read(); m["type"] != "pong" {
		t.Fatalf("want pong, got %v", m)
	}
	send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`,
		"variables": map[string]any{"r": roomID},
	}})

	// The subscription has no acknowledgement: post until it is live.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			body := `{"query":"mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }","variables":{"r":"` + roomID + `","t":"hi \"there\""}}`
			resp, err := http.Post(url, "application/json", strings.NewReader(body))
			if err == nil {
				resp.Body.Close()
			}
		}
	}()

	var m map[string]any
	for {
		m = read()
		if m["type"] != "ka" && m["type"] != "ping" {
			break
		}
	}
	want := map[string]any{"id": "1", "type": "next", "payload": map[string]any{
		"data": map[string]any{"messagePosted": map[string]any{"text": `hi "there"`}},
	}}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("frame\n got %v\nwant %v", m, want)
	}

	send(map[string]any{"id": "1", "type": "complete"})
}
