package graph

import (
	"context"
	"errors"
	"testing"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// TestPrivateResumeForbiddenWhateverCursor: a non-member (or removed
// member) resuming a private room's subscription is refused with FORBIDDEN
// whatever the cursor. schema.graphqls (Subscription): "A non-member's
// resume fails with FORBIDDEN whatever its cursor."; README (Private
// rooms): "resuming is FORBIDDEN too, whatever the cursor". chat's
// TestResumeOfPrivateRoomNeedsMembership gives the reason: not
// CURSOR_EXPIRED for an old cursor, which would "send a removed member's
// client refetching or retrying instead of stopping".
//
// A well-formed cursor of the room's own list from another incarnation of
// the log (README, upgrading from before partitions: rooms survive the
// migration, "Cursors handed out before the migration are refused with
// CURSOR_EXPIRED") used to be refused by decodeCursor with CURSOR_EXPIRED
// before chat was asked about membership, so the removed member's client
// refetched instead of stopping.
func TestPrivateResumeForbiddenWhateverCursor(t *testing.T) {
	svc := startChat(t)
	room := aliceAndBobsRoom(t, svc, "secret")
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	if _, err := svc.PostMessage(ctx, alice, room.ID, "hello", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.RemoveMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}

	r := &Resolver{chat: svc, epoch: 2}
	before := (&Resolver{epoch: 1}).encodeCursor(roomScope(room.ID), 1) // the room's own list, an earlier log incarnation

	for _, viewer := range []string{"bob", "eve", ""} {
		subCtx, cancel := context.WithCancel(ctx)
		if viewer != "" {
			subCtx = auth.NewContext(subCtx, auth.Identity{UserID: viewer})
		}
		ch, err := r.Subscription().MessagePosted(subCtx, room.ID, &before)
		if err == nil {
			cancel()
			for range ch {
			}
			t.Errorf("%q resumed a private room they are not a member of", viewer)
			continue
		}
		cancel()
		if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != chat.CodeForbidden {
			t.Errorf("%q (not a member) resumes with an old incarnation's cursor: %v; want FORBIDDEN whatever the cursor", viewer, err)
		}
	}
}
