package graph

import (
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/graph/model"
)

// TestPresenceFeedRemovedMemberStopsTyping: a member removed from a
// private room stops typing in the batch that takes the removal in,
// before their LEFT (in that batch or a later one), and does not come
// back typing when the indicator would have run out; signals and
// removals count in the order they came within a window. A user merely
// leaving presence (a public room) still leaves typing, as before.
//
// Each case starts from a SNAPSHOT of users a and b, typing as start
// says; ops then all happen within one window, each "signal u",
// "remove u" or "users u …" (a presence report).
func TestPresenceFeedRemovedMemberStopsTyping(t *testing.T) {
	type want = feedWant
	ab := []string{"a", "b"}
	tests := []struct {
		name       string
		start      []string // typing in the first SNAPSHOT
		ops        []string
		want       []want   // the batch's events
		wantTyping []string // the state after it
	}{
		{"removal ends typing", []string{"b"}, []string{"remove b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{}}}, []string{}},
		{"removal ends only the removed member's typing", []string{"a", "b"}, []string{"remove b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{"a"}}}, []string{"a"}},
		{"removal and LEFT in one batch: TYPING first", []string{"b"}, []string{"remove b", "users a"},
			[]want{
				{model.PresenceKindTyping, "b", ab, []string{}},
				{model.PresenceKindLeft, "b", []string{"a"}, []string{}},
			}, []string{}},
		{"LEFT after a removal: not typing", []string{"b"}, []string{"users a", "remove b"},
			[]want{
				{model.PresenceKindTyping, "b", ab, []string{}},
				{model.PresenceKindLeft, "b", []string{"a"}, []string{}},
			}, []string{}},
		{"signal then removal: not typing", nil, []string{"signal b", "remove b"}, nil, []string{}},
		{"signal, removal, signal of another", nil, []string{"signal b", "remove b", "signal a"},
			[]want{{model.PresenceKindTyping, "a", ab, []string{"a"}}}, []string{"a"}},
		{"removal, re-added, signal: typing again", nil, []string{"remove b", "signal b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{"b"}}}, []string{"b"}},
		{"typing, removal, re-added, signal: still typing", []string{"b"}, []string{"remove b", "signal b"},
			nil, []string{"b"}},
		{"signal, removal, re-added, signal, removal: not typing", []string{"b"},
			[]string{"signal b", "remove b", "signal b", "remove b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{}}}, []string{}},
		{"removal of a member not typing: nothing", []string{"a"}, []string{"remove b"}, nil, []string{"a"}},
		{"leaving presence without a removal keeps typing", []string{"b"}, []string{"users a"},
			[]want{{model.PresenceKindLeft, "b", []string{"a"}, []string{"b"}}}, []string{"b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const (
					window    = 250 * time.Millisecond
					typingFor = 5 * time.Second
				)
				f := newPresenceFeed(window, 20, typingFor)
				events := runFeed(t, f, 64)
				drain := func() []*model.PresenceEvent { return drainFeed(events) }
				startFeed(t, f, drain, tt.start, ab)

				for _, op := range tt.ops {
					verb, arg, _ := strings.Cut(op, " ")
					switch verb {
					case "signal":
						f.signal(arg)
					case "remove":
						f.removed(arg)
					case "users":
						f.setUsers(strings.Fields(arg))
					default:
						t.Fatalf("op %q", op)
					}
				}
				time.Sleep(window)
				checkFeedEvents(t, drain(), tt.want)
				checkJoinerTyping(t, f, drain, window, tt.wantTyping)

				// When the indicators run out, only those still typing stop.
				time.Sleep(typingFor + window)
				stopped := []string{}
				for _, ev := range drain() {
					user, _, _ := ids(ev)
					if ev.Kind != model.PresenceKindTyping || !slices.Contains(tt.wantTyping, user) {
						t.Errorf("at expiry: %s %s; want a TYPING of one of %q", ev.Kind, user, tt.wantTyping)
					}
					stopped = append(stopped, user)
				}
				if !slices.Equal(stopped, tt.wantTyping) {
					t.Errorf("at expiry %q stopped typing, want %q", stopped, tt.wantTyping)
				}
			})
		})
	}
}

// TestAfterRemovals: a batch's signals and member removals, in the order
// they came, become the signals that count and the users whose typing
// ends; without removals the signals are passed on as they are.
func TestAfterRemovals(t *testing.T) {
	tests := []struct {
		name        string
		signals     []string
		removals    []removal
		wantCounted []string
		wantEnded   []string
	}{
		{"no removals", []string{"a", "b", "a"}, nil, []string{"a", "b", "a"}, nil},
		{"removal after signals", []string{"a", "b", "a"}, []removal{{"a", 3}}, []string{"b"}, []string{"a"}},
		{"removal between signals", []string{"a", "b", "a"}, []removal{{"a", 2}}, []string{"b", "a"}, []string{}},
		{"removal first", []string{"a"}, []removal{{"a", 0}}, []string{"a"}, []string{}},
		{"last removal counts", []string{"a", "a"}, []removal{{"a", 0}, {"a", 2}}, []string{}, []string{"a"}},
		{"several removed, sorted", []string{"c"}, []removal{{"c", 1}, {"b", 1}, {"a", 0}}, []string{}, []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counted, ended := afterRemovals(slices.Clone(tt.signals), tt.removals)
			if !slices.Equal(counted, tt.wantCounted) || !slices.Equal(ended, tt.wantEnded) {
				t.Fatalf("counted %q ended %q, want %q and %q", counted, ended, tt.wantCounted, tt.wantEnded)
			}
		})
	}
}

// feedWant is a presence event a feed test expects.
type feedWant struct {
	kind          model.PresenceKind
	user          string
	users, typing []string
}

// drainFeed returns the events a feed under synctest has sent so far.
func drainFeed(events <-chan *model.PresenceEvent) []*model.PresenceEvent {
	synctest.Wait()
	var got []*model.PresenceEvent
	for {
		select {
		case ev := <-events:
			got = append(got, ev)
			continue
		default:
		}
		return got
	}
}

// startFeed has f send its first SNAPSHOT: users present, those of typing
// typing.
func startFeed(t *testing.T, f *presenceFeed, drain func() []*model.PresenceEvent, typing, users []string) {
	t.Helper()
	for _, u := range typing {
		f.signal(u)
	}
	f.setUsers(users)
	if got := drain(); len(got) != 1 || got[0].Kind != model.PresenceKindSnapshot {
		t.Fatalf("start: %d events, want one SNAPSHOT", len(got))
	}
}

// checkFeedEvents compares the events a feed sent with want.
func checkFeedEvents(t *testing.T, got []*model.PresenceEvent, want []feedWant) {
	t.Helper()
	for i, ev := range got {
		user, users, typing := ids(ev)
		if i >= len(want) {
			t.Errorf("event %d = %s %s %q typing %q; want no more", i, ev.Kind, user, users, typing)
			continue
		}
		w := want[i]
		if ev.Kind != w.kind || user != w.user || !slices.Equal(users, w.users) || !slices.Equal(typing, w.typing) {
			t.Errorf("event %d = %s %s %q typing %q; want %s %s %q typing %q",
				i, ev.Kind, user, users, typing, w.kind, w.user, w.users, w.typing)
		}
	}
	if len(got) < len(want) {
		t.Errorf("%d events, want %d", len(got), len(want))
	}
}

// checkJoinerTyping checks who a subscriber joining f's shared execution
// now is shown typing: its SNAPSHOT's (resync).
func checkJoinerTyping(t *testing.T, f *presenceFeed, drain func() []*model.PresenceEvent, window time.Duration, want []string) {
	t.Helper()
	f.resync()
	time.Sleep(window)
	got := drain()
	if len(got) != 1 || got[0].Kind != model.PresenceKindSnapshot {
		t.Fatalf("after a resync: %d events, want one SNAPSHOT", len(got))
	}
	if _, _, typing := ids(got[0]); !slices.Equal(typing, want) {
		t.Errorf("typing %q in a joiner's SNAPSHOT, want %q", typing, want)
	}
}
