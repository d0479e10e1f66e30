package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// The presence phase, after the clients' run, with every replica up: users
// present in a room through each replica (a messagePosted subscription on
// a socket straight to it, not through nginx, which would choose the
// replica), watched by roomPresence subscribers on replicas 1 and 3. Then
// replica 2 is SIGKILLed: it cleans nothing up, so its users must leave
// the other replicas' presence when its keys in the NATS presence bucket
// expire, within presenceLeave; the users of the survivors, and a user
// present through replica 2 and a survivor, must stay throughout.
const (
	presenceBound = 40 * time.Second // the whole phase
	presenceLeave = 10 * time.Second // what the README promises
	presenceWait  = 15 * time.Second // how long to wait for a change, to report a late one
)

const (
	presenceQuery = `subscription($r: ID!) { roomPresence(roomId: $r) { kind user { id } count users { id } } }`
	postedQuery   = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
)

// presenceCheck runs the phase; it leaves replica 2 killed.
func (d *driver) presenceCheck(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, presenceBound, fmt.Errorf("the presence check took longer than %s", presenceBound))
	defer cancel()
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", d.heraldPort[i]) }
	d.logf("presence: users present through each replica, watched on herald1 and herald3; then SIGKILL herald2")

	room, err := createPresenceRoom(ctx, addr(1))
	if err != nil {
		return 0, err
	}
	for _, i := range []int{2, 3} {
		if err := waitRoom(ctx, addr(i), room); err != nil {
			return 0, fmt.Errorf("presence: herald%d: %w", i, err)
		}
	}
	watchers := map[int]*presenceSocket{}
	for _, i := range []int{1, 3} {
		s, err := dialPresence(ctx, addr(i), fmt.Sprintf("watcher%d", i))
		if err != nil {
			return 0, fmt.Errorf("presence: herald%d: %w", i, err)
		}
		defer s.close()
		if err := s.subscribe("p", presenceQuery, room); err != nil {
			return 0, err
		}
		watchers[i] = s
	}
	for _, p := range []struct {
		replica int
		user    string
	}{{1, "stays1"}, {2, "dies2"}, {3, "stays3"}, {2, "both"}, {3, "both"}} {
		s, err := dialPresence(ctx, addr(p.replica), p.user)
		if err != nil {
			return 0, fmt.Errorf("presence: herald%d: %w", p.replica, err)
		}
		defer s.close()
		if err := s.subscribe("m", postedQuery, room); err != nil {
			return 0, err
		}
	}
	everyone := []string{"both", "dies2", "stays1", "stays3", "watcher1", "watcher3"}
	for _, i := range []int{1, 3} {
		if _, err := watchers[i].until(ctx, presenceWait, everyone, nil); err != nil {
			return 0, fmt.Errorf("presence: the watcher on herald%d: %w", i, err)
		}
	}
	d.logf("presence: both watchers see %s", strings.Join(everyone, " "))

	killed := time.Now()
	if err := d.kill(ctx, "herald2", " (presence check)"); err != nil {
		return 0, err
	}
	survivors := []string{"both", "stays1", "stays3", "watcher1", "watcher3"}
	// Every event until then must keep the survivors' users.
	keeps := func(users []string) error {
		for _, u := range survivors {
			if !slices.Contains(users, u) {
				return fmt.Errorf("%s, present through a surviving replica, left: users %q", u, users)
			}
		}
		return nil
	}
	var slowest time.Duration
	for _, i := range []int{1, 3} {
		left, err := watchers[i].until(ctx, time.Until(killed.Add(presenceWait)), survivors, keeps)
		if err != nil {
			return 0, fmt.Errorf("presence: the watcher on herald%d after the SIGKILL of herald2: %w", i, err)
		}
		took := left.Sub(killed)
		if took <= 0 {
			// Read before the SIGKILL: dies2 left while herald2 was up,
			// which says nothing of the expiry this phase checks.
			return 0, fmt.Errorf("presence: dies2, present through herald2, left herald%d's roomPresence %.1fs before herald2 was SIGKILLed, while its socket was open",
				i, -took.Seconds())
		}
		d.logf("presence: dies2 left herald%d's roomPresence %.1fs after the SIGKILL of herald2", i, took.Seconds())
		if took > presenceLeave {
			return 0, fmt.Errorf("presence: dies2, present through the killed herald2, left herald%d's roomPresence %.1fs after the SIGKILL, want within %s",
				i, took.Seconds(), presenceLeave)
		}
		slowest = max(slowest, took)
	}
	return slowest, nil
}

// presenceSocket is a graphql-transport-ws connection straight to a
// replica, as a user of the development authentication.
type presenceSocket struct {
	ws     *websocket.Conn
	events chan presenceResult // roomPresence results; closed when the socket ends
	err    error               // why it ended, once events is closed
}

type presenceResult struct {
	at    time.Time
	kind  string
	users []string
}

func dialPresence(ctx context.Context, addr, user string) (*presenceSocket, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.DialContext(ctx, "ws://"+addr+"/graphql", nil)
	if err != nil {
		return nil, fmt.Errorf("dial as %s: %w", user, err)
	}
	s := &presenceSocket{ws: ws, events: make(chan presenceResult, 64)}
	if err := s.write(map[string]any{"type": "connection_init", "payload": map[string]any{"user": user}}); err != nil {
		ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		var m struct{ Type string }
		if err := ws.ReadJSON(&m); err != nil {
			ws.Close()
			return nil, fmt.Errorf("%s: no connection_ack: %w", user, err)
		}
		if m.Type == "connection_ack" {
			break
		}
		if m.Type != "ping" {
			ws.Close()
			return nil, fmt.Errorf("%s: got %q before connection_ack", user, m.Type)
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	go s.read(user)
	return s, nil
}

func (s *presenceSocket) write(v any) error {
	_ = s.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return s.ws.WriteJSON(v)
}

func (s *presenceSocket) close() { _ = s.ws.Close() }

func (s *presenceSocket) subscribe(id, query, room string) error {
	return s.write(map[string]any{"id": id, "type": "subscribe",
		"payload": map[string]any{"query": query, "variables": map[string]any{"r": room}}})
}

// read answers pings and passes roomPresence results on; anything else
// for an operation (an error, a complete) ends the socket's events. The
// messagePosted subscriptions' results are dropped.
func (s *presenceSocket) read(user string) {
	defer close(s.events)
	for {
		var m struct {
			ID      string          `json:"id"`
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := s.ws.ReadJSON(&m); err != nil {
			s.err = fmt.Errorf("%s's socket ended: %w", user, err)
			return
		}
		switch {
		case m.Type == "ping":
			if err := s.write(map[string]any{"type": "pong"}); err != nil {
				s.err = fmt.Errorf("%s: pong: %w", user, err)
				return
			}
		case m.Type == "pong":
		case m.Type == "next" && m.ID == "m":
		case m.Type == "next" && m.ID == "p":
			var r struct {
				Data struct {
					RoomPresence struct {
						Kind  string
						Count int
						Users []struct{ ID string }
					}
				}
				Errors json.RawMessage
			}
			if err := json.Unmarshal(m.Payload, &r); err != nil || len(r.Errors) > 0 {
				s.err = fmt.Errorf("%s: roomPresence result %s", user, m.Payload)
				return
			}
			ev := presenceResult{at: time.Now(), kind: r.Data.RoomPresence.Kind, users: []string{}}
			for _, u := range r.Data.RoomPresence.Users {
				ev.users = append(ev.users, u.ID)
			}
			if r.Data.RoomPresence.Count != len(ev.users) {
				s.err = fmt.Errorf("%s: roomPresence counts %d for users %q", user, r.Data.RoomPresence.Count, ev.users)
				return
			}
			s.events <- ev
		default:
			s.err = fmt.Errorf("%s: unexpected %s for %q: %s", user, m.Type, m.ID, m.Payload)
			return
		}
	}
}

// until reads roomPresence events until one lists exactly users, and
// returns when it arrived; each event before must pass check (if any).
func (s *presenceSocket) until(ctx context.Context, within time.Duration, users []string, check func([]string) error) (time.Time, error) {
	timer := time.NewTimer(within)
	defer timer.Stop()
	var seen []string
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				return time.Time{}, s.err
			}
			seen = append(seen, fmt.Sprintf("%s %q", ev.kind, ev.users))
			if slices.Equal(ev.users, users) {
				return ev.at, nil
			}
			if check != nil {
				if err := check(ev.users); err != nil {
					return time.Time{}, err
				}
			}
		case <-timer.C:
			return time.Time{}, fmt.Errorf("presence never became %q within %s; events: %s", users, within, strings.Join(seen, "; "))
		case <-ctx.Done():
			return time.Time{}, context.Cause(ctx)
		}
	}
}

// gqlPost runs a GraphQL request on a replica as user and decodes its data
// into out.
func gqlPost(ctx context.Context, addr, user, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/graphql", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("X-Herald-User", user)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Data   json.RawMessage
		Errors json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	if len(r.Errors) > 0 {
		return fmt.Errorf("HTTP %d: errors %s", resp.StatusCode, r.Errors)
	}
	return json.Unmarshal(r.Data, out)
}

func createPresenceRoom(ctx context.Context, addr string) (string, error) {
	var out struct{ CreateRoom struct{ ID string } }
	name := fmt.Sprintf("presence-%d", time.Now().UnixNano())
	if err := gqlPost(ctx, addr, "presence-check", `mutation($n: String!) { createRoom(name: $n) { id } }`, map[string]any{"n": name}, &out); err != nil {
		return "", fmt.Errorf("presence: create a room: %w", err)
	}
	if out.CreateRoom.ID == "" {
		return "", errors.New("presence: createRoom returned no ID")
	}
	return out.CreateRoom.ID, nil
}

// waitRoom waits until the replica knows the room.
func waitRoom(ctx context.Context, addr, room string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out struct{ Room *struct{ ID string } }
		err := gqlPost(ctx, addr, "", `query($r: ID!) { room(id: $r) { id } }`, map[string]any{"r": room}, &out)
		if err == nil && out.Room != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("room %s unknown after 10s (last: %v)", room, err)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
