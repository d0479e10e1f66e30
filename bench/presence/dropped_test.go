package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestServerEndingClientsFailsTheRun: S8's numbers are per client of
// --clients, so a run in which the server closed some clients' sockets,
// or ended their presence with an error, measured fewer clients than it
// divides by: it must fail, as loadgen fails a run whose sockets the
// server closed, rather than report lower rates as if all were there.
func TestServerEndingClientsFailsTheRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(c *websocket.Conn, id string) // on a client's first leave
	}{
		{"socket closed", func(c *websocket.Conn, id string) {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1011, "gone"), time.Now().Add(time.Second))
			_ = c.Close()
		}},
		{"subscription error", func(c *websocket.Conn, id string) {
			_ = c.WriteMessage(websocket.TextMessage, []byte(`{"id":"p1","type":"error","payload":[{"message":"no presence"}]}`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conns atomic.Int64
			up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
			mux := http.NewServeMux()
			mux.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write([]byte(`{"data":{"createRoom":{"id":"r1"}}}`))
			})
			mux.HandleFunc("GET /graphql", func(w http.ResponseWriter, r *http.Request) {
				c, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer c.Close()
				odd := conns.Add(1)%2 == 1 // half the clients
				for {
					_, msg, err := c.ReadMessage()
					if err != nil {
						return
					}
					var f struct{ Type, ID string }
					_ = json.Unmarshal(msg, &f)
					switch {
					case f.Type == "connection_init":
						_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_ack"}`))
					case f.Type == "subscribe" && f.ID == "p1" && odd:
						tc.end(c, f.ID)
					case f.Type == "subscribe":
						_ = c.WriteMessage(websocket.TextMessage, []byte(`{"id":"`+f.ID+`","type":"next","payload":{"data":{"roomPresence":{"kind":"SNAPSHOT"}}}}`))
					}
				}
			})
			hs := httptest.NewServer(mux)
			t.Cleanup(hs.Close)
			rep, err := Run(t.Context(), Config{URL: hs.URL + "/graphql", Clients: 10, Rooms: 2, Duration: 1500 * time.Millisecond,
				Period: 400 * time.Millisecond, UserPrefix: "u", DialConcurrency: 4, SetupTimeout: 10 * time.Second})
			if err == nil {
				t.Errorf("the server ended 5 of 10 clients during the run, yet it passed: %+v", rep)
			}
		})
	}
}
