package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeHerald is just enough of Herald for runTest: createRoom,
// postMessage (idempotent by key), messageCount, and graphql-transport-ws
// subscriptions after a cursor. Cursors are "c<index in the room's log>".
type fakeHerald struct {
	mu    sync.Mutex
	rooms map[string]*fakeRoom // by ID
	subs  []*fakeSub

	// faults
	skip       func(text string, sub int) bool // not sent to the sub'th subscription of its room (from 0; stored though)
	twice      func(text string) bool          // sent to subscribers twice
	countExtra int                             // added to room1's messageCount on the "direct" replica (/d/graphql)
}

type fakeRoom struct {
	log  []string
	keys map[string]int
}

type fakeSub struct {
	mu     sync.Mutex
	ws     *websocket.Conn
	id     string
	roomID string
}

func (s *fakeSub) send(text string, index int) {
	payload := eventPayload(event{text, "c" + strconv.Itoa(index)})
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_ = s.ws.WriteJSON(map[string]any{"id": s.id, "type": "next", "payload": payload})
}

func newFakeHerald(t *testing.T) (*fakeHerald, string) {
	t.Helper()
	f := &fakeHerald{rooms: map[string]*fakeRoom{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeHerald) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if websocket.IsWebSocketUpgrade(r) {
		f.serveWS(w, r)
		return
	}
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	_ = json.NewDecoder(r.Body).Decode(&req)
	w.Header().Set("Content-Type", "application/json")
	data := f.answer(req.Query, req.Variables, strings.HasPrefix(r.URL.Path, "/d/"))
	_ = json.NewEncoder(w).Encode(map[string]any{"data": data})
}

func (f *fakeHerald) answer(query string, vars map[string]any, direct bool) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case strings.Contains(query, "createRoom"):
		id := fmt.Sprintf("room%d", len(f.rooms))
		f.rooms[id] = &fakeRoom{keys: map[string]int{}}
		return map[string]any{"createRoom": map[string]any{"id": id}}
	case strings.Contains(query, "postMessage"):
		rm := f.rooms[vars["r"].(string)]
		text, key := vars["t"].(string), vars["k"].(string)
		i, ok := rm.keys[key]
		if !ok {
			i = len(rm.log)
			rm.log = append(rm.log, text)
			rm.keys[key] = i
			j := -1
			for _, s := range f.subs {
				if s.roomID != vars["r"] {
					continue
				}
				if j++; f.skip != nil && f.skip(text, j) {
					continue
				}
				s.send(text, i)
				if f.twice != nil && f.twice(text) {
					s.send(text, i)
				}
			}
		}
		return map[string]any{"postMessage": map[string]any{"id": "m" + strconv.Itoa(i), "text": text, "cursor": "c" + strconv.Itoa(i)}}
	case strings.Contains(query, "messageCount"):
		rm := f.rooms[vars["id"].(string)]
		if rm == nil {
			return map[string]any{"room": nil}
		}
		n := len(rm.log)
		if direct && vars["id"] == "room1" {
			n += f.countExtra
		}
		return map[string]any{"room": map[string]any{"messageCount": n}}
	}
	return nil
}

func (f *fakeHerald) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	var wmu sync.Mutex
	for {
		var m wsMessage
		if ws.ReadJSON(&m) != nil {
			return
		}
		switch m.Type {
		case "connection_init":
			wmu.Lock()
			_ = ws.WriteJSON(wsMessage{Type: "connection_ack"})
			wmu.Unlock()
		case "subscribe":
			var p struct{ Variables map[string]any }
			_ = json.Unmarshal(m.Payload, &p)
			roomID, _ := p.Variables["r"].(string)
			after := -1
			if a, ok := p.Variables["after"].(string); ok {
				after, _ = strconv.Atoi(strings.TrimPrefix(a, "c"))
			}
			s := &fakeSub{ws: ws, id: m.ID, roomID: roomID}
			f.mu.Lock()
			for i, text := range f.rooms[roomID].log {
				if i > after {
					s.send(text, i)
				}
			}
			f.subs = append(f.subs, s)
			f.mu.Unlock()
		}
	}
}

// firstTime is true for text the first time it is asked about, and only
// then.
func firstTime(text string) func(string) bool {
	done := false
	return func(t string) bool {
		if t != text || done {
			return false
		}
		done = true
		return true
	}
}

// runConfig is a small run against a fake Herald at url: two clients,
// two rooms, half a second of posts. The deadline only bounds a run that
// hangs; a run takes a few seconds (ten more when a count is wrong, as
// checkCounts retries it).
func runConfig(url string) config {
	return config{
		url: url, direct: []string{url + "/d"},
		clients: 2, rooms: 2, roomsPerClient: 2,
		rate: 40, publish: 500 * time.Millisecond,
		connectWait: 10 * time.Second, settle: 3 * time.Second, quiet: 100 * time.Millisecond,
		deadline: 30 * time.Second, readTimeout: 30 * time.Second, postTimeout: 5 * time.Second,
		reconnectLimit: 30 * time.Second, resume: true,
	}
}

// captureStdout passes each line runTest logs (logf writes to os.Stdout)
// to onLine, still printing it, until the returned stop, which waits for
// the last line.
func captureStdout(t *testing.T, onLine func(string)) (stop func()) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			fmt.Fprintln(stdout, sc.Text())
			onLine(sc.Text())
		}
	}()
	var stopOnce sync.Once
	stop = func() {
		stopOnce.Do(func() {
			os.Stdout = stdout
			w.Close()
			<-scanned
			r.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestRunTestVerdict runs the whole judge against a fake Herald that
// loses, duplicates or miscounts one message: the exit status must be 1,
// and 0 only for a clean run.
func TestRunTestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fault  func(f *fakeHerald, cfg *config)
		status int
	}{
		{"clean", func(*fakeHerald, *config) {}, 0},
		{"one message lost midway to one subscriber", func(f *fakeHerald, _ *config) {
			lose := firstTime("r1:3")
			f.skip = func(text string, _ int) bool { return lose(text) }
		}, 1},
		{"one subscriber gets nothing after its fourth message", func(f *fakeHerald, _ *config) {
			f.skip = func(text string, sub int) bool {
				n, _ := strconv.Atoi(strings.TrimPrefix(text, "r0:"))
				return sub == 0 && strings.HasPrefix(text, "r0:") && n >= 4
			}
		}, 1},
		{"one message delivered twice to one subscriber", func(f *fakeHerald, _ *config) { f.twice = firstTime("r0:2") }, 1},
		{"one message stored twice", func(f *fakeHerald, _ *config) { f.countExtra = 1 }, 1},
		{"deadline while listening for duplicates", func(_ *fakeHerald, cfg *config) { cfg.deadline, cfg.quiet = 3*time.Second, 30*time.Second }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, url := newFakeHerald(t)
			cfg := runConfig(url)
			tc.fault(f, &cfg)
			if got := runTest(context.Background(), cfg); got != tc.status {
				t.Errorf("runTest = %d; want %d", got, tc.status)
			}
		})
	}
}

// TestRunTestFailsWhenInterrupted: a run interrupted (SIGINT, SIGTERM)
// while it listens for late duplicates fails, though nothing was wrong so
// far.
func TestRunTestFailsWhenInterrupted(t *testing.T) {
	_, url := newFakeHerald(t)
	cfg := runConfig(url)
	cfg.quiet = time.Minute
	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	// Interrupt on the judge's own line that it is listening for
	// duplicates.
	stop := captureStdout(t, func(line string) {
		if strings.Contains(line, "listening") {
			interrupt()
		}
	})
	got := runTest(ctx, cfg)
	stop()
	if got != 1 {
		t.Errorf("runTest interrupted while listening for duplicates = %d; want 1", got)
	}
}

// TestStoppedRunSummaryClaimsNeitherCountsNorPass: a run stopped by
// -deadline skips checkCounts, so its summary must say the counts were
// not checked, not that they hold on every replica, and must not print
// PASS before "FAIL: run stopped".
func TestStoppedRunSummaryClaimsNeitherCountsNorPass(t *testing.T) {
	_, url := newFakeHerald(t)
	cfg := runConfig(url)
	cfg.deadline, cfg.quiet = 3*time.Second, 30*time.Second
	var lines []string
	stop := captureStdout(t, func(line string) { lines = append(lines, line) })
	got := runTest(context.Background(), cfg)
	stop()
	if got != 1 {
		t.Fatalf("runTest = %d; want 1", got)
	}
	notChecked := false
	for _, l := range lines {
		if strings.Contains(l, "messageCount = posted + seed") || strings.HasSuffix(l, "cluster-clients: PASS") {
			t.Errorf("a run stopped before checkCounts printed %q; want no count claimed and no PASS", l)
		}
		notChecked = notChecked || strings.Contains(l, "messageCount not checked")
	}
	if !notChecked {
		t.Errorf("the summary of a stopped run does not say messageCount was not checked; want it to")
	}
}
