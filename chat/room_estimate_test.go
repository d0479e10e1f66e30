package chat

import (
	"fmt"
	"testing"
	"time"
	"unsafe"
)

// TestEstimateCountsChangeHistoryAtItsSize: a message's change history
// (m.events) is held as eventRef values of 32 bytes (a uint64, an int64 and
// an EventType string), which size counted at 24: a room whose messages
// take many changes held a third more per change than --room-cache counts.
func TestEstimateCountsChangeHistoryAtItsSize(t *testing.T) {
	rs := newRoomState(Room{ID: "r1", Name: "general", CreatedBy: alice}, 0)
	at := time.Unix(1, 0)
	seq := uint64(1)
	if err := rs.apply(seq, at, Event{Type: MessagePosted, Actor: alice, RoomID: "r1", MessageID: "m1", Text: "hi", Prev: 0}); err != nil {
		t.Fatal(err)
	}
	const toggles = 4096
	before := rs.bytes
	m := rs.byID["m1"]
	capBefore := cap(m.events)
	for i := range toggles {
		seq++
		// Toggle on and off: the reactions end as they began, so only the
		// change history grows.
		if err := rs.apply(seq, at, Event{Type: ReactionToggled, Actor: alice, RoomID: "r1", MessageID: "m1", Emoji: "👍", Prev: seq - 1}); err != nil {
			t.Fatalf("toggle %d: %v", i, err)
		}
	}
	grown := rs.bytes - before
	heldGrowth := int64(cap(m.events)-capBefore) * int64(unsafe.Sizeof(eventRef{}))
	t.Logf("eventRef is %d bytes; estimate grew %d bytes for %d more event slots, which hold %d bytes",
		unsafe.Sizeof(eventRef{}), grown, cap(m.events)-capBefore, heldGrowth)
	if grown < heldGrowth {
		t.Fatalf("the room's estimate grew by %d bytes while its change history grew by %d bytes (%s)",
			grown, heldGrowth, fmt.Sprintf("%d slots of %d bytes, counted at 24", cap(m.events)-capBefore, unsafe.Sizeof(eventRef{})))
	}
}
