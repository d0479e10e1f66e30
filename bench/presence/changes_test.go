package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// changeCounter is a graphql-transport-ws server that answers createRoom,
// acknowledges every socket and counts the presence changes its clients
// make: each complete is a leave, each subscribe after a socket's first
// is a join (the first one is the client's presence before the run).
type changeCounter struct {
	mu            sync.Mutex
	leaves, joins int
}

func (cc *changeCounter) start(t *testing.T) string {
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
		subscribed := false
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			var f struct{ Type string }
			_ = json.Unmarshal(msg, &f)
			switch f.Type {
			case "connection_init":
				_ = c.WriteMessage(websocket.TextMessage, []byte(`{"type":"connection_ack"}`))
			case "subscribe":
				cc.mu.Lock()
				if subscribed {
					cc.joins++
				}
				cc.mu.Unlock()
				subscribed = true
			case "complete":
				cc.mu.Lock()
				cc.leaves++
				cc.mu.Unlock()
			}
		}
	})
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs.URL + "/graphql"
}

// TestChangesAreLeavesAndJoins: the report prices S8's churn as
// "changes per room per s" = 2 × Rejoins / rooms / seconds ("a rejoin is
// a leave and a join"), so Rejoins must count both halves of the churn.
// A client whose last leave comes in the final half period never comes
// back before the end: that leave is a change too, and is lost.
func TestChangesAreLeavesAndJoins(t *testing.T) {
	var cc changeCounter
	url := cc.start(t)
	rep, err := Run(t.Context(), Config{URL: url, Clients: 20, Rooms: 2, Duration: 2 * time.Second,
		Period: 400 * time.Millisecond, UserPrefix: "u", DialConcurrency: 8, SetupTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the last frames reach the server
	cc.mu.Lock()
	leaves, joins := cc.leaves, cc.joins
	cc.mu.Unlock()
	// What bench/report counts as changes (changesPerRoomPerSecond), from
	// the JSON it reads: leaves and rejoins, a leave per rejoin when the
	// JSON has no leaves.
	b, _ := json.Marshal(rep)
	var got struct{ Rejoins, Leaves int64 }
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Leaves == 0 {
		got.Leaves = got.Rejoins
	}
	if reported, made := got.Leaves+got.Rejoins, int64(leaves+joins); reported != made {
		t.Errorf("the clients made %d presence changes (%d leaves, %d joins); the report counts %d (%d leaves, %d rejoins), %.0f%% short",
			made, leaves, joins, reported, got.Leaves, got.Rejoins, 100*float64(made-reported)/float64(made))
	}
}
