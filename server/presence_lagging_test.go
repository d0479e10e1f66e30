package server

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/graph"
)

// subscriptionsStarted reads c until each of ids has had a "next".
func subscriptionsStarted(t *testing.T, c *wsClient, ids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(want) > 0 {
		f, err := c.read(time.Until(deadline))
		if err != nil {
			t.Fatalf("subscriptions %v never started: %v", want, err)
		}
		if f.Type == "next" {
			delete(want, f.ID)
		} else if f.Type == "error" || f.Type == "complete" {
			t.Fatalf("subscription %s ended: %s", f.ID, f.raw)
		}
	}
}

// A member removed from a private room while typing: the others get a
// TYPING for them (not typing) before their LEFT (README), also on a
// replica that applies the removal later than the presence keys say the
// member left.
func TestRemovedTypistStopsTypingBeforeLeftOnALaggingReplica(t *testing.T) {
	r := presenceReplica(t, "r", "", graph.Options{})
	proxy := newNATSProxy(t, r.log.ClientURL())
	w := presenceReplica(t, "w", proxy.url(), graph.Options{})
	room := r.privateRoom("secret", "bob", "carol")
	waitFor(t, "w to know bob's membership", func() bool {
		ok, _ := w.chat.Admits(context.Background(), "bob", room)
		return ok
	})
	watcher := watchRoomPresence(w, "carol", room)
	watcher.first("carol")
	bob := r.dialTransport("bob")
	bob.subscribe("subscribe", "p", presenceQuery, map[string]any{"r": room})
	subscriptionsStarted(t, bob, "p")
	watcher.until(5*time.Second, "bob", "carol")
	if got := setTyping(t, r, "bob", room); !strings.Contains(got, `"setTyping":true`) {
		t.Fatalf("setTyping: %s", got)
	}
	for {
		ev := watcher.next(5 * time.Second)
		if slices.Contains(ev.Typing, "bob") {
			break
		}
	}

	// w applies the room's events late, as a replica whose live
	// subscription fell behind or reconnected does; bob's LEFT comes
	// from the presence keys meanwhile.
	proxy.holdSubjects("herald-live.")
	if _, err := r.chat.RemoveMember(context.Background(), chatActor("ann"), room, "bob"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	proxy.releaseSubjects()
	var seen []presenceEvent
	for {
		ev := watcher.next(5 * time.Second)
		seen = append(seen, ev)
		if ev.Kind == "LEFT" && ev.User == "bob" && slices.Contains(ev.Typing, "bob") {
			t.Fatalf("bob left while still shown typing: %+v", seen)
		}
		if !slices.Contains(ev.Users, "bob") && !slices.Contains(ev.Typing, "bob") {
			return
		}
	}
}
