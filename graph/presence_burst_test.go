package graph

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/graph/model"
)

// TestPresenceBurstCostsOneSnapshot: a batch of more than burst
// changes is sent as one SNAPSHOT, so building it should cost about one
// SNAPSHOT (O(users)), not one full room listing per change.
//
// Expected (README "Presence": traffic is bounded per subscriber "however
// busy the room", a window with more than 20 changes "is sent as one
// SNAPSHOT"; ARCHITECTURE: "with 10,000 viewers on a replica they share one
// execution, one bucket watch and one encoding per event"): when one report
// adds n users (another replica's key of a busy room appears, a replica's
// watch comes back), the feed's work is O(n).
//
// presenceFeed.run calls presenceState.apply with events != nil, and
// apply's emit used to build st.snapshot() (every present user) for each
// of the n changes before run threw them all away for one SNAPSHOT: n²/2
// actors allocated, 2 million for 2,000 joins, ~50 million (GBs) for
// 10,000, on the feed's goroutine of every roomPresence execution. apply
// now builds at most burst+1 events.
func TestPresenceBurstCostsOneSnapshot(t *testing.T) {
	const n = 2000
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%05d", i)
	}
	now := time.Unix(1000, 0)
	allocs := testing.AllocsPerRun(1, func() {
		var st presenceState
		st.apply(nil, nil, now, time.Second, nil, 0) // the first SNAPSHOT: nobody
		var events []*model.PresenceEvent
		events = st.apply(users, nil, now, time.Second, &events, 20) // as presenceFeed.run does
		if len(events) != 21 {
			t.Fatalf("%d events built for %d joins, want 21 (burst+1: more than burst, so one SNAPSHOT is sent)", len(events), n)
		}
	})
	// One SNAPSHOT of n users is about n allocations; allow 20 per user.
	if bound := float64(20 * n); allocs > bound {
		t.Fatalf("one batch of %d joins allocated %.0f times; want at most %.0f (about one SNAPSHOT)", n, allocs, bound)
	}
}
