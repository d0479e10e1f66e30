package graph

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph/model"
)

// memberSet is a private room's gate as a feed sees it: who is a member
// as the replica has applied the room.
type memberSet struct {
	mu sync.Mutex
	in map[string]bool
}

func (g *memberSet) Access(user string) (since uint64, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return 0, g.in[user]
}

func (g *memberSet) set(user string, member bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.in[user] = member
}

// TestPresenceFeedTypingNeedsMembership: in a private room, a user who is
// not a member when the feed builds its batch is never shown typing, in
// the batch's events or in the SNAPSHOT a joiner gets: a typing signal
// that reaches the feed after the user's removal (sent before it, or
// after setTyping's membership check) is not taken for one after a
// re-addition, and a removal this replica has applied ends the user's
// typing even before the change announcing it reaches the feed. A user
// removed and added again who signals types again.
//
// Each case starts from a SNAPSHOT of members a and b (a private room),
// typing as start says; then ops: "signal u"; "remove u" (the replica
// applies the removal and the feed is told); "applied u" (the replica has
// applied it, the feed is not told yet); "told u" (the feed is told);
// "add u" (added again); "users u …" (a presence report); "batch" (a
// window passes, the batch goes out).
func TestPresenceFeedTypingNeedsMembership(t *testing.T) {
	type want = feedWant
	ab := []string{"a", "b"}
	tests := []struct {
		name       string
		start      []string // typing in the first SNAPSHOT
		ops        []string
		want       []want   // the events after the SNAPSHOT
		wantTyping []string // the state after them
	}{
		{"removal, then the signal sent before it, in one batch", nil,
			[]string{"remove b", "signal b"}, nil, []string{}},
		{"typing, removal, then the signal sent before it, in one batch", []string{"b"},
			[]string{"remove b", "signal b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{}}}, []string{}},
		{"typing, removal, then the signal sent before it, in the next batch", []string{"b"},
			[]string{"remove b", "batch", "signal b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{}}}, []string{}},
		{"removal applied, the signal, then the feed told", nil,
			[]string{"applied b", "signal b", "batch", "told b"}, nil, []string{}},
		{"typing, removal applied, the feed not told (yet): typing ends", []string{"b"},
			[]string{"applied b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{}}}, []string{}},
		{"a signal of someone never a member", []string{"a"}, []string{"signal eve"}, nil, []string{"a"}},
		{"a member's signal", nil, []string{"signal a"},
			[]want{{model.PresenceKindTyping, "a", ab, []string{"a"}}}, []string{"a"}},
		{"removal, re-added, signal: typing again", nil, []string{"remove b", "add b", "signal b"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{"b"}}}, []string{"b"}},
		{"removal, re-added in a later batch, signal: typing again", []string{"b"},
			[]string{"remove b", "batch", "add b", "signal b"},
			[]want{
				{model.PresenceKindTyping, "b", ab, []string{}},
				{model.PresenceKindTyping, "b", ab, []string{"b"}},
			}, []string{"b"}},
		{"removal of one, the other goes on typing", []string{"a", "b"},
			[]string{"remove b", "signal b", "signal a"},
			[]want{{model.PresenceKindTyping, "b", ab, []string{"a"}}}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const (
					window    = 250 * time.Millisecond
					typingFor = 5 * time.Second
				)
				gate := &memberSet{in: map[string]bool{"a": true, "b": true}}
				f := newPresenceFeed(window, 20, typingFor)
				f.members = gate
				events := runFeed(t, f, 64)
				drain := func() []*model.PresenceEvent { return drainFeed(events) }
				startFeed(t, f, drain, tt.start, ab)

				var got []*model.PresenceEvent
				for _, op := range tt.ops {
					verb, arg, _ := strings.Cut(op, " ")
					switch verb {
					case "signal":
						f.signal(arg)
					case "remove":
						gate.set(arg, false)
						f.removed(arg)
					case "applied":
						gate.set(arg, false)
						f.poke() // as the next signal or report would
					case "told":
						f.removed(arg)
					case "add":
						gate.set(arg, true)
					case "users":
						f.setUsers(strings.Fields(arg))
					case "batch":
						time.Sleep(window)
						got = append(got, drain()...)
					default:
						t.Fatalf("op %q", op)
					}
				}
				time.Sleep(window)
				got = append(got, drain()...)
				checkFeedEvents(t, got, tt.want)
				checkJoinerTyping(t, f, drain, window, tt.wantTyping)
			})
		})
	}
}

// racePresence is a Presence whose signals go to the roomPresence feeds
// watching them, as NATS takes them there; before, if set, runs first:
// what happens while a signal is on its way.
type racePresence struct {
	mu      sync.Mutex
	fns     []func(string)
	before  func()
	present []string
}

func (p *racePresence) Watch(_ context.Context, _ string, fn func([]string)) (func(), error) {
	fn(slices.Clone(p.present))
	return func() {}, nil
}

func (p *racePresence) WatchSignals(_ string, fn func(string)) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fns = append(p.fns, fn)
	return func() {}, nil
}

func (p *racePresence) Signal(_ context.Context, _, user string) error {
	p.mu.Lock()
	before, fns := p.before, slices.Clone(p.fns)
	p.before = nil
	p.mu.Unlock()
	if before != nil {
		before()
	}
	for _, fn := range fns {
		fn(user)
	}
	return nil
}

// TestPrivateTypingSignalRacingRemoval: bob, typing in a private room,
// calls setTyping again, and is removed while his signal is on its way
// (after setTyping's membership check): the removal reaches alice's
// roomPresence first and ends his typing, then the signal does. It must
// not show him typing again, as if he had been added back. Added back and
// typing, he is shown typing. TypingFor is long, so that no change in the
// test is the indicator running out.
func TestPrivateTypingSignalRacingRemoval(t *testing.T) {
	svc := startChat(t)
	room := aliceAndBobsRoom(t, svc, "race")
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	const window = 20 * time.Millisecond
	p := &racePresence{present: []string{"alice", "bob"}}
	opts := Options{PresenceWindow: window, PresenceBurst: 20, TypingFor: 20 * time.Second, TypingEvery: time.Millisecond}
	r := &Resolver{chat: svc, epoch: 1, presence: p, opts: opts, typing: newTypingThrottle(opts.TypingEvery, typingKeep)}

	subCtx, cancel := context.WithTimeout(auth.NewContext(ctx, auth.Identity{UserID: "alice"}), 20*time.Second)
	defer cancel()
	ch, err := r.Subscription().RoomPresence(subCtx, room.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		for range ch {
		}
	}()
	// next returns alice's next event, or nil after quiet without one.
	next := func(quiet time.Duration) *model.PresenceEvent {
		t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("alice's roomPresence ended")
			}
			return ev.Value
		case <-time.After(quiet):
			return nil
		}
	}
	// typingUntil waits for an event whose typing list holds bob or not.
	typingUntil := func(want bool) {
		t.Helper()
		for {
			ev := next(5 * time.Second)
			if ev == nil {
				t.Fatalf("no event with bob typing %v", want)
			}
			if _, _, typing := ids(ev); slices.Contains(typing, "bob") == want {
				return
			}
		}
	}
	bob := auth.NewContext(ctx, auth.Identity{UserID: "bob"})
	setTyping := func() {
		t.Helper()
		time.Sleep(5 * opts.TypingEvery) // past the throttle
		if ok, err := r.Mutation().SetTyping(bob, room.ID); !ok || err != nil {
			t.Fatalf("bob's setTyping: %v, %v", ok, err)
		}
	}

	if ev := next(5 * time.Second); ev == nil || ev.Kind != model.PresenceKindSnapshot {
		t.Fatalf("alice's first event %+v, want a SNAPSHOT", ev)
	}
	setTyping()
	typingUntil(true)

	p.mu.Lock()
	p.before = func() {
		if _, err := svc.RemoveMember(ctx, alice, room.ID, "bob"); err != nil {
			t.Error(err)
		}
		typingUntil(false) // the removal has reached the feed
	}
	p.mu.Unlock()
	setTyping()
	for deadline := time.Now().Add(10 * window); time.Now().Before(deadline); {
		if ev := next(time.Until(deadline)); ev != nil {
			if user, users, typing := ids(ev); slices.Contains(typing, "bob") {
				t.Fatalf("bob, removed, shown typing again by the signal sent before: %s %s %q typing %q", ev.Kind, user, users, typing)
			}
		}
	}

	if _, err := svc.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	setTyping()
	typingUntil(true)
}
