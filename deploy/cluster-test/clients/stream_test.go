package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// sseEvent is one message as an event-stream "next" event.
func sseEvent(text, cursor string) string {
	return "event: next\nid: " + cursor + "\ndata: " + string(eventPayload(event{text, cursor})) + "\n\n"
}

// TestSSEFraming reads crafted event streams through readFrames: events
// split over data lines, keepalives, completion, stray events and errors.
func TestSSEFraming(t *testing.T) {
	for _, tc := range []struct {
		name, stream, reason string
		next, violations     int
		complete             int
		errors               int
	}{
		{"events and keepalives", ":\n\n" + sseEvent("r0:0", "c0") + ":\n\n" + sseEvent("r0:1", "c1"), "stream ended", 2, 0, 0, 0},
		{"data over two lines", "event: next\nid: c0\ndata: {\"data\":{\"messagePosted\":\ndata: {\"text\":\"r0:0\"}},\"extensions\":{\"cursor\":\"c0\"}}\n\n", "stream ended", 1, 0, 0, 0},
		{"completed", sseEvent("r0:0", "c0") + "event: complete\ndata:\n\n" + sseEvent("r0:1", "c1"), "server completed r0", 1, 0, 1, 0},
		{"unexpected event", "event: surprise\ndata: {}\n\n" + sseEvent("r0:0", "c0"), "stream ended", 1, 1, 0, 0},
		{"data and errors", "event: next\nid: c0\ndata: {\"data\":{\"messagePosted\":{\"text\":\"r0:0\"}},\"errors\":[{\"message\":\"partial\"}],\"extensions\":{\"cursor\":\"c0\"}}\n\n", "stream ended", 1, 0, 0, 0},
		{"transient error", sseEvent("r0:0", "c0") + "event: next\ndata: {\"data\":null,\"errors\":[{\"message\":\"later\",\"extensions\":{\"code\":\"UNAVAILABLE\"}}]}\n\n" + sseEvent("r0:1", "c1"), "stream error UNAVAILABLE", 1, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := testClient(t)
			body := io.NopCloser(strings.NewReader(tc.stream))
			reason, stop := c.readFrames(context.Background(), body, s, &sseFraming{c: c, s: s, conn: 1})
			if reason != tc.reason || stop {
				t.Errorf("readFrames = %q, stop %v; want %q", reason, stop, tc.reason)
			}
			if s.next != tc.next || c.rep.count != tc.violations || c.rep.unexpComplete != tc.complete || len(c.rep.subErrors) != tc.errors {
				t.Errorf("next %d, violations %q, completions %d, errors %v; want next %d, %d violations, %d completions, %d errors",
					s.next, c.rep.violations, c.rep.unexpComplete, c.rep.subErrors, tc.next, tc.violations, tc.complete, tc.errors)
			}
		})
	}
}

// TestStreamErrorStopsOnlyWhenRetryCannotHelp: an error that ends a
// stream ends the run when retrying cannot help (a permanent code, or
// none), and only then.
func TestStreamErrorStopsOnlyWhenRetryCannotHelp(t *testing.T) {
	for _, tc := range []struct {
		code  string
		fatal bool
	}{
		{"CURSOR_EXPIRED", true},
		{"BAD_USER_INPUT", true},
		{"", true},
		{"UNAVAILABLE", false},
		{"SLOW_CONSUMER", false},
	} {
		t.Run("code "+tc.code, func(t *testing.T) {
			c, s := testClient(t)
			var e gqlError
			e.Message, e.Extensions.Code = "no", tc.code
			_, stop, done := c.streamError(s, e)
			if !done || stop != tc.fatal || (c.rep.count == 1) != tc.fatal {
				t.Errorf("streamError(%q): stop %v, done %v, violations %q; want stop %v, done, a violation only if stopping", tc.code, stop, done, c.rep.violations, tc.fatal)
			}
		})
	}
}

// TestStreamRequestsCarryTheCursor: an event-stream resumes by
// Last-Event-ID alone (so that the run tests Herald's Last-Event-ID), a
// multipart subscription by $after.
func TestStreamRequestsCarryTheCursor(t *testing.T) {
	for _, cursor := range []string{"", "cur-7"} {
		t.Run("cursor "+cursor, func(t *testing.T) {
			c, s := testClient(t)
			c.url = "http://herald/graphql"
			s.room.id = "A"
			req, err := c.sseRequest(context.Background(), s, cursor)
			if err != nil {
				t.Fatal(err)
			}
			var vars map[string]any
			_ = json.Unmarshal([]byte(req.URL.Query().Get("variables")), &vars)
			if got := req.Header.Get("Last-Event-ID"); got != cursor || len(vars) != 1 || vars["r"] != "A" {
				t.Errorf("event-stream request: Last-Event-ID %q, variables %v; want Last-Event-ID %q and only r: A", got, vars, cursor)
			}
			req, err = c.multipartRequest(context.Background(), s, cursor)
			if err != nil {
				t.Fatal(err)
			}
			var op struct{ Variables map[string]any }
			b, _ := io.ReadAll(req.Body)
			_ = json.Unmarshal(b, &op)
			after, has := op.Variables["after"]
			if has != (cursor != "") || has && after != cursor || op.Variables["r"] != "A" {
				t.Errorf("multipart request variables %v; want r: A and after: %q (none when empty)", op.Variables, cursor)
			}
		})
	}
}

// TestStreamSessionResumesAfterLastCursor runs two HTTP-stream sessions
// (event-stream and multipart) against a fake server: the second must
// resume after the last cursor the first received (or, with
// -resume=false, from nothing).
func TestStreamSessionResumesAfterLastCursor(t *testing.T) {
	for _, kind := range []transport{overSSE, overMultipart} {
		for _, resume := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s resume %v", map[transport]string{overSSE: "event-stream", overMultipart: "multipart"}[kind], resume), func(t *testing.T) {
				var mu sync.Mutex
				var afters []string
				n := 0
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					after := r.Header.Get("Last-Event-ID")
					if r.Method == http.MethodPost {
						var op struct{ Variables map[string]any }
						_ = json.NewDecoder(r.Body).Decode(&op)
						after, _ = op.Variables["after"].(string)
					}
					mu.Lock()
					afters = append(afters, after)
					text, cursor := fmt.Sprintf("r0:%d", n), fmt.Sprintf("c%d", n)
					n++
					mu.Unlock()
					if r.Method == http.MethodPost {
						w.Header().Set("Content-Type", `multipart/mixed; boundary="graphql"; subscriptionSpec="1.0"`)
						_, _ = io.WriteString(w, delimiter+partHead+`{"payload":`+string(eventPayload(event{text, cursor}))+`}`+closeLine)
						return
					}
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, sseEvent(text, cursor))
				}))
				defer srv.Close()
				c, s := testClient(t)
				c.kind, c.url, c.http, c.cfg.resume = kind, srv.URL, srv.Client(), resume
				s.cursor = "seed"
				for i := range 2 {
					reason, acked, stop := c.streamSession(context.Background())
					if !acked || stop || reason == "" {
						t.Fatalf("session %d = %q, acked %v, stop %v; want an acknowledged session that ended", i+1, reason, acked, stop)
					}
				}
				want := []string{"seed", "c0"}
				if !resume {
					want = []string{"seed", ""}
				}
				mu.Lock()
				defer mu.Unlock()
				if strings.Join(afters, ",") != strings.Join(want, ",") {
					t.Errorf("the streams resumed after %q; want %q", afters, want)
				}
			})
		}
	}
}

// wsFake is a graphql-transport-ws server: it acknowledges, records each
// subscribe, and then sends what script returns for that connection.
type wsFake struct {
	mu         sync.Mutex
	subscribes []map[string]any // id, after
	script     func(conn int, ids []string) []string
	conns      int
}

func (f *wsFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer ws.Close()
	var m wsMessage
	if ws.ReadJSON(&m) != nil || m.Type != "connection_init" {
		return
	}
	_ = ws.WriteJSON(wsMessage{Type: "connection_ack"})
	f.mu.Lock()
	f.conns++
	conn := f.conns
	f.mu.Unlock()
	// testClient subscribes to one room: one subscribe per connection.
	if ws.ReadJSON(&m) != nil || m.Type != "subscribe" {
		return
	}
	var p struct{ Variables map[string]any }
	_ = json.Unmarshal(m.Payload, &p)
	f.mu.Lock()
	f.subscribes = append(f.subscribes, map[string]any{"id": m.ID, "after": p.Variables["after"]})
	f.mu.Unlock()
	for _, raw := range f.script(conn, []string{m.ID}) {
		_ = ws.WriteMessage(websocket.TextMessage, []byte(raw))
	}
	_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
}

// wsNext is one message as a graphql-transport-ws "next".
func wsNext(id, text, cursor string) string {
	b, _ := json.Marshal(map[string]any{"id": id, "type": "next", "payload": eventPayload(event{text, cursor})})
	return string(b)
}

// TestWebSocketSessionResumesAndFlagsStrayMessages: the WebSocket client
// resumes after the last cursor, and flags what it cannot place; an error
// without a code ends the run.
func TestWebSocketSessionResumesAndFlagsStrayMessages(t *testing.T) {
	for _, tc := range []struct {
		name       string
		resume     bool
		second     func(ids []string) []string
		afters     []any
		violations int
		stop       bool
	}{
		{"resumes", true, func(ids []string) []string { return []string{wsNext(ids[0], "r0:1", "c1")} }, []any{"seed", "c0"}, 0, false},
		{"without resume", false, func(ids []string) []string { return []string{wsNext(ids[0], "r0:1", "c1")} }, []any{"seed", nil}, 0, false},
		{"next for an unknown id", true, func(ids []string) []string { return []string{wsNext("nobody", "r0:1", "c1")} }, []any{"seed", "c0"}, 1, false},
		{"an old connection's id", true, func(ids []string) []string { return []string{wsNext("r0.1", "r0:1", "c1")} }, []any{"seed", "c0"}, 1, false},
		{"unexpected type", true, func(ids []string) []string { return []string{`{"type":"surprise"}`} }, []any{"seed", "c0"}, 1, false},
		{"error without a code", true, func(ids []string) []string {
			return []string{`{"id":"` + ids[0] + `","type":"error","payload":[{"message":"boom"}]}`}
		}, []any{"seed", "c0"}, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &wsFake{script: func(conn int, ids []string) []string {
				if conn == 1 {
					return []string{wsNext(ids[0], "r0:0", "c0")}
				}
				return tc.second(ids)
			}}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			c, s := testClient(t)
			c.url, c.cfg.resume = "ws"+strings.TrimPrefix(srv.URL, "http"), tc.resume
			s.cursor = "seed"
			for i := range 2 {
				_, _, stop := c.session(context.Background())
				if want := i == 1 && tc.stop; stop != want {
					t.Fatalf("session %d: stop %v; want %v (violations %q)", i+1, stop, want, c.rep.violations)
				}
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			var afters []any
			for _, sub := range fake.subscribes {
				afters = append(afters, sub["after"])
			}
			if fmt.Sprint(afters) != fmt.Sprint(tc.afters) || c.rep.count != tc.violations {
				t.Errorf("subscribed after %v, violations %q; want after %v and %d violations", afters, c.rep.violations, tc.afters, tc.violations)
			}
		})
	}
}
