package chat

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/pubsub"
)

// TestRoomsLeavesOutRoomsCreatedAfterItsRead: Rooms reads the directory
// (its rooms and position) and then asks the member index for the
// viewer's private rooms; a private room created in between is in the
// index but after the position the page hands on as its cursor. Listed,
// it would also be replayed by roomCreated resumed from that cursor, and
// the client would show it twice. It is left to roomCreated.
func TestRoomsLeavesOutRoomsCreatedAfterItsRead(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx := context.Background()
	before, err := svc.CreatePrivateRoom(ctx, alice, "before")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member index to list alice's room", func() bool {
		ids, ok := svc.members.roomsOf(alice.ID)
		return ok && len(ids) == 1
	})
	// Rooms' read of the directory...
	svc.dirMu.RLock()
	private, last := svc.dir.private, svc.dir.last
	svc.dirMu.RUnlock()
	// ...then a room created before it asks the index.
	after, err := svc.CreatePrivateRoom(ctx, alice, "after")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member index to list both", func() bool {
		ids, ok := svc.members.roomsOf(alice.ID)
		return ok && len(ids) == 2
	})
	mine, err := svc.visiblePrivateRooms(ctx, alice.ID, private, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(mine) != 1 || mine[0].ID != before.ID {
		var ids []string
		for _, r := range mine {
			ids = append(ids, r.ID)
		}
		t.Fatalf("private rooms listed = %v, want only %s (read at %d; %s created at %d after it)", ids, before.ID, last, after.ID, after.Seq)
	}
	page, err := svc.Rooms(ctx, alice.ID, Window{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || page.Last != after.Seq {
		t.Fatalf("a page read afterwards lists %d rooms up to %d, want both up to %d", len(page.Items), page.Last, after.Seq)
	}
}
