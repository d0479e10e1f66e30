package graph

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph/model"
)

// recordingPresence is a Presence that records the signals sent through
// it, reports users to its watchers, and can refuse either watch.
type recordingPresence struct {
	mu                sync.Mutex
	sent              []string // "room user"
	users             []string
	watchErr, sigErr  error
	watches, sigs     int // started
	stopped, sigsDone int // stopped
}

func (p *recordingPresence) Watch(_ context.Context, _ string, fn func([]string)) (func(), error) {
	p.mu.Lock()
	if p.watchErr != nil {
		p.mu.Unlock()
		return nil, p.watchErr
	}
	p.watches++
	users := slices.Clone(p.users)
	p.mu.Unlock()
	fn(users)
	return func() { p.mu.Lock(); p.stopped++; p.mu.Unlock() }, nil
}

func (p *recordingPresence) WatchSignals(string, func(string)) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sigErr != nil {
		return nil, p.sigErr
	}
	p.sigs++
	return func() { p.mu.Lock(); p.sigsDone++; p.mu.Unlock() }, nil
}

func (p *recordingPresence) Signal(_ context.Context, topic, user string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, topic+" "+user)
	return nil
}

func (p *recordingPresence) sentSignals() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

// checkWatchesStopped fails t if a watch p started is still running.
func (p *recordingPresence) checkWatchesStopped(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sigs != p.sigsDone || p.watches != p.stopped {
		t.Errorf("watches left running: signals %d started %d stopped, presence %d started %d stopped",
			p.sigs, p.sigsDone, p.watches, p.stopped)
	}
}

// TestSetTypingRules: setTyping needs presence on the server
// (UNAVAILABLE), an identity (UNAUTHENTICATED), a room that exists
// (NOT_FOUND) and membership of a private room (FORBIDDEN); a refused call
// sends no signal. An accepted one sends one signal for the room and the
// caller, and a second call within TypingEvery answers true and sends
// nothing.
func TestSetTypingRules(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	private, public := alicesRooms(t, svc, "typing-rules")
	as := func(user string) context.Context {
		return auth.NewContext(ctx, auth.Identity{UserID: user})
	}
	for _, tt := range []struct {
		name     string
		ctx      context.Context
		roomID   string
		presence bool
		code     chat.Code // "" for success
		sent     []string
	}{
		{"no presence on the server", as("alice"), public.ID, false, chat.CodeUnavailable, nil},
		{"anonymous", ctx, public.ID, true, chat.CodeUnauthenticated, nil},
		{"unknown room", as("alice"), "nosuchroom", true, chat.CodeNotFound, nil},
		{"private room, not a member", as("eve"), private.ID, true, chat.CodeForbidden, nil},
		{"private room, a member", as("alice"), private.ID, true, "", []string{private.ID + " alice"}},
		{"public room, anyone", as("bob"), public.ID, true, "", []string{public.ID + " bob"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &recordingPresence{}
			r := &Resolver{chat: svc, epoch: 1, typing: newTypingThrottle(time.Hour, typingKeep)}
			if tt.presence {
				r.presence = p
			}
			ok, err := r.Mutation().SetTyping(tt.ctx, tt.roomID)
			if tt.code == "" {
				if err != nil || !ok {
					t.Fatalf("setTyping = %v, %v; want true", ok, err)
				}
			} else if chatErr, isChat := errors.AsType[*chat.Error](err); ok || !isChat || chatErr.Code != tt.code {
				t.Fatalf("setTyping = %v, %v; want false, %s", ok, err, tt.code)
			}
			if got := p.sentSignals(); !slices.Equal(got, tt.sent) {
				t.Fatalf("signals sent %q, want %q", got, tt.sent)
			}
			if tt.code != "" {
				return
			}
			// Again at once: taken as one with the call before.
			if ok, err := r.Mutation().SetTyping(tt.ctx, tt.roomID); err != nil || !ok {
				t.Fatalf("second setTyping = %v, %v; want true", ok, err)
			}
			if got := p.sentSignals(); !slices.Equal(got, tt.sent) {
				t.Fatalf("after a second call within TypingEvery, signals sent %q, want still %q", got, tt.sent)
			}
		})
	}
}

// TestThrottleForgetsOnlyItsOwnCall: forget undoes the record of the
// failed call it is given (by its time) and nothing else: a later call
// passed on since (whose signal went out) still throttles the calls after
// it, whichever generation each record is in.
func TestThrottleForgetsOnlyItsOwnCall(t *testing.T) {
	t0 := time.Unix(1000, 0)
	th := newTypingThrottle(time.Second, typingKeep)
	if !th.allow("r", "alice", t0) {
		t.Fatal("first call refused")
	}
	if !th.allow("r", "alice", t0.Add(1100*time.Millisecond)) {
		t.Fatal("call 1.1 s later refused")
	}
	th.forget("r", "alice", t0) // the first call's signal failed, late
	if th.allow("r", "alice", t0.Add(1500*time.Millisecond)) {
		t.Fatal("a call 400 ms after one passed on was passed on too: forgetting an older failed call undid the later one")
	}
	th.forget("r", "alice", t0.Add(1100*time.Millisecond)) // its signal failed too
	if !th.allow("r", "alice", t0.Add(1600*time.Millisecond)) {
		t.Fatal("the retry of a failed call was refused")
	}
}

// TestRoomPresenceRefusals: roomPresence on a server without presence is
// UNAVAILABLE, on a room that does not exist NOT_FOUND; a presence watch
// that cannot start is UNAVAILABLE, and what was started before it is
// stopped.
func TestRoomPresenceRefusals(t *testing.T) {
	svc := startChat(t)
	ctx := auth.NewContext(context.Background(), auth.Identity{UserID: "alice"})
	room, err := svc.CreateRoom(ctx, chat.Actor{ID: "alice"}, "presence-refusals")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		p      *recordingPresence // nil: none
		roomID string
		code   chat.Code
	}{
		{"no presence on the server", nil, room.ID, chat.CodeUnavailable},
		{"unknown room", &recordingPresence{}, "nosuchroom", chat.CodeNotFound},
		{"signals not watched", &recordingPresence{sigErr: errors.New("nats: closed")}, room.ID, chat.CodeUnavailable},
		{"presence not watched", &recordingPresence{watchErr: errors.New("nats: closed")}, room.ID, chat.CodeUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &Resolver{chat: svc, epoch: 1, typing: newTypingThrottle(time.Second, typingKeep)}
			if tt.p != nil {
				r.presence = tt.p
			}
			subCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			ch, err := r.Subscription().RoomPresence(subCtx, tt.roomID)
			if err == nil {
				cancel()
				for range ch {
				}
				t.Fatalf("roomPresence accepted; want %s", tt.code)
			}
			if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != tt.code {
				t.Fatalf("roomPresence: %v; want %s", err, tt.code)
			}
			if tt.p != nil {
				tt.p.checkWatchesStopped(t)
			}
		})
	}
}

// TestUnsharedPresenceEndsForRemovedMember: without an engine (no
// auth.Guard), a member's roomPresence of a private room ends when they
// are removed from it: nothing else would stop them being told who is in
// a room they have left.
func TestUnsharedPresenceEndsForRemovedMember(t *testing.T) {
	svc := startChat(t)
	room := aliceAndBobsRoom(t, svc, "unshared-presence")
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	p := &recordingPresence{users: []string{"alice", "bob"}}
	opts := Options{PresenceWindow: 10 * time.Millisecond, PresenceBurst: 20, TypingFor: time.Second, TypingEvery: time.Second}
	r := &Resolver{chat: svc, epoch: 1, presence: p, opts: opts, typing: newTypingThrottle(opts.TypingEvery, typingKeep)}
	subCtx, cancel := context.WithCancel(auth.NewContext(ctx, auth.Identity{UserID: "bob"}))
	defer cancel()
	ch, err := r.Subscription().RoomPresence(subCtx, room.ID)
	if err != nil {
		t.Fatal(err)
	}
	const patience = 10 * time.Second // only a broken subscription waits this long
	select {
	case ev := <-ch:
		if ev.Value.Kind != model.PresenceKindSnapshot {
			t.Fatalf("bob's first event %s, want SNAPSHOT", ev.Value.Kind)
		}
	case <-time.After(patience):
		t.Fatal("bob got no SNAPSHOT")
	}
	if _, err := svc.RemoveMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(patience)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				p.checkWatchesStopped(t)
				return
			}
		case <-deadline:
			t.Fatalf("bob, removed from the private room, still subscribed to its presence %v later (no engine to end it)", patience)
		}
	}
}

// TestFeedKeepsBoundedSignals: signals and removals that come before the
// first report are kept (the first SNAPSHOT shows them), but at most
// maxSignals of each, however many come.
func TestFeedKeepsBoundedSignals(t *testing.T) {
	f := newPresenceFeed(time.Second, 20, time.Second)
	for i := range 3 * maxSignals {
		f.signal(fmt.Sprint("u", i))
		f.removed(fmt.Sprint("v", i))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.signals) > maxSignals || len(f.removals) > maxSignals {
		t.Fatalf("%d signals and %d removals kept before the first report; want at most %d of each", len(f.signals), len(f.removals), maxSignals)
	}
	if len(f.signals) == 0 || len(f.removals) == 0 {
		t.Fatalf("%d signals and %d removals kept; want the first ones kept", len(f.signals), len(f.removals))
	}
}

// TestFeedOrdersTyping: events and lists name users in user order
// whatever the order maps hand them in: a SNAPSHOT's typing list
// (schema: "ordered by ID"), and the TYPING events that end the typing of
// users removed from a private room, told or not yet told.
func TestFeedOrdersTyping(t *testing.T) {
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"}
	for _, told := range []bool{true, false} {
		t.Run(fmt.Sprint("removal told ", told), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const window = 250 * time.Millisecond
				gate := &memberSet{in: map[string]bool{}}
				for _, u := range users {
					gate.set(u, true)
				}
				f := newPresenceFeed(window, 20, time.Minute)
				f.members = gate
				events := runFeed(t, f, 64)
				drain := func() []*model.PresenceEvent { return drainFeed(events) }
				// Signals in reverse order, before the first report.
				reversed := slices.Clone(users)
				slices.Reverse(reversed)
				startFeed(t, f, drain, reversed, users)
				checkJoinerTyping(t, f, drain, window, users)
				// All but u0 removed, in reverse order.
				for _, u := range slices.Backward(users[1:]) {
					gate.set(u, false)
					if told {
						f.removed(u)
					}
				}
				f.poke()
				time.Sleep(window)
				var ended []string
				for _, ev := range drain() {
					if ev.Kind != model.PresenceKindTyping {
						t.Fatalf("event %s, want TYPING", ev.Kind)
					}
					user, _, _ := ids(ev)
					ended = append(ended, user)
				}
				if !slices.Equal(ended, users[1:]) {
					t.Fatalf("removed members' typing ended in order %q, want %q (user order)", ended, users[1:])
				}
			})
		})
	}
}

// TestFeedEndsEachTypingOnTime: a user's typing ends typingFor after their
// own last signal, not when a later typer's does.
func TestFeedEndsEachTypingOnTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			window    = 250 * time.Millisecond
			typingFor = 5 * time.Second
		)
		f := newPresenceFeed(window, 20, typingFor)
		events := runFeed(t, f, 64)
		drain := func() []*model.PresenceEvent { return drainFeed(events) }
		start := time.Now()
		startFeed(t, f, drain, []string{"a"}, []string{"a", "b"})
		time.Sleep(2 * time.Second)
		f.signal("b")
		time.Sleep(window)
		if got := drain(); len(got) != 1 || got[0].Kind != model.PresenceKindTyping {
			t.Fatalf("b's signal: %d events, want one TYPING", len(got))
		}
		ends := map[string]time.Duration{}
		for range 20 {
			time.Sleep(window)
			for _, ev := range drain() {
				user, _, _ := ids(ev)
				ends[user] = time.Since(start)
			}
		}
		if at, ok := ends["a"]; !ok || at > typingFor+window {
			t.Errorf("a's typing (signal at 0) ended at %v (seen %v), want by %v", at, ok, typingFor+window)
		}
		if at, ok := ends["b"]; !ok || at > 2*time.Second+typingFor+2*window {
			t.Errorf("b's typing (signal at 2 s) ended at %v (seen %v), want by %v", at, ok, 2*time.Second+typingFor+2*window)
		}
	})
}

// TestFeedOneBatchPerWindow: after a batch, changes wait for the window to
// end and go out together (README: "changes are sent at most once per 250
// ms window"); a change after a quiet spell longer than the window goes
// out at once.
func TestFeedOneBatchPerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const window = 250 * time.Millisecond
		type sent struct {
			at   time.Duration
			kind model.PresenceKind
			user string
		}
		var (
			mu  sync.Mutex
			log []sent
		)
		start := time.Now()
		f := newPresenceFeed(window, 20, time.Minute)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.run(ctx, func(ev *model.PresenceEvent) bool {
				user, _, _ := ids(ev)
				mu.Lock()
				log = append(log, sent{time.Since(start), ev.Kind, user})
				mu.Unlock()
				return true
			})
		}()
		f.setUsers([]string{"a"})
		time.Sleep(10 * time.Millisecond)
		f.setUsers([]string{"a", "b"})
		time.Sleep(10 * time.Millisecond)
		f.signal("a")
		time.Sleep(280 * time.Millisecond) // t = 300 ms
		f.setUsers([]string{"a", "b", "c"})
		time.Sleep(1200 * time.Millisecond) // t = 1.5 s: quiet since 500 ms
		f.setUsers([]string{"a", "b", "c", "d"})
		time.Sleep(time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		want := []sent{
			{0, model.PresenceKindSnapshot, ""},
			{window, model.PresenceKindJoined, "b"},
			{window, model.PresenceKindTyping, "a"},
			{2 * window, model.PresenceKindJoined, "c"},
			{1500 * time.Millisecond, model.PresenceKindJoined, "d"},
		}
		if !slices.Equal(log, want) {
			t.Fatalf("events sent (time, kind, user) %v; want %v (one batch per %v window)", log, want, window)
		}
	})
}

// TestFeedBurstBoundary: a batch of exactly burst changes is sent as its
// events; one more, counting a typing that ends on a removal, and it is
// one SNAPSHOT of the state after them all.
func TestFeedBurstBoundary(t *testing.T) {
	const burst = 3
	for _, tt := range []struct {
		name       string
		users      []string // reported after the start (a, b, typing: a)
		signals    []string
		removed    []string
		wantKinds  []model.PresenceKind
		wantUsers  []string
		wantTyping []string
	}{
		{"burst joins", []string{"a", "b", "c", "d", "e"}, nil, nil,
			[]model.PresenceKind{model.PresenceKindJoined, model.PresenceKindJoined, model.PresenceKindJoined},
			[]string{"a", "b", "c", "d", "e"}, []string{"a"}},
		{"burst+1 joins", []string{"a", "b", "c", "d", "e", "f"}, nil, nil,
			[]model.PresenceKind{model.PresenceKindSnapshot},
			[]string{"a", "b", "c", "d", "e", "f"}, []string{"a"}},
		{"burst changes of every kind", []string{"b", "c"}, []string{"b"}, nil,
			[]model.PresenceKind{model.PresenceKindLeft, model.PresenceKindJoined, model.PresenceKindTyping},
			[]string{"b", "c"}, []string{"a", "b"}},
		{"burst changes and a removal", []string{"b", "c"}, []string{"b"}, []string{"a"},
			[]model.PresenceKind{model.PresenceKindSnapshot},
			[]string{"b", "c"}, []string{"b"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const window = 250 * time.Millisecond
				f := newPresenceFeed(window, burst, time.Minute)
				events := runFeed(t, f, 64)
				drain := func() []*model.PresenceEvent { return drainFeed(events) }
				startFeed(t, f, drain, []string{"a"}, []string{"a", "b"})
				for _, u := range tt.removed {
					f.removed(u)
				}
				for _, u := range tt.signals {
					f.signal(u)
				}
				f.setUsers(tt.users)
				time.Sleep(window)
				got := drain()
				var kinds []model.PresenceKind
				for _, ev := range got {
					kinds = append(kinds, ev.Kind)
				}
				if !slices.Equal(kinds, tt.wantKinds) {
					t.Fatalf("batch sent as %v; want %v (burst %d)", kinds, tt.wantKinds, burst)
				}
				_, users, typing := ids(got[len(got)-1])
				if !slices.Equal(users, tt.wantUsers) || !slices.Equal(typing, tt.wantTyping) {
					t.Fatalf("state after the batch: users %q typing %q; want %q typing %q", users, typing, tt.wantUsers, tt.wantTyping)
				}
			})
		})
	}
}
