package chat

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestReloadTellsOfRemovalThenReAddition: a private room held ahead
// of the log (a forged live entry) misses bob's removal and re-addition,
// which another replica stores meanwhile. When the room is re-read
// (replaceLocked), its watchers must learn of the removal, as a watcher
// following the room live does: the graph layer ends the removed member's
// subscriptions on a MemberRemoved change (recheck), and bob's old
// subscription was admitted under the membership the removal ended.
func TestReloadTellsOfRemovalThenReAddition(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	forged := uint64(1) << 40
	// b never hears of the forgery: it follows the log as it is.
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{},
		func(s *Service) { s.liveFilter = func(e pubsub.Entry) bool { return e.Seq != forged } })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room, err := a.CreatePrivateRoom(ctx, alice, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, alice, room.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	mustPost(t, a, room.ID, "before")
	wa, err := a.Watch(ctx, RoomTopic(room.ID)) // the replica that will be ahead
	if err != nil {
		t.Fatal(err)
	}
	defer wa.Close()
	wb, err := b.Watch(ctx, RoomTopic(room.ID)) // a replica following live
	if err != nil {
		t.Fatal(err)
	}
	defer wb.Close()
	waitFor(t, "the re-reads after the room's loads", func() bool { return a.resyncer.idle() && b.resyncer.idle() })

	forgeLive(t, first, room.ID, forged, roomLast(t, a, room.ID), "forged")
	waitFor(t, "the forged entry to be applied", func() bool { return roomLast(t, a, room.ID) == forged })

	if _, err := b.RemoveMember(ctx, alice, room.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddMember(ctx, alice, room.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	// a skips both (below its forged position) and re-reads the room a
	// moment later; wait for that before the fence, so the fence comes live.
	waitFor(t, "the room ahead of the log to be re-read", func() bool { return roomLast(t, a, room.ID) < forged })
	fence := mustPost(t, b, room.ID, "fence")

	describe := func(w *Watcher) []string {
		var got []string
		for {
			c, err := next(w)
			if err != nil {
				t.Fatalf("after %q: %v", got, err)
			}
			if c.Message != nil {
				got = append(got, fmt.Sprintf("%s %s", c.Type, c.Message.Text))
			} else {
				got = append(got, fmt.Sprintf("%s %s", c.Type, c.UserID))
			}
			if c.Message != nil && c.Message.ID == fence.ID {
				return got
			}
		}
	}
	live := describe(wb)
	reread := describe(wa)
	t.Logf("live watcher: %q; re-read watcher: %q", live, reread)
	removed := func(got []string) bool {
		for _, g := range got {
			if g == string(MemberRemoved)+" "+bob.ID {
				return true
			}
		}
		return false
	}
	if !removed(live) {
		t.Fatalf("the live watcher got %q: no removal of %s", live, bob.ID)
	}
	if !removed(reread) {
		t.Fatalf("the watcher of the re-read room got %q: no removal of %s, though the log holds it and %s's access changed (live: %q)", reread, bob.ID, bob.ID, live)
	}
}
