package graph

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/graph/model"
)

func ids(ev *model.PresenceEvent) (user string, users, typing []string) {
	if ev.User != nil {
		user = ev.User.ID
	}
	users, typing = []string{}, []string{}
	for _, u := range ev.Users {
		users = append(users, u.ID)
	}
	for _, u := range ev.Typing {
		typing = append(typing, u.ID)
	}
	return user, users, typing
}

// TestPresenceStateEvents: the events one batch of changes becomes, each
// carrying the state right after it.
func TestPresenceStateEvents(t *testing.T) {
	t0 := time.Unix(1000, 0)
	const typingFor = 5 * time.Second
	type step struct {
		users   []string
		signals []string
		at      time.Duration
	}
	type want struct {
		kind         model.PresenceKind
		user         string
		users, typer []string
	}
	tests := []struct {
		name  string
		start step
		then  step
		want  []want
	}{
		{"nothing changed", step{users: []string{"a"}}, step{users: []string{"a"}}, nil},
		{"one joins", step{users: []string{"a"}}, step{users: []string{"a", "b"}},
			[]want{{model.PresenceKindJoined, "b", []string{"a", "b"}, []string{}}}},
		{"one leaves, one joins", step{users: []string{"a", "b"}}, step{users: []string{"b", "c"}},
			[]want{
				{model.PresenceKindLeft, "a", []string{"b"}, []string{}},
				{model.PresenceKindJoined, "c", []string{"b", "c"}, []string{}},
			}},
		{"typing begins", step{users: []string{"a"}}, step{users: []string{"a"}, signals: []string{"a", "a"}},
			[]want{{model.PresenceKindTyping, "a", []string{"a"}, []string{"a"}}}},
		{"typing renewed: nothing", step{users: []string{"a"}, signals: []string{"a"}},
			step{users: []string{"a"}, signals: []string{"a"}, at: typingFor - time.Second}, nil},
		{"typing ends", step{users: []string{"a"}, signals: []string{"a"}},
			step{users: []string{"a"}, at: typingFor},
			[]want{{model.PresenceKindTyping, "a", []string{"a"}, []string{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st presenceState
			st.apply(tt.start.users, tt.start.signals, t0.Add(tt.start.at), typingFor, nil)
			var events []*model.PresenceEvent
			st.apply(tt.then.users, tt.then.signals, t0.Add(tt.then.at), typingFor, &events)
			if len(events) != len(tt.want) {
				t.Fatalf("%d events, want %d", len(events), len(tt.want))
			}
			for i, w := range tt.want {
				ev := events[i]
				user, users, typing := ids(ev)
				if ev.Kind != w.kind || user != w.user || !slices.Equal(users, w.users) || !slices.Equal(typing, w.typer) || ev.Count != len(w.users) {
					t.Errorf("event %d = %s %s %q typing %q count %d; want %s %s %q typing %q",
						i, ev.Kind, user, users, typing, ev.Count, w.kind, w.user, w.users, w.typer)
				}
			}
		})
	}
}

// TestPresenceFeedBoundsEvents: 10,000 users joining and leaving a room as
// fast as they can reach a subscriber as at most PresenceBurst events per
// window, SNAPSHOT first, and the last event is the room as it ended.
func TestPresenceFeedBoundsEvents(t *testing.T) {
	const (
		window = 50 * time.Millisecond
		burst  = 20
		n      = 10000
	)
	f := newPresenceFeed(window, burst, 5*time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan *model.PresenceEvent, 1<<16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx, func(ev *model.PresenceEvent) bool { events <- ev; return true })
	}()
	defer func() { cancel(); <-done }()

	// The simulated cluster: user i joins at step i, and every odd user
	// leaves 100 steps later; every step is one report to the feed.
	start := time.Now()
	present := []string{}
	for i := range n + 100 {
		if i < n {
			u := fmt.Sprintf("u%05d", i)
			j, _ := slices.BinarySearch(present, u)
			present = slices.Insert(present, j, u)
		}
		if k := i - 100; k >= 0 && k%2 == 1 {
			u := fmt.Sprintf("u%05d", k)
			j, _ := slices.BinarySearch(present, u)
			present = slices.Delete(present, j, j+1)
		}
		f.setUsers(slices.Clone(present))
		if i%100 == 0 {
			f.signal(fmt.Sprintf("u%05d", i)) // some typing too
		}
	}
	elapsed := time.Since(start)

	var got []*model.PresenceEvent
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			got = append(got, ev)
			if _, users, _ := ids(ev); !slices.Equal(users, present) {
				continue
			}
		case <-deadline:
			t.Fatalf("the room as it ended never arrived (%d events)", len(got))
		}
		break
	}
	if got[0].Kind != model.PresenceKindSnapshot {
		t.Fatalf("first event %s, want SNAPSHOT", got[0].Kind)
	}
	// One batch per window from the first on, plus the first and the last.
	windows := int((elapsed+time.Since(start))/window) + 2
	if bound := windows * burst; len(got) > bound {
		t.Fatalf("%d events for %d joins and %d leaves over %s; want at most %d", len(got), n, n/2, elapsed, bound)
	}
	t.Logf("%d joins, %d leaves and %d typing signals in %s reached a subscriber as %d events", n, n/2, n/100, elapsed, len(got))
}

// TestTypingThrottle: at most one setTyping per user and room per
// interval is passed on.
func TestTypingThrottle(t *testing.T) {
	th := typingThrottle{every: time.Second, last: map[typingKey]time.Time{}}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		room, user string
		at         time.Duration
		want       bool
	}{
		{"r", "alice", 0, true},
		{"r", "alice", 500 * time.Millisecond, false},
		{"r", "bob", 500 * time.Millisecond, true},
		{"s", "alice", 500 * time.Millisecond, true},
		{"r", "alice", time.Second, true},
	}
	for i, s := range steps {
		if got := th.allow(s.room, s.user, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d (%s in %s at %s) = %v, want %v", i, s.user, s.room, s.at, got, s.want)
		}
	}
}

// TestPresenceFeedResync: after a subscriber joined the shared execution,
// the next batch is a SNAPSHOT even when nothing changed.
func TestPresenceFeedResync(t *testing.T) {
	f := newPresenceFeed(10*time.Millisecond, 20, time.Second)
	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan *model.PresenceEvent, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx, func(ev *model.PresenceEvent) bool { events <- ev; return true })
	}()
	defer func() { cancel(); <-done }()
	next := func() *model.PresenceEvent {
		select {
		case ev := <-events:
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
			return nil
		}
	}
	f.setUsers([]string{"a"})
	if ev := next(); ev.Kind != model.PresenceKindSnapshot {
		t.Fatalf("first event %s", ev.Kind)
	}
	f.setUsers([]string{"a", "b"})
	if ev := next(); ev.Kind != model.PresenceKindJoined {
		t.Fatalf("b came in as %s", ev.Kind)
	}
	f.resync()
	ev := next()
	if _, users, _ := ids(ev); ev.Kind != model.PresenceKindSnapshot || !slices.Equal(users, []string{"a", "b"}) {
		t.Fatalf("after a join: %s %q, want a SNAPSHOT of a and b", ev.Kind, users)
	}
}
