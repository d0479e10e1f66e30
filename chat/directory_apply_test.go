package chat

import (
	"strings"
	"testing"
	"time"
)

// TestDirectoryApply: what the directory folds and what it skips, alike on
// every replica: a private room's name is never taken, a public one is in
// any case, an entry's own time wins over the time it was stored, a room
// ID used twice and a name the rules refuse are skipped, and createdAfter
// is exclusive of its position.
func TestDirectoryApply(t *testing.T) {
	d := newDirectory()
	encode := func(e Event) []byte {
		t.Helper()
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	apply := func(seq uint64, e Event) (Room, *Error) {
		t.Helper()
		return d.apply(seq, e.directoryKey(), encode(e), t0(seq))
	}
	// A private room's name is never taken: a public room of that name may
	// be created, and the private one does not show in names.
	if r, bad := apply(1, Event{Type: RoomCreated, Actor: alice, RoomID: "rpriv", Name: "Plans", Private: true}); bad != nil || !r.Private {
		t.Fatalf("private room: %+v, %v", r, bad)
	}
	if _, taken := d.names[nameTakenKey("Plans")]; taken {
		t.Errorf("a private room's name must not be taken in the directory: names = %v", d.names)
	}
	if _, taken := d.names[nameTakenKey("plans")]; taken {
		t.Errorf("a private room's name must not be taken in any case")
	}
	if r, bad := apply(2, Event{Type: RoomCreated, Actor: alice, RoomID: "rpub", Name: "Plans"}); bad != nil || r.Private {
		t.Fatalf("public room of a private room's name: %+v, %v", r, bad)
	}
	if id := d.names[nameTakenKey("PLANS")]; id != "rpub" {
		t.Errorf("the public room's name must be taken, in any case: names[PLANS] = %q", id)
	}
	// The entry's own time (a migrated room's original one) wins over the
	// time the directory stored it.
	orig := time.Date(2021, 3, 4, 5, 6, 7, 8, time.UTC)
	if r, bad := apply(3, Event{Type: RoomCreated, Actor: alice, RoomID: "rmig", Name: "Old", At: orig.UnixNano()}); bad != nil || !r.CreatedAt.Equal(orig) {
		t.Errorf("a room whose entry carries At: CreatedAt = %v, %v; want %v", r.CreatedAt, bad, orig)
	}
	// A room ID used twice (here under a migrated key) is skipped: the
	// first entry stays the room.
	again := Event{Type: RoomCreated, Actor: bob, RoomID: "rpub", Name: "Another"}
	if r, bad := d.apply(4, migratedDirectoryKey("rpub"), encode(again), t0(4)); bad == nil || r.ID != "" {
		t.Errorf("a second room.created of room rpub = %+v, %v; want it skipped with an error", r, bad)
	}
	if r, _ := d.room("rpub"); r.Name != "Plans" || r.Seq != 2 {
		t.Errorf("room rpub after a second entry for its ID = %+v; want the first one", r)
	}
	if len(d.order) != 3 || len(d.public) != 2 || len(d.private) != 1 {
		t.Errorf("directory lists: order %d, public %d, private %d; want 3, 2, 1", len(d.order), len(d.public), len(d.private))
	}
	// A name the rules refuse is skipped, whoever stored it.
	for i, name := range []string{"", strings.Repeat("n", 1000), "a\x00b"} {
		seq := uint64(10 + i)
		if r, bad := apply(seq, Event{Type: RoomCreated, Actor: alice, RoomID: "rbad" + string(rune('a'+i)), Name: name}); bad == nil || r.ID != "" {
			t.Errorf("a room named %.20q was folded as room %q (error %v); want it skipped", name, r.ID, bad)
		}
	}
	if len(d.order) != 3 {
		t.Errorf("rooms with refused names were listed: %d rooms", len(d.order))
	}
	// createdAfter is exclusive of its position.
	if got := d.createdAfter(2); len(got) != 1 || got[0].Room.ID != "rmig" {
		t.Errorf("createdAfter(2) = %+v; want only the room at 3", got)
	}
	if got := d.createdAfter(0); len(got) != 3 {
		t.Errorf("createdAfter(0) = %d changes; want 3", len(got))
	}
}
