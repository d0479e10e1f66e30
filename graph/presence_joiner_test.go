package graph

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/server"
)

// controlledPresence is a Presence whose reports the test makes: Watch
// hands the current users at once and keeps fn for report.
type controlledPresence struct {
	mu    sync.Mutex
	users []string
	fns   []func([]string)
}

func (p *controlledPresence) Watch(_ context.Context, _ string, fn func([]string)) (func(), error) {
	p.mu.Lock()
	p.fns = append(p.fns, fn)
	users := append([]string(nil), p.users...)
	p.mu.Unlock()
	fn(users)
	return func() {}, nil
}

func (p *controlledPresence) WatchSignals(string, func(string)) (func(), error) {
	return func() {}, nil
}

func (p *controlledPresence) Signal(context.Context, string, string) error { return nil }

func (p *controlledPresence) report(users []string) {
	p.mu.Lock()
	p.users = users
	fns := append([]func([]string){}, p.fns...)
	p.mu.Unlock()
	for _, fn := range fns {
		fn(append([]string(nil), users...))
	}
}

// presenceServer serves svc's schema with presence p through Herald's
// engine (shared executions) until the test ends.
func presenceServer(t *testing.T, svc *chat.Service, p Presence, window time.Duration) *httptest.Server {
	t.Helper()
	srv, err := server.New(server.Options{
		Schema:          NewSchemaWith(svc, time.Unix(0, 1), Options{Presence: p, PresenceWindow: window}),
		Authenticator:   auth.Dev{},
		Readiness:       func(context.Context) []server.Check { return nil },
		ViewerDirective: ViewerDirective,
		ResumeArgument:  ResumeArgument,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return hs
}

const presenceQuery = `subscription($r: ID!) { roomPresence(roomId: $r) { kind user { id } count users { id } } }`

// presenceStreamEvent is one roomPresence event as a client reads it.
type presenceStreamEvent struct {
	Kind  string
	User  string
	Count int
}

// subscribePresence opens a roomPresence stream (graphql-sse, distinct
// connections) as user and returns its events until the test ends.
func subscribePresence(t *testing.T, hs *httptest.Server, user, roomID string) <-chan presenceStreamEvent {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": presenceQuery, "variables": map[string]any{"r": roomID}})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", hs.URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set(auth.DevHeader, user)
	resp, err := hs.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("subscribe: %s", resp.Status)
	}
	out := make(chan presenceStreamEvent, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(out)
		rd := bufio.NewReaderSize(resp.Body, 1<<20)
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			data, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "data: ")
			if !ok {
				continue
			}
			var msg struct {
				Data struct {
					RoomPresence struct {
						Kind  string
						User  *struct{ ID string }
						Count int
					}
				}
			}
			if json.Unmarshal([]byte(data), &msg) != nil {
				continue
			}
			ev := presenceStreamEvent{Kind: msg.Data.RoomPresence.Kind, Count: msg.Data.RoomPresence.Count}
			if u := msg.Data.RoomPresence.User; u != nil {
				ev.User = u.ID
			}
			select {
			case out <- ev:
			default:
			}
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return out
}

// A subscriber joining the shared execution of a room's roomPresence
// while a batch of changes was on its way got those changes (LEFT of users
// it never saw) before its SNAPSHOT: the engine delivers each result to
// whoever is a member then, and the joiner's SNAPSHOT (auth.OnJoin →
// presenceFeed.resync) only comes with the next batch. README: "The first
// event is a SNAPSHOT". The engine holds a joiner's results back until a
// state (eventmeta.Meta.State) now. Here a room of 3,000 users loses 20
// (20 LEFT events of ~3,000 users each, which take the engine a while to
// execute and encode), and bob subscribes as they are sent.
func TestPresenceJoinerStartsWithASnapshot(t *testing.T) {
	svc := startChat(t)
	room, err := svc.CreateRoom(context.Background(), chat.Actor{ID: "alice"}, "joiner")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%05d", i)
	}
	p := &controlledPresence{users: users}
	hs := presenceServer(t, svc, p, 10*time.Millisecond)

	alice := subscribePresence(t, hs, "alice", room.ID)
	select {
	case ev := <-alice:
		if ev.Kind != "SNAPSHOT" || ev.Count != n {
			t.Fatalf("alice's first event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alice got no SNAPSHOT")
	}

	p.report(users[20:]) // 20 leave: 20 LEFT events
	time.Sleep(15 * time.Millisecond)
	bob := subscribePresence(t, hs, "bob", room.ID)

	var got []presenceStreamEvent
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-bob:
			if !ok {
				t.Fatalf("bob's stream ended after %+v", got)
			}
			got = append(got, ev)
			if ev.Kind != "SNAPSHOT" {
				continue
			}
		case <-deadline:
			t.Fatalf("bob got no SNAPSHOT; got %+v", got)
		}
		break
	}
	if len(got) > 1 {
		t.Fatalf("bob's first %d events came before his SNAPSHOT: %+v (first kind %s, want SNAPSHOT)", len(got)-1, got[:min(len(got)-1, 5)], got[0].Kind)
	}
}
