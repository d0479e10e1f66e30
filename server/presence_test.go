package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph"
	"github.com/heraldhq/herald/pubsub"
)

// Presence through the whole stack: the engine counting subscribers of
// announced subscriptions (auth.Announce), pubsub's presence bucket on
// the replicas' NATS, and roomPresence and setTyping in the real schema.

// replicaPresence is how startReplica sets presence up.
type replicaPresence struct {
	tracker pubsub.PresenceOptions
	graph   graph.Options
}

// testPresence is graph's Presence over pubsub's, as cmd/herald wires it.
type testPresence struct{ p *pubsub.Presence }

func (c testPresence) Watch(ctx context.Context, topic string, fn func([]string)) (func(), error) {
	w, err := c.p.Watch(ctx, topic, fn)
	if err != nil {
		return nil, err
	}
	return w.Close, nil
}

func (c testPresence) Signal(ctx context.Context, topic, user string) error {
	return c.p.Signal(ctx, topic, user)
}

func (c testPresence) WatchSignals(topic string, fn func(string)) (func(), error) {
	w, err := c.p.WatchSignals(topic, fn)
	if err != nil {
		return nil, err
	}
	return w.Close, nil
}

// presenceReplica starts a replica with presence, named replica in the
// bucket, on NATS at url (embedded, listening, when url is "").
func presenceReplica(t *testing.T, name, url string, g graph.Options) *replica {
	t.Helper()
	logOpts := pubsub.Options{ListenAddr: "127.0.0.1:0"}
	if url != "" {
		logOpts = pubsub.Options{URLs: []string{url}}
	}
	if g.PresenceWindow == 0 {
		g.PresenceWindow = 50 * time.Millisecond
	}
	quiet := chat.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))} // a killed replica's retries
	return startReplica(t, logOpts, quiet, nil, nil, &replicaPresence{
		tracker: pubsub.PresenceOptions{Replica: name, Coalesce: 50 * time.Millisecond},
		graph:   g,
	})
}

const (
	presenceQuery = `subscription($r: ID!) { roomPresence(roomId: $r) { kind user { id } count users { id } typing { id } } }`
	postedQuery   = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	eventsQuery   = `subscription($r: ID!) { roomEvents(roomId: $r) { kind } }`
)

// presenceEvent is one roomPresence result, users and typing as IDs.
type presenceEvent struct {
	Kind   string
	User   string
	Count  int
	Users  []string
	Typing []string
}

// presenceWatcher reads roomPresence events from a socket.
type presenceWatcher struct {
	t *testing.T
	c *wsClient
}

func watchRoomPresence(r *replica, user, roomID string) *presenceWatcher {
	c := r.dialTransport(user)
	c.subscribe("subscribe", "p", presenceQuery, map[string]any{"r": roomID})
	return &presenceWatcher{t: r.t, c: c}
}

// next returns the next event, or fails the test.
func (w *presenceWatcher) next(within time.Duration) presenceEvent {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		f, err := w.c.read(time.Until(deadline))
		if err != nil {
			w.t.Fatalf("no presence event: %v", err)
		}
		if f.keepalive() {
			continue
		}
		if f.Type != "next" {
			w.t.Fatalf("presence: %s", f.raw)
		}
		var data struct {
			RoomPresence struct {
				Kind   string
				User   *struct{ ID string }
				Count  int
				Users  []struct{ ID string }
				Typing []struct{ ID string }
			}
		}
		f.data(w.t, &data)
		p := data.RoomPresence
		ev := presenceEvent{Kind: p.Kind, Count: p.Count, Users: []string{}, Typing: []string{}}
		if p.User != nil {
			ev.User = p.User.ID
		}
		for _, u := range p.Users {
			ev.Users = append(ev.Users, u.ID)
		}
		for _, u := range p.Typing {
			ev.Typing = append(ev.Typing, u.ID)
		}
		if ev.Count != len(ev.Users) {
			w.t.Fatalf("count %d for %d users %q", ev.Count, len(ev.Users), ev.Users)
		}
		if !slices.IsSorted(ev.Users) || len(slices.Compact(slices.Clone(ev.Users))) != len(ev.Users) {
			w.t.Fatalf("users %q are not each once, in order", ev.Users)
		}
		return ev
	}
}

// until reads events until one leaves exactly users present, and returns
// it and every event read; it fails the test after within.
func (w *presenceWatcher) until(within time.Duration, users ...string) (presenceEvent, []presenceEvent) {
	w.t.Helper()
	if users == nil {
		users = []string{}
	}
	deadline := time.Now().Add(within)
	var seen []presenceEvent
	for {
		if time.Now().After(deadline) {
			w.t.Fatalf("presence never became %q within %s; saw %+v", users, within, seen)
		}
		ev := w.next(time.Until(deadline))
		seen = append(seen, ev)
		if slices.Equal(ev.Users, users) {
			return ev, seen
		}
	}
}

// first reads the first event, which must be a SNAPSHOT, then events
// until users are present.
func (w *presenceWatcher) first(users ...string) {
	w.t.Helper()
	ev := w.next(5 * time.Second)
	if ev.Kind != "SNAPSHOT" {
		w.t.Fatalf("first event %+v, want a SNAPSHOT", ev)
	}
	if !slices.Equal(ev.Users, append([]string{}, users...)) {
		w.until(5*time.Second, users...)
	}
}

// subscribed opens sub on c as id and waits until it is running: a
// message posted afterwards reaches it.
func subscribed(t *testing.T, r *replica, c *wsClient, id, query, roomID string) {
	t.Helper()
	c.subscribe("subscribe", id, query, map[string]any{"r": roomID})
	// The subscription may start after a post: post until one reaches it.
	stop, posted := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(posted)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			_, _ = r.chat.PostMessage(context.Background(), chat.Actor{ID: "fencer"}, roomID, "fence "+id, "")
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-posted }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("subscription %s never started: %v", id, err)
		}
		if f.ID == id && f.Type == "next" {
			return
		}
		if f.ID == id {
			t.Fatalf("subscription %s: %s", id, f.raw)
		}
	}
}

// TestPresenceJoinAndLeaveOnOneReplica: a roomPresence subscriber first
// gets a SNAPSHOT; a user is present while any of their subscriptions of
// the room is open (messagePosted, roomEvents, roomPresence), counted once
// for two sockets, and leaves when the last one goes; anonymous
// subscribers are not counted.
func TestPresenceJoinAndLeaveOnOneReplica(t *testing.T) {
	r := presenceReplica(t, "one", "", graph.Options{})
	room := r.room("lobby")
	other := r.room("elsewhere")

	w := watchRoomPresence(r, "watcher", room)
	w.first("watcher") // the watcher is present itself

	anon := r.dialTransport("")
	subscribed(t, r, anon, "a", postedQuery, room)
	tab1 := r.dialTransport("alice")
	subscribed(t, r, tab1, "1", postedQuery, room)
	tab2 := r.dialTransport("alice")
	subscribed(t, r, tab2, "2", eventsQuery, room)
	ev, seen := w.until(5*time.Second, "alice", "watcher")
	if ev.Kind != "JOINED" || ev.User != "alice" {
		t.Fatalf("alice came in as %+v", ev)
	}
	for _, e := range seen {
		if slices.Contains(e.Users, "") {
			t.Fatalf("an anonymous subscriber was counted: %+v", e)
		}
	}

	// alice's first tab ends its subscription and follows another room:
	// she is still in the room through her second tab.
	tab1.send(map[string]any{"id": "1", "type": "complete"})
	subscribed(t, r, tab1, "3", postedQuery, other)
	bob := r.dialTransport("bob")
	subscribed(t, r, bob, "b", postedQuery, room)
	_, seen = w.until(5*time.Second, "alice", "bob", "watcher")
	for _, e := range seen {
		if e.Kind == "LEFT" {
			t.Fatalf("%s left though alice has a tab in the room: %+v", e.User, seen)
		}
	}

	// Her last tab closes: she leaves.
	_ = tab2.conn.Close()
	ev, _ = w.until(5*time.Second, "bob", "watcher")
	if ev.Kind != "LEFT" || ev.User != "alice" {
		t.Fatalf("alice went as %+v", ev)
	}

	// A subscriber joining the running, shared execution starts with a
	// SNAPSHOT too, although nothing else changed; bob, already present,
	// is not counted twice.
	late := watchRoomPresence(r, "bob", room)
	late.first("bob", "watcher")
}

// TestPresenceAcrossReplicas: a user with subscriptions on two replicas is
// counted once, and stays while either holds one; a replica killed
// without any clean-up (its NATS connection cut, so no key is deleted and
// no heartbeat follows) takes its users out of the other's presence
// within 10 s.
func TestPresenceAcrossReplicas(t *testing.T) {
	a := presenceReplica(t, "a", "", graph.Options{})
	proxy := newNATSProxy(t, a.log.ClientURL())
	b := presenceReplica(t, "b", proxy.url(), graph.Options{})
	room := a.room("lobby")
	waitFor(t, "b to know the room", func() bool { _, ok := b.chat.RoomInfo(room); return ok })

	w := watchRoomPresence(a, "watcher", room)
	w.first("watcher")

	onA := a.dialTransport("alice")
	subscribed(t, a, onA, "1", postedQuery, room)
	onB := b.dialTransport("alice")
	subscribed(t, b, onB, "1", postedQuery, room)
	carol := b.dialTransport("carol")
	subscribed(t, b, carol, "1", eventsQuery, room)
	w.until(5*time.Second, "alice", "carol", "watcher")

	// alice leaves b; she is still present through a.
	_ = onB.conn.Close()
	dave := a.dialTransport("dave")
	subscribed(t, a, dave, "1", postedQuery, room)
	_, seen := w.until(5*time.Second, "alice", "carol", "dave", "watcher")
	for _, e := range seen {
		if e.Kind == "LEFT" {
			t.Fatalf("%s left: %+v", e.User, seen)
		}
	}

	// b dies: carol, present only through b, is gone within 10 s.
	proxy.close()
	start := time.Now()
	ev, _ := w.until(10*time.Second, "alice", "dave", "watcher")
	t.Logf("a killed replica's user left after %s", time.Since(start))
	if ev.Kind != "LEFT" || ev.User != "carol" {
		t.Fatalf("carol went as %+v", ev)
	}
}

// setTyping posts the mutation as user and returns the response body.
func setTyping(t *testing.T, r *replica, user, roomID string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": `mutation($r: ID!) { setTyping(roomId: $r) }`, "variables": map[string]any{"r": roomID}})
	w := send(t, r.server, post(string(body)).with(auth.DevHeader, user))
	return w.Body.String()
}

// TestPresenceTyping: setTyping shows the user typing to the room's
// roomPresence subscribers on every replica, and the typing ends by
// itself TypingFor later.
func TestPresenceTyping(t *testing.T) {
	g := graph.Options{TypingFor: 500 * time.Millisecond, TypingEvery: 50 * time.Millisecond}
	a := presenceReplica(t, "a", "", g)
	b := presenceReplica(t, "b", a.log.ClientURL(), g)
	room := a.room("lobby")
	waitFor(t, "b to know the room", func() bool { _, ok := b.chat.RoomInfo(room); return ok })
	w := watchRoomPresence(b, "watcher", room)
	w.first("watcher")

	if got := setTyping(t, a, "alice", room); !strings.Contains(got, `"setTyping":true`) {
		t.Fatalf("setTyping: %s", got)
	}
	ev := w.next(5 * time.Second)
	if ev.Kind != "TYPING" || ev.User != "alice" || !slices.Equal(ev.Typing, []string{"alice"}) {
		t.Fatalf("typing began as %+v", ev)
	}
	began := time.Now()
	ev = w.next(5 * time.Second)
	if ev.Kind != "TYPING" || ev.User != "alice" || len(ev.Typing) != 0 {
		t.Fatalf("typing ended as %+v", ev)
	}
	if d := time.Since(began); d < 300*time.Millisecond {
		t.Fatalf("typing ended after %s, TypingFor is 500ms", d)
	}
	if got := setTyping(t, a, "", room); !strings.Contains(got, "UNAUTHENTICATED") {
		t.Fatalf("anonymous setTyping: %s", got)
	}
}

// TestPresencePrivateRoom: a private room's roomPresence and setTyping
// need membership, as its messagePosted does.
func TestPresencePrivateRoom(t *testing.T) {
	r := presenceReplica(t, "one", "", graph.Options{})
	room := r.privateRoom("secret", "bob")

	eve := r.dialTransport("eve")
	eve.subscribe("subscribe", "p", presenceQuery, map[string]any{"r": room})
	f := eve.next()
	if f.Type != "error" || !strings.Contains(string(f.Payload), "FORBIDDEN") {
		t.Fatalf("eve's roomPresence: %s", f.raw)
	}
	if got := setTyping(t, r, "eve", room); !strings.Contains(got, "FORBIDDEN") {
		t.Fatalf("eve's setTyping: %s", got)
	}

	w := watchRoomPresence(r, "bob", room)
	w.first("bob")
	if got := setTyping(t, r, "ann", room); !strings.Contains(got, `"setTyping":true`) {
		t.Fatalf("ann's setTyping: %s", got)
	}
	ev := w.next(5 * time.Second)
	if ev.Kind != "TYPING" || ev.User != "ann" {
		t.Fatalf("ann typing: %+v", ev)
	}
}
