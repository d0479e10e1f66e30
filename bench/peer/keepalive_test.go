package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestPeerKeepaliveOnEachSubprotocol: the report says the peer, like
// Herald and Centrifugo, sends keepalives of its own, so idle CPU (S3, S5)
// counts them; bench/run drives it with graphql-transport-ws only
// (loadgen --protocol transport). Each subprotocol's socket must get the
// peer's keepalive (ka on graphql-ws, ping on graphql-transport-ws) within
// its 10 s interval.
func TestPeerKeepaliveOnEachSubprotocol(t *testing.T) {
	srv := httptest.NewServer(newHandler())
	t.Cleanup(srv.Close)
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/graphql"
	tests := []struct{ proto, keepalive string }{
		{"graphql-ws", "ka"},
		{"graphql-transport-ws", "ping"},
	}
	for _, tt := range tests {
		t.Run(tt.proto, func(t *testing.T) {
			t.Parallel()
			d := websocket.Dialer{Subprotocols: []string{tt.proto}, HandshakeTimeout: 2 * time.Second}
			ws, _, err := d.Dial(url, nil)
			if err != nil {
				t.Fatalf("dialing the peer: %v", err)
			}
			defer ws.Close()
			if err := ws.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{}}); err != nil {
				t.Fatalf("writing connection_init: %v", err)
			}
			deadline := time.Now().Add(12 * time.Second)
			_ = ws.SetReadDeadline(deadline)
			var got []string
			for {
				var m struct{ Type string }
				if err := ws.ReadJSON(&m); err != nil {
					t.Fatalf("%s: no %q from the peer within 12 s (frames: %v): %v", tt.proto, tt.keepalive, got, err)
				}
				got = append(got, m.Type)
				if m.Type == tt.keepalive {
					return
				}
			}
		})
	}
}
