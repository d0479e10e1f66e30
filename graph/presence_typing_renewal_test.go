package graph

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/heraldhq/herald/graph/model"
)

// TestPresenceTypingRenewalInLastWindow: a typing signal that reaches
// the feed before the user's typing has ended renews it and sends nothing.
//
// Expected (README "Presence": "setTyping shows the viewer typing for 5
// seconds; call it again within them to go on"; presenceFeed's doc:
// "a TYPING per user ... whose typing ended (typingFor without a signal;
// renewals change nothing)"): b signals at 4.9 s, within the 5 s, so b
// never stops typing and no TYPING event is sent.
//
// The signal waits for the next window (a batch went out at 4.8 s), and
// presenceState.apply is called at 5.05 s with now = the batch time: it
// used to end b's typing first (its until, 5.0 s, is before now) and then
// apply the signal as a new start, so subscribers got TYPING (b not
// typing) then TYPING (b typing) for a user who never stopped.
func TestPresenceTypingRenewalInLastWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			window    = 250 * time.Millisecond
			typingFor = 5 * time.Second
		)
		f := newPresenceFeed(window, 20, typingFor)
		events := runFeed(t, f, 64)

		f.signal("b")
		synctest.Wait()
		f.setUsers([]string{"a", "b"}) // t=0: SNAPSHOT, b typing until 5 s
		synctest.Wait()
		if ev := <-events; ev.Kind != model.PresenceKindSnapshot {
			t.Fatalf("first event %s, want SNAPSHOT", ev.Kind)
		}

		time.Sleep(4800 * time.Millisecond)
		f.setUsers([]string{"a", "b", "c"}) // t=4.8 s: a batch goes out
		synctest.Wait()
		if ev := <-events; ev.Kind != model.PresenceKindJoined {
			t.Fatalf("c came in as %s, want JOINED", ev.Kind)
		}

		time.Sleep(100 * time.Millisecond)
		f.signal("b") // t=4.9 s: within b's 5 s, a renewal
		synctest.Wait()

		time.Sleep(time.Second) // well past the next window
		synctest.Wait()
		for {
			select {
			case ev := <-events:
				user, _, typing := ids(ev)
				t.Errorf("renewal within typingFor sent %s %s (typing %q); want no event", ev.Kind, user, typing)
				continue
			default:
			}
			break
		}
	})
}
