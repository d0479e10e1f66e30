package chat

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestReloadTellsWatchersOfMemberChanges: a watched private room on replica
// b misses live entries while the room moves on by more posts than its
// history keeps, so the entry b applied last is gone from the log and the
// room is reloaded (reloadRoom). Its watchers used to get only the message
// changes since lastShared: the member removal stored meanwhile never
// reached them, so the graph layer's recheck (which ends the removed
// member's subscriptions with FORBIDDEN) never ran. When posts the
// watchers never saw were discarded too, the watchers are ended with
// CURSOR_EXPIRED (TestCatchUpPastDiscardedEntriesEndsWatchers), but only
// after the removal.
func TestReloadTellsWatchersOfMemberChanges(t *testing.T) {
	const history = 3
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	a := startService(t, first, Options{History: history})
	var drop atomic.Bool
	var roomID atomic.Value
	roomID.Store("")
	filter := func(e pubsub.Entry) bool { return !(drop.Load() && e.Key == roomID.Load().(string)) }
	b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: history}), Options{History: history},
		func(s *Service) { s.liveFilter = filter })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The path depends on timing (which entries the re-read finds gone), so
	// the scenario runs in several rooms.
	for round := range 10 {
		func() {
			room, err := a.CreatePrivateRoom(ctx, alice, fmt.Sprintf("secret %d", round))
			if err != nil {
				t.Fatal(err)
			}
			roomID.Store(room.ID)
			if _, err := a.AddMember(ctx, alice, room.ID, bob.ID); err != nil {
				t.Fatal(err)
			}
			w, err := b.Watch(ctx, RoomTopic(room.ID))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			m0 := mustPost(t, a, room.ID, "m0")
			if c, err := w.Next(ctx); err != nil || c.Seq != m0.Seq {
				t.Fatalf("first change = %+v, %v", c, err)
			}
			drop.Store(true)
			if _, err := a.RemoveMember(ctx, alice, room.ID, bob.ID); err != nil {
				t.Fatal(err)
			}
			for i := range history + 1 { // m0 is discarded from the log
				mustPost(t, a, room.ID, fmt.Sprintf("p%d", i))
			}
			drop.Store(false)
			last := mustPost(t, a, room.ID, "after the loss")
			var got []string
			sawRemoval := false
			for {
				c, err := w.Next(ctx)
				var expired *Error
				if errors.As(err, &expired) && expired.Code == CodeCursorExpired {
					break // the watcher missed posts the log discarded: ended
				}
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				desc := string(c.Type)
				if c.Message != nil {
					desc += " " + c.Message.Text
				} else {
					desc += " " + c.UserID
				}
				got = append(got, desc)
				if c.Type == MemberRemoved && c.UserID == bob.ID {
					sawRemoval = true
				}
				if c.Message != nil && c.Message.ID == last.ID {
					break
				}
			}
			if !sawRemoval {
				t.Fatalf("round %d: the watcher got %q after the lost entries: no member.removed of %s, which the log holds", round, got, bob.ID)
			}
		}()
	}
}
