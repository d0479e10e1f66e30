package graph

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
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
			st.apply(tt.start.users, tt.start.signals, t0.Add(tt.start.at), typingFor, nil, 0)
			var events []*model.PresenceEvent
			st.apply(tt.then.users, tt.then.signals, t0.Add(tt.then.at), typingFor, &events, 1<<20)
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
	events := runFeed(t, f, 1<<16)

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
// interval is passed on, also across the throttle's generations.
func TestTypingThrottle(t *testing.T) {
	th := newTypingThrottle(time.Second, 4)
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
		{"r", "bob", 1400 * time.Millisecond, false}, // passed 900ms ago
		{"r", "bob", 1500 * time.Millisecond, true},
		{"r", "alice", 1999 * time.Millisecond, false},
		{"r", "alice", 2 * time.Second, true},
		{"s", "alice", 10 * time.Second, true},
		{"s", "alice", 10*time.Second + 999*time.Millisecond, false},
	}
	for i, s := range steps {
		if got := th.allow(s.room, s.user, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d (%s in %s at %s) = %v, want %v", i, s.user, s.room, s.at, got, s.want)
		}
	}
}

// TestTypingThrottleBounded: the throttle keeps at most twice its keep
// of keys, however many distinct users and rooms type within one interval,
// and forgets keys two intervals after they were last passed. A first call
// of a key is always passed on.
func TestTypingThrottleBounded(t *testing.T) {
	const (
		every = time.Second
		keep  = 64
	)
	type calls struct {
		keys int           // distinct, new keys
		at   time.Duration // all at once
	}
	tests := []struct {
		name    string
		calls   []calls
		wantMax int // keys kept after the last call
	}{
		{"flood of distinct keys at one instant", []calls{{50 * keep, 0}}, 2 * keep},
		{"flood of distinct keys within an interval", []calls{{10 * keep, 0}, {10 * keep, every / 2}, {10 * keep, every - 1}}, 2 * keep},
		{"a few keys stay", []calls{{keep / 2, 0}}, keep / 2},
		{"keys expire", []calls{{keep / 2, 0}, {1, every}, {1, 2 * every}}, 2},
		{"keys expire after a pause", []calls{{keep / 2, 0}, {1, 10 * every}, {1, 20 * every}}, 2},
	}
	t0 := time.Unix(1000, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			th := newTypingThrottle(every, keep)
			n := 0
			for _, c := range tt.calls {
				for range c.keys {
					n++
					if !th.allow("r", fmt.Sprintf("u%d", n), t0.Add(c.at)) {
						t.Fatalf("first call of key %d refused", n)
					}
				}
				if got := th.len(); got > 2*keep {
					t.Fatalf("after %d keys: %d kept, want at most %d", n, got, 2*keep)
				}
			}
			if got := th.len(); got > tt.wantMax {
				t.Fatalf("%d keys kept, want at most %d", got, tt.wantMax)
			}
		})
	}
}

// TestPresenceFeedEarlySignal: typing signals that arrive before the first
// presence report are not lost: the first SNAPSHOT shows them typing.
func TestPresenceFeedEarlySignal(t *testing.T) {
	tests := []struct {
		name       string
		signals    []string
		users      []string
		wantTyping []string
	}{
		{"none", nil, []string{"a"}, []string{}},
		{"one", []string{"a"}, []string{"a"}, []string{"a"}},
		{"several", []string{"b", "a", "b"}, []string{"a", "b"}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const typingFor = 5 * time.Second
				f := newPresenceFeed(250*time.Millisecond, 20, typingFor)
				events := runFeed(t, f, 16)
				for _, u := range tt.signals {
					f.signal(u)
					synctest.Wait() // the feed has taken the signal in
				}
				f.setUsers(tt.users)
				synctest.Wait()
				var ev *model.PresenceEvent
				select {
				case ev = <-events:
				default:
					t.Fatal("no event after the first report")
				}
				if _, users, typing := ids(ev); ev.Kind != model.PresenceKindSnapshot || !slices.Equal(users, tt.users) || !slices.Equal(typing, tt.wantTyping) {
					t.Fatalf("first event %s %q typing %q, want SNAPSHOT %q typing %q", ev.Kind, users, typing, tt.users, tt.wantTyping)
				}
				if len(tt.wantTyping) == 0 {
					return
				}
				// The typing ends typingFor later, as for any signal.
				time.Sleep(typingFor)
				synctest.Wait()
				for range tt.wantTyping {
					select {
					case ev = <-events:
					default:
						t.Fatal("typing never ended")
					}
					if ev.Kind != model.PresenceKindTyping {
						t.Fatalf("event %s, want TYPING", ev.Kind)
					}
				}
				if _, _, typing := ids(ev); len(typing) != 0 {
					t.Fatalf("still typing: %q", typing)
				}
			})
		})
	}
}

// TestPresenceFeedResync: after a subscriber joined the shared execution,
// the next batch is a SNAPSHOT even when nothing changed.
func TestPresenceFeedResync(t *testing.T) {
	f := newPresenceFeed(10*time.Millisecond, 20, time.Second)
	events := runFeed(t, f, 16)
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

// runFeed runs f until the test ends, and returns the channel its batches
// go to, which holds buffer of them.
func runFeed(t *testing.T, f *presenceFeed, buffer int) <-chan *model.PresenceEvent {
	ctx, cancel := context.WithCancel(t.Context())
	events := make(chan *model.PresenceEvent, buffer)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.run(ctx, func(ev *model.PresenceEvent) bool { events <- ev; return true })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return events
}
