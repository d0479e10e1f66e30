package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestReadRoomIDs(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, content string
		want          []string
		ok            bool
	}{
		{"plain", "a\nb\nc\n", []string{"a", "b", "c"}, true},
		{"blank lines, comments, spaces, no final newline", "# rooms\n\n a \r\nb", []string{"a", "b"}, true},
		{"empty", "\n# nothing\n", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := readRoomIDs(p)
			if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
				t.Fatalf("readRoomIDs = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if _, err := readRoomIDs(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

func TestConfigRoomIDsAndPublishURL(t *testing.T) {
	base := Config{URL: "http://127.0.0.1:1/graphql", Connections: 1, Events: 1}
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
		rooms int
		ok    bool
	}{
		{"room ids set the room count", func(c *Config) { c.RoomIDs = []string{"a", "b", "c"} }, 3, true},
		{"a matching count", func(c *Config) { c.RoomIDs = []string{"a", "b"}; c.Rooms = 2 }, 2, true},
		{"a count that does not match", func(c *Config) { c.RoomIDs = []string{"a", "b"}; c.Rooms = 3 }, 0, false},
		{"an empty id", func(c *Config) { c.RoomIDs = []string{"a", ""} }, 0, false},
		{"a publish URL", func(c *Config) { c.PublishURL = "http://127.0.0.1:2/graphql" }, 1, true},
		{"a publish URL without a scheme", func(c *Config) { c.PublishURL = "127.0.0.1:2" }, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.tweak(&c)
			got, err := c.withDefaults()
			if (err == nil) != tc.ok {
				t.Fatalf("withDefaults: %v, want ok %v", err, tc.ok)
			}
			if tc.ok && got.Rooms != tc.rooms {
				t.Fatalf("rooms %d, want %d", got.Rooms, tc.rooms)
			}
		})
	}
}

func TestCLIRoomIDsFlags(t *testing.T) {
	ids := filepath.Join(t.TempDir(), "ids")
	if err := os.WriteFile(ids, []byte("a\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--room-ids", ids, "--rooms", "3"}, "--rooms 3 but"},
		{[]string{"--room-ids", ids + ".missing"}, "--room-ids"},
		{[]string{"--publish-url", "nope"}, "publish url"},
	} {
		var out, errb bytes.Buffer
		if code := cli(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.msg) {
			t.Errorf("cli(%q) = %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.msg)
		}
	}
}

// twoReplicas is a stand-in for two replicas sharing one log: A serves
// the WebSockets (graphql-transport-ws), B the HTTP mutations; a post at
// B reaches A's subscribers of its room. It knows only what loadgen sends.
type twoReplicas struct {
	mu      sync.Mutex
	subs    map[string][]func(text string) // room id -> senders
	rooms   map[string]bool
	created atomic.Int64
	postsA  atomic.Int64 // mutations sent to A: there should be none
	postsB  atomic.Int64
}

func (tr *twoReplicas) mutation(t *testing.T, count *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		var req struct {
			Query     string
			Variables map[string]string
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch {
		case strings.Contains(req.Query, "createRoom"):
			tr.created.Add(1)
			id := "new-" + req.Variables["n"]
			tr.mu.Lock()
			tr.rooms[id] = true
			tr.mu.Unlock()
			_, _ = w.Write([]byte(`{"data":{"createRoom":{"id":"` + id + `"}}}`))
		case strings.Contains(req.Query, "postMessage"):
			tr.mu.Lock()
			ok := tr.rooms[req.Variables["r"]]
			senders := slices.Clone(tr.subs[req.Variables["r"]])
			tr.mu.Unlock()
			if !ok {
				_, _ = w.Write([]byte(`{"errors":[{"message":"no room","extensions":{"code":"NOT_FOUND"}}],"data":null}`))
				return
			}
			for _, send := range senders {
				send(req.Variables["t"])
			}
			_, _ = w.Write([]byte(`{"data":{"postMessage":{"id":"m"}}}`))
		default:
			t.Errorf("unexpected operation %q", req.Query)
		}
	}
}

func (tr *twoReplicas) ws(t *testing.T) http.HandlerFunc {
	up := websocket.Upgrader{Subprotocols: []string{protoTransport}}
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		var wmu sync.Mutex
		write := func(v any) {
			b, _ := json.Marshal(v)
			wmu.Lock()
			defer wmu.Unlock()
			_ = c.WriteMessage(websocket.TextMessage, b)
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			var f struct {
				ID      string
				Type    string
				Payload struct{ Variables map[string]string }
			}
			_ = json.Unmarshal(msg, &f)
			switch f.Type {
			case "connection_init":
				write(map[string]any{"type": "connection_ack"})
			case "subscribe":
				room, id := f.Payload.Variables["r"], f.ID
				tr.mu.Lock()
				tr.subs[room] = append(tr.subs[room], func(text string) {
					write(map[string]any{"id": id, "type": "next", "payload": map[string]any{"data": map[string]any{"messagePosted": map[string]any{"text": text}}}})
				})
				tr.mu.Unlock()
			}
		}
	}
}

// TestRunRoomIDsPublishURL: with --room-ids loadgen creates no room and
// subscribes to the given ones; with --publish-url every post goes to the
// other replica; --started-file appears once publishing starts.
func TestRunRoomIDsPublishURL(t *testing.T) {
	tr := &twoReplicas{subs: map[string][]func(string){}, rooms: map[string]bool{"r1": true, "r2": true, "r3": true}}
	a := http.NewServeMux()
	a.HandleFunc("GET /graphql", tr.ws(t))
	a.HandleFunc("POST /graphql", tr.mutation(t, &tr.postsA))
	b := http.NewServeMux()
	b.HandleFunc("POST /graphql", tr.mutation(t, &tr.postsB))
	sa, sb := httptest.NewServer(a), httptest.NewServer(b)
	defer sa.Close()
	defer sb.Close()
	started := filepath.Join(t.TempDir(), "started")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{URL: sa.URL + "/graphql", PublishURL: sb.URL + "/graphql", Protocol: "transport",
		RoomIDs: []string{"r1", "r2", "r3"}, Connections: 6, Events: 30, Rate: 300, StartedFile: started,
		RequireZeroLoss: true, SetupTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Pass {
		t.Fatalf("run failed: %v %v", rep.Failures, rep.ErrorSample)
	}
	if rep.Config.Rooms != 3 || rep.Config.RoomIDs != 3 || rep.Config.PublishURL != sb.URL+"/graphql" {
		t.Errorf("config report %+v", rep.Config)
	}
	if rep.Delivery.Received != 60 || rep.Delivery.Expected != 60 {
		t.Errorf("deliveries %d of %d, want 60", rep.Delivery.Received, rep.Delivery.Expected)
	}
	if tr.created.Load() != 0 || tr.postsA.Load() != 0 || tr.postsB.Load() < 30 {
		t.Errorf("created %d rooms; %d mutations at A, %d at B", tr.created.Load(), tr.postsA.Load(), tr.postsB.Load())
	}
	if _, err := os.Stat(started); err != nil {
		t.Errorf("--started-file: %v", err)
	}

	// Without --room-ids, rooms are created at A (which the subscribers
	// are on), the posts still go to B.
	tr.postsA.Store(0)
	tr.postsB.Store(0)
	rep, err = Run(ctx, Config{URL: sa.URL + "/graphql", PublishURL: sb.URL + "/graphql", Protocol: "transport",
		Rooms: 2, Connections: 4, Events: 10, RequireZeroLoss: true, SetupTimeout: 10 * time.Second, DrainTimeout: 5 * time.Second})
	if err != nil || !rep.Pass {
		t.Fatalf("run: %v %+v", err, rep)
	}
	if tr.created.Load() != 2 || tr.postsA.Load() != 2 || tr.postsB.Load() < 10 {
		t.Errorf("created %d rooms; %d mutations at A, %d at B", tr.created.Load(), tr.postsA.Load(), tr.postsB.Load())
	}
}
