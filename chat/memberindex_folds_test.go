package chat

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestMemberIndexFolds: the member index lists a user's private rooms as
// the rooms judge them: only private rooms, events that came before the
// room's entry folded once it comes, additions by non-members ignored, a
// removed member no longer listed; waitFolded waits for an event until it
// is folded, even one the index ignored; and an index still catching up
// answers nothing.
func TestMemberIndexFolds(t *testing.T) {
	rooms := func(x *memberIndex, user string) []string {
		t.Helper()
		got, ok := x.roomsOf(user)
		if !ok {
			t.Fatalf("roomsOf(%s): the index says it has not caught up", user)
		}
		slices.Sort(got)
		return got
	}
	x := newMemberIndex(0, 100)
	private := Room{ID: "rpriv", Name: "p", Private: true, CreatedBy: alice}
	public := Room{ID: "rpub", Name: "q", CreatedBy: alice}

	x.roomCreated(public)
	if got := rooms(x, "alice"); len(got) != 0 {
		t.Errorf("the creator of a public room is listed among its private rooms: %q", got)
	}

	// bob is added before the directory has the room.
	_ = x.apply(memberLogEntry(t, 5, memberAdded(alice, private.ID, "bob")))
	if got := rooms(x, "bob"); len(got) != 0 {
		t.Errorf("bob listed before the room's entry was applied: %q", got)
	}
	x.roomCreated(private)
	if got := rooms(x, "bob"); !slices.Equal(got, []string{private.ID}) {
		t.Errorf("bob, added before the room's entry came, must be a member once it does: %q", got)
	}
	if len(x.pending) != 0 {
		t.Errorf("the room's events must leave pending once it is created (a sweep would log them as a room that does not exist): %d pending", len(x.pending))
	}
	if since := x.rooms[private.ID]["bob"]; since != 5 {
		t.Errorf("bob's since = %d, want 5, the position of his addition", since)
	}

	// carol, no member, adds dave: ignored, as the room refuses it.
	_ = x.apply(memberLogEntry(t, 6, memberAdded(Actor{ID: "carol"}, private.ID, "dave")))
	if got := rooms(x, "dave"); len(got) != 0 {
		t.Errorf("a non-member's addition was folded: dave's rooms %q", got)
	}

	// bob removes himself: no longer listed.
	_ = x.apply(memberLogEntry(t, 7, memberRemoved(bob, private.ID, "bob")))
	if got := rooms(x, "bob"); len(got) != 0 {
		t.Errorf("bob removed himself but is still listed: %q", got)
	}
	if got := rooms(x, "alice"); !slices.Equal(got, []string{private.ID}) {
		t.Errorf("alice's rooms %q, want [%s]", got, private.ID)
	}

	// waitFolded returns once the event at seq is folded, even one the
	// index ignored, and waits for one not folded yet.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := x.waitFolded(ctx, private.ID, 6); err != nil {
		t.Errorf("waitFolded of an ignored, folded event: %v", err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if err := x.waitFolded(short, private.ID, 8); err == nil {
		t.Errorf("waitFolded returned before the event at 8 was folded (read-your-writes would not hold)")
	}

	// An index still catching up answers nothing.
	behind := newMemberIndex(2, 100)
	behind.roomCreated(private)
	if got, ok := behind.roomsOf("alice"); ok {
		t.Errorf("an index not caught up answered %q: Rooms must load rooms instead", got)
	}
}
