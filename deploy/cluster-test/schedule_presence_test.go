package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/internal/testrig"
)

// standInRig is a rig with stand-ins (sleep) for the cluster's processes.
func standInRig(t *testing.T) (*driver, context.Context) {
	t.Helper()
	rig, _, _ := newNginxRig(t, 60*time.Second)
	d := &driver{began: time.Now(), budget: time.Minute, rig: rig, procs: map[string]*testrig.Proc{}}
	for _, name := range []string{"nats1", "nats2", "nats3", "herald1", "herald2", "herald3"} {
		layer := layerHerald
		if strings.HasPrefix(name, "nats") {
			layer = layerNATS
		}
		p, err := rig.Start(testrig.Spec{Name: name, Path: "sleep", Args: []string{"60"}, Service: true, Layer: layer, Grace: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		d.procs[name] = p
	}
	return d, rig.Context()
}

// TestScheduleSkippedWhenClientsPassEarly: clients that finish (exit 0)
// before the failures are due, e.g. `go run ./deploy/cluster-test -publish
// 5s`, must not make a run whose failures never happened pass.
func TestScheduleSkippedWhenClientsPassEarly(t *testing.T) {
	d, ctx := standInRig(t)
	clients, err := d.rig.Start(testrig.Spec{Name: "clients", Path: "sleep", Args: []string{"0.5"}, Layer: layerFront, Grace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d.procs["clients"] = clients
	began := time.Now()
	err = d.schedule(ctx, began, "room")
	if err == nil {
		t.Fatalf("schedule returned nil %s after it began, though the clients exited 0 before the first failure (+6s) "+
			"and no replica or NATS node was stopped: the driver would print PASS \"across the failures\"", time.Since(began).Round(10*time.Millisecond))
	}
	t.Logf("schedule: %v", err)
}

// fakeReplica answers what presenceCheck asks a replica: createRoom, room,
// and graphql-transport-ws sockets whose roomPresence subscription gets
// the scripted user lists.
func fakeReplica(t *testing.T, presence [][]string, killed <-chan struct{}, afterKill [][]string) int {
	t.Helper()
	up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
	var mu sync.Mutex
	var conns []*websocket.Conn
	var wg sync.WaitGroup // the sockets' goroutines, waited for at cleanup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			var req struct{ Query string }
			_ = json.NewDecoder(r.Body).Decode(&req)
			w.Header().Set("Content-Type", "application/json")
			if strings.Contains(req.Query, "createRoom") {
				fmt.Fprint(w, `{"data":{"createRoom":{"id":"room-1"}}}`)
				return
			}
			fmt.Fprint(w, `{"data":{"room":{"id":"room-1"}}}`)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, ws)
		mu.Unlock()
		var wmu sync.Mutex // one writer at a time: the reader and the after-kill sender
		write := func(v any) {
			wmu.Lock()
			defer wmu.Unlock()
			_ = ws.WriteJSON(v)
		}
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ws.Close()
			defer close(done)
			for {
				var m struct{ ID, Type string }
				if err := ws.ReadJSON(&m); err != nil {
					return
				}
				switch {
				case m.Type == "connection_init":
					write(map[string]any{"type": "connection_ack"})
				case m.Type == "subscribe" && m.ID == "p":
					send := func(list [][]string) {
						for _, users := range list {
							var us []map[string]string
							for _, u := range users {
								us = append(us, map[string]string{"id": u})
							}
							write(map[string]any{"id": "p", "type": "next", "payload": map[string]any{
								"data": map[string]any{"roomPresence": map[string]any{"kind": "LEFT", "user": map[string]string{"id": "x"}, "count": len(users), "users": us}}}})
						}
					}
					if killed != nil {
						wg.Add(1)
						go func() {
							defer wg.Done()
							select {
							case <-killed:
								time.Sleep(100 * time.Millisecond)
								send(afterKill)
							case <-done:
							case <-time.After(20 * time.Second):
							}
						}()
					}
					for _, users := range presence {
						var us []map[string]string
						for _, u := range users {
							us = append(us, map[string]string{"id": u})
						}
						write(map[string]any{"id": "p", "type": "next", "payload": map[string]any{
							"data": map[string]any{"roomPresence": map[string]any{"kind": "JOINED", "user": map[string]string{"id": "x"}, "count": len(users), "users": us}}}})
					}
				}
			}
		}()
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		srv.Close()
		wg.Wait()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestPresenceUserLeftBeforeKill: dies2 drops out of presence while
// herald2 is still up (before the SIGKILL); the check is about expiry
// after the kill, so it must fail, not report a negative leave time.
func TestPresenceUserLeftBeforeKill(t *testing.T) {
	everyone := []string{"both", "dies2", "stays1", "stays3", "watcher1", "watcher3"}
	survivors := []string{"both", "stays1", "stays3", "watcher1", "watcher3"}
	d, ctx := standInRig(t)
	for i := 1; i <= 3; i++ {
		d.heraldPort[i] = fakeReplica(t, [][]string{everyone, survivors}, nil, nil)
	}
	left, err := d.presenceCheck(ctx)
	if err == nil {
		t.Fatalf("presenceCheck passed (dies2 \"left\" %.2fs after the SIGKILL) though dies2 left both watchers' presence before herald2 was killed", left.Seconds())
	}
	t.Logf("presenceCheck: %v", err)
}

// TestPresenceUserLeftAfterKill is the positive control: dies2 leaves
// after the SIGKILL, the survivors stay: the check passes.
func TestPresenceUserLeftAfterKill(t *testing.T) {
	everyone := []string{"both", "dies2", "stays1", "stays3", "watcher1", "watcher3"}
	survivors := []string{"both", "stays1", "stays3", "watcher1", "watcher3"}
	d, ctx := standInRig(t)
	for i := 1; i <= 3; i++ {
		d.heraldPort[i] = fakeReplica(t, [][]string{everyone}, d.procs["herald2"].Done(), [][]string{survivors})
	}
	left, err := d.presenceCheck(ctx)
	if err != nil || left <= 0 || left > 5*time.Second {
		t.Fatalf("presenceCheck: %v, dies2 left after %s; want a pass with a leave time of about 0.1s", err, left)
	}
}
