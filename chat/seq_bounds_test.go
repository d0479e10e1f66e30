package chat

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestApplyIgnoresRepeatedSeq: an entry delivered twice at the
// same log position (a live copy and a read of the same entry) is applied
// once. A reaction toggled at seq 2, seen again at seq 2, must stay on, and
// a post seen again is no conflict but nothing at all.
func TestApplyIgnoresRepeatedSeq(t *testing.T) {
	rs := newRoomState(Room{ID: roomA, Name: "general"}, 0)
	if err := rs.apply(1, t0(1), posted(alice, roomA, msgA1, "hello")); err != nil {
		t.Fatalf("post: %v", err)
	}
	if err := rs.apply(2, t0(2), reacted(bob, msgA1, "👍")); err != nil {
		t.Fatalf("react: %v", err)
	}
	if err := rs.apply(2, t0(2), reacted(bob, msgA1, "👍")); err != nil {
		t.Errorf("the same entry again = %v, want nil (already applied)", err)
	}
	if err := rs.apply(1, t0(1), posted(alice, roomA, msgA1, "hello")); err != nil {
		t.Errorf("the post again = %v, want nil (already applied)", err)
	}
	m, _ := rs.message(msgA1)
	if len(m.Reactions) != 1 || m.Reactions[0].Emoji != "👍" || len(m.Reactions[0].UserIDs) != 1 {
		t.Errorf("reactions after a repeated entry = %+v, want one 👍 by bob", m.Reactions)
	}
	if rs.last != 2 {
		t.Errorf("last = %d, want 2", rs.last)
	}
}

// TestChangesAfterExcludesCursor: a resume from the cursor of an
// event replays what came after it, never that event again.
func TestChangesAfterExcludesCursor(t *testing.T) {
	rs := newRoomState(Room{ID: roomA, Name: "general"}, 0)
	applyAll(rs, []Event{
		posted(alice, roomA, msgA1, "hello"), // 1
		posted(bob, roomA, msgA2, "hi"),      // 2
		edited(alice, msgA1, 1, "hello!"),    // 3
		reacted(bob, msgA2, "👍"),             // 4
	})
	for after, want := range map[uint64][]uint64{0: {1, 2, 3, 4}, 1: {2, 3, 4}, 2: {3, 4}, 3: {4}, 4: nil} {
		changes, bad := rs.changesAfter(after)
		if bad != nil {
			t.Fatalf("changesAfter(%d): %v", after, bad)
		}
		var got []uint64
		for _, c := range changes {
			got = append(got, c.Seq)
		}
		if !slices.Equal(got, want) {
			t.Errorf("changesAfter(%d) = %v, want %v", after, got, want)
		}
	}
}

// TestWatcherSkipAndRewind: a watcher registered after position
// 5 takes no change at 5 (the replay ended there) but every one above; one
// rewound to 7 (its room re-read, see reloadRoom) takes 8 even though it
// was registered after 10.
func TestWatcherSkipAndRewind(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := newHub()
	w := h.addAfter("t", 5, nil, nil)
	defer w.Close()
	h.publish("t", Change{Seq: 5})
	h.publish("t", Change{Seq: 6})
	if c, err := w.Next(ctx); err != nil || c.Seq != 6 {
		t.Fatalf("first change = %d, %v; want 6 (5 is at the skip bound)", c.Seq, err)
	}
	w2 := h.addAfter("u", 10, nil, nil)
	defer w2.Close()
	h.rewind("u", 7)
	h.publish("u", Change{Seq: 8})
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if c, err := w2.Next(short); err != nil || c.Seq != 8 {
		t.Fatalf("after rewind to 7: change = %d, %v; want 8", c.Seq, err)
	}
	// rewind never moves the bound up.
	h.rewind("u", 20)
	h.publish("u", Change{Seq: 9})
	if c, err := w2.Next(short); err != nil || c.Seq != 9 {
		t.Fatalf("after rewind to 20: change = %d, %v; want 9", c.Seq, err)
	}
}

// TestRoomsResumeExcludesCursor: roomCreated resumed from the
// cursor of a room's creation replays the rooms created after it, never
// that room again.
func TestRoomsResumeExcludesCursor(t *testing.T) {
	d := newDirectory()
	for i, name := range []string{"general", "random", "news"} {
		e := Event{Type: RoomCreated, Actor: alice, RoomID: "r" + name, Name: name}
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		seq := uint64(10 * (i + 1)) // 10, 20, 30
		if _, bad := d.apply(seq, e.directoryKey(), data, t0(seq)); bad != nil {
			t.Fatalf("apply %s: %v", name, bad)
		}
	}
	for after, want := range map[uint64][]uint64{0: {10, 20, 30}, 10: {20, 30}, 15: {20, 30}, 20: {30}, 30: nil} {
		var got []uint64
		for _, c := range d.createdAfter(after) {
			got = append(got, c.Seq)
		}
		if !slices.Equal(got, want) {
			t.Errorf("createdAfter(%d) = %v, want %v", after, got, want)
		}
	}
}

// TestDirectoryIgnoresAnEntryAgain: an entry delivered again at its
// position (a redelivery, a replay overlapping the live tail) is ignored,
// not judged again: judged again, the room it created already exists and
// the entry would be reported as breaking the rules.
func TestDirectoryIgnoresAnEntryAgain(t *testing.T) {
	d := newDirectory()
	e := Event{Type: RoomCreated, Actor: alice, RoomID: "rgeneral", Name: "general"}
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if room, bad := d.apply(10, e.directoryKey(), data, t0(10)); bad != nil || room.ID != "rgeneral" {
		t.Fatalf("first apply = %+v, %v; want room rgeneral", room, bad)
	}
	for _, seq := range []uint64{10, 9} {
		if room, bad := d.apply(seq, e.directoryKey(), data, t0(seq)); bad != nil || room.ID != "" {
			t.Errorf("apply at %d again = %+v, %v; want it ignored", seq, room, bad)
		}
	}
}

// TestMemberIndexCountsChanges: the member index judges member
// events as the room does, including the cap on a user's member changes the
// log can keep (checkMemberChanges): with history 3, bob's fourth change
// (a removal) is refused by the room, so the index must still list the
// room among bob's, as the room still holds him as a member.
func TestMemberIndexCountsChanges(t *testing.T) {
	const history = 3
	room := Room{ID: "rp", Name: "secret", Private: true, CreatedBy: alice}
	x := newMemberIndex(0, history)
	x.roomCreated(room)
	rs := newRoomState(room, history)
	events := []Event{
		memberAdded(alice, room.ID, "bob"),
		memberRemoved(alice, room.ID, "bob"),
		memberAdded(alice, room.ID, "bob"),
		memberRemoved(alice, room.ID, "bob"), // bob's 4th change: over what the log keeps
	}
	for i, e := range events {
		seq := uint64(i + 1)
		_ = rs.apply(seq, t0(seq), e)
		_ = x.apply(memberLogEntry(t, seq, e))
	}
	roomSays := rs.isMember("bob")
	rooms, ok := x.roomsOf("bob")
	if !ok {
		t.Fatal("index behind")
	}
	indexSays := len(rooms) == 1 && rooms[0] == room.ID
	if !roomSays {
		t.Fatalf("the room refused nothing: bob is no member (test premise broken)")
	}
	if indexSays != roomSays {
		t.Errorf("member index lists bob's rooms as %v, but the room holds bob as a member: index and room judge differently", rooms)
	}
}
