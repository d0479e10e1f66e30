package graph

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// TestPrivateMessagesWithoutEngineNeedMembership: without an engine
// sharing the execution (no auth.Guard on the context), restrict itself
// refuses a non-member's (or an anonymous) live subscription to a private
// room with FORBIDDEN. chat.Watch takes no viewer, so that check is the
// only one on this path; without it the subscription was accepted, then
// ended silently at the room's next event.
func TestPrivateMessagesWithoutEngineNeedMembership(t *testing.T) {
	svc := startChat(t)
	r := &Resolver{chat: svc, epoch: 1}
	ctx := context.Background()
	room, err := svc.CreatePrivateRoom(ctx, chat.Actor{ID: "alice"}, "secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, viewer := range []string{"eve", ""} {
		subCtx, cancel := context.WithCancel(ctx)
		if viewer != "" {
			subCtx = auth.NewContext(subCtx, auth.Identity{UserID: viewer})
		}
		ch, err := r.Subscription().MessagePosted(subCtx, room.ID, nil)
		if err == nil {
			cancel()
			for range ch {
			}
			t.Errorf("%q (not a member) subscribed to a private room's messages", viewer)
			continue
		}
		cancel()
		if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != chat.CodeForbidden {
			t.Errorf("%q (not a member) subscribes: %v, want FORBIDDEN", viewer, err)
		}
	}
}

// TestPrivatePresenceWithoutEngineNeedsMembership: the same for
// roomPresence, which tells who is in and typing in the room: roomExists
// is called without a membership check, so restrict's refusal is the only
// one; without it a non-member's presence subscription ran with no filter
// at all.
func TestPrivatePresenceWithoutEngineNeedsMembership(t *testing.T) {
	svc := startChat(t)
	r := &Resolver{chat: svc, epoch: 1, presence: &flakyPresence{}, typing: newTypingThrottle(time.Second, typingKeep)}
	ctx := context.Background()
	room, err := svc.CreatePrivateRoom(ctx, chat.Actor{ID: "alice"}, "whispers")
	if err != nil {
		t.Fatal(err)
	}
	subCtx, cancel := context.WithTimeout(auth.NewContext(ctx, auth.Identity{UserID: "eve"}), 5*time.Second)
	defer cancel()
	ch, err := r.Subscription().RoomPresence(subCtx, room.ID)
	if err == nil {
		cancel()
		for range ch {
		}
		t.Fatal("eve (not a member) subscribed to a private room's presence")
	}
	if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != chat.CodeForbidden {
		t.Fatalf("eve (not a member) subscribes to presence: %v, want FORBIDDEN", err)
	}
}
