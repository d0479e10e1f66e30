package graph

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph/model"
)

// feedPresence is a Presence whose signals go straight to one
// presenceFeed, as the cluster's would reach a roomPresence feed.
type feedPresence struct{ feed *presenceFeed }

func (p feedPresence) Watch(context.Context, string, func([]string)) (func(), error) {
	return func() {}, nil
}

func (p feedPresence) WatchSignals(string, func(string)) (func(), error) {
	return func() {}, nil
}

func (p feedPresence) Signal(_ context.Context, _, user string) error {
	p.feed.signal(user)
	return nil
}

// A setTyping the throttle took as one with the call before (answered
// true) renewed nothing: a user calling again within TypingFor of their
// last call was shown to stop typing, then to start again. README: "call
// it again within them to go on". Scaled: TypingFor 2 s, TypingEvery
// 800 ms; calls at 0 (passed on), 400 ms (taken as one) and 2.3 s.
func TestTypingRenewedByASwallowedCall(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	room, err := svc.CreateRoom(ctx, chat.Actor{ID: "alice"}, "typing")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{TypingFor: 2 * time.Second, TypingEvery: 800 * time.Millisecond}
	// A loaded machine can make the last call later than TypingFor after
	// the one before, when alice may stop typing: the run shows nothing
	// then, and the schedule is tried again.
	for attempt := 1; ; attempt++ {
		if !typingRenewedByASwallowedCall(t, svc, room.ID, opts) {
			return
		}
		if attempt == 3 {
			t.Fatalf("the last setTyping came more than TypingFor (%s) after the one before in %d runs", opts.TypingFor, attempt)
		}
	}
}

// typingRenewedByASwallowedCall runs the schedule once; it reports whether
// the calls slipped too far to tell.
func typingRenewedByASwallowedCall(t *testing.T, svc *chat.Service, roomID string, opts Options) (slipped bool) {
	ctx := context.Background()
	feed := newPresenceFeed(10*time.Millisecond, 20, opts.typingShown())
	events := runFeed(t, feed, 64)
	feed.setUsers([]string{"alice", "bob"})
	select {
	case ev := <-events:
		if ev.Kind != model.PresenceKindSnapshot {
			t.Fatalf("first event %s", ev.Kind)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no SNAPSHOT")
	}

	r := &Resolver{chat: svc, epoch: 1, presence: feedPresence{feed}, typing: newTypingThrottle(opts.TypingEvery, typingKeep)}
	actx := auth.NewContext(ctx, auth.Identity{UserID: "alice"})
	start := time.Now()
	call := func(at time.Duration) (began, ended time.Time) {
		t.Helper()
		time.Sleep(time.Until(start.Add(at)))
		began = time.Now()
		ok, err := r.Mutation().SetTyping(actx, roomID)
		if err != nil || !ok {
			t.Fatalf("setTyping at %s = %v, %v", at, ok, err)
		}
		return began, time.Now()
	}

	var (
		got     []string
		stopped bool
	)
	collect := func(until time.Duration) {
		for {
			select {
			case ev := <-events:
				_, _, typing := ids(ev)
				got = append(got, fmt.Sprintf("%s typing %q", time.Since(start).Round(time.Millisecond), typing))
				if len(typing) == 0 {
					stopped = true
				}
				continue
			case <-time.After(time.Until(start.Add(until))):
			}
			return
		}
	}
	call(0)
	renewed, _ := call(400 * time.Millisecond) // answered true: "call it again within them to go on"
	collect(2300 * time.Millisecond)
	_, last := call(2300 * time.Millisecond) // 1.9 s after the last call
	collect(2800 * time.Millisecond)

	if stopped && last.Sub(renewed) > opts.TypingFor {
		t.Logf("the last setTyping ended %s after the one before, past TypingFor (%s); events: %q",
			last.Sub(renewed).Round(time.Millisecond), opts.TypingFor, got)
		return true
	}
	if stopped {
		t.Fatalf("alice shown as stopped typing though every setTyping came within TypingFor (%s) of the one before; events: %q", opts.TypingFor, got)
	}
	if len(got) == 0 {
		t.Fatal("alice was never shown typing")
	}
	return false
}
