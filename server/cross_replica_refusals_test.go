package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// Behind a plain load balancer, a client's next request may reach another
// replica than the one that answered its mutation. These tests make a
// change on replica A and, once A has answered, send the next command that
// depends on it to replica B, which holds the room (as a replica with a
// subscriber or a recent reader of the room does). B judged the command
// against the room as it held it, without first catching up with the log,
// and refused what the log would accept (a reaction to a message "that
// does not exist", an edit at a version "not current", a new member's post
// or read as FORBIDDEN), often with codes clients do not retry. A refusal
// is confirmed with the log now (chat.Service.reachLog).
//
// The calls go straight to each replica's chat.Service, which is what the
// thin resolvers call; over HTTP the same happens whenever B lags A by
// more than the client's round trip (a NATS hop to another node, a busy
// replica).

// ordPairHolding starts two replicas over one log and a public room
// created on A that B holds (loaded by a read and kept, receiving its live
// events).
func ordPairHolding(t *testing.T, name string) (a, b *replica, room string) {
	t.Helper()
	a, b = newReplicaPair(t, nil)
	room = a.room(name)
	if _, err := b.chat.RoomStats(context.Background(), room); err != nil {
		t.Fatalf("B reads the room: %v", err)
	}
	return a, b, room
}

const ordRounds = 60

func TestReactOnOtherReplicaRightAfterPost(t *testing.T) {
	a, b, room := ordPairHolding(t, "react")
	ctx := context.Background()
	var refused []string
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < ordRounds && time.Now().Before(deadline); i++ {
		m := a.post(room, "alice", fmt.Sprintf("m%d", i))
		if _, err := b.chat.React(ctx, chat.Actor{ID: "bob"}, m.ID, "👍"); err != nil {
			refused = append(refused, fmt.Sprintf("round %d: %s", i, describeChatErr(err)))
		}
	}
	if len(refused) > 0 {
		t.Fatalf("%d of %d reactions sent to replica B after A had answered the post were refused, e.g. %s",
			len(refused), ordRounds, refused[0])
	}
}

func TestEditOnOtherReplicaRightAfterEdit(t *testing.T) {
	a, b, room := ordPairHolding(t, "ord-edit")
	ctx := context.Background()
	m := a.post(room, "alice", "v1")
	waitFor(t, "B to apply the post", func() bool {
		_, ok, _ := b.chat.Message(ctx, "", m.ID)
		return ok
	})
	version := m.Version
	var refused []string
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < ordRounds && time.Now().Before(deadline); i++ {
		// The client edits through A, then edits again, with the version
		// A answered, through B.
		edited, err := a.chat.EditMessage(ctx, chat.Actor{ID: "alice"}, m.ID, version, fmt.Sprintf("a%d", i))
		if err != nil {
			t.Fatalf("edit on A: %v", err)
		}
		again, err := b.chat.EditMessage(ctx, chat.Actor{ID: "alice"}, m.ID, edited.Version, fmt.Sprintf("b%d", i))
		if err != nil {
			refused = append(refused, fmt.Sprintf("round %d (version %d): %s", i, edited.Version, describeChatErr(err)))
			// Go on from the log's current version.
			waitFor(t, "B to apply A's edit", func() bool {
				cur, ok, _ := b.chat.Message(ctx, "", m.ID)
				return ok && cur.Version == edited.Version
			})
			version = edited.Version
			continue
		}
		version = again.Version
		waitFor(t, "A to apply B's edit", func() bool {
			cur, ok, _ := a.chat.Message(ctx, "", m.ID)
			return ok && cur.Version == version
		})
	}
	if len(refused) > 0 {
		t.Fatalf("%d of %d edits sent to replica B with the version A had just answered were refused, e.g. %s",
			len(refused), ordRounds, refused[0])
	}
}

// A member added through A a moment ago posts, or reads the room, through
// B, and was told FORBIDDEN (which clients do not retry), while B's own
// subscription path (Admits, confirmJoiner) looked at the log again.
func TestNewMemberOnOtherReplicaRightAfterAddMember(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(ctx context.Context, b *replica, room string) error
	}{
		{"post", func(ctx context.Context, b *replica, room string) error {
			_, err := b.chat.PostMessage(ctx, chat.Actor{ID: "bob"}, room, "hi", "")
			return err
		}},
		{"read", func(ctx context.Context, b *replica, room string) error {
			_, _, err := b.chat.VisibleRoom(ctx, "bob", room)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newReplicaPair(t, nil)
			ctx := context.Background()
			var refused []string
			const rounds = 20
			deadline := time.Now().Add(40 * time.Second)
			for i := 0; i < rounds && time.Now().Before(deadline); i++ {
				room, err := a.chat.CreatePrivateRoom(ctx, chat.Actor{ID: "owner"}, fmt.Sprintf("plans%d", i))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := b.chat.RoomStats(ctx, room.ID); err != nil { // B holds it
					t.Fatal(err)
				}
				if _, err := a.chat.AddMember(ctx, chat.Actor{ID: "owner"}, room.ID, "bob"); err != nil {
					t.Fatal(err)
				}
				// bob, told he was added, acts; his request reaches B.
				if err := tc.act(ctx, b, room.ID); err != nil {
					refused = append(refused, fmt.Sprintf("round %d: %s", i, describeChatErr(err)))
				}
			}
			if len(refused) > 0 {
				t.Fatalf("%d of %d %ss by a member added through A a moment before, sent to B, were refused, e.g. %s",
					len(refused), rounds, tc.name, refused[0])
			}
		})
	}
}

func describeChatErr(err error) string {
	var ce *chat.Error
	if errors.As(err, &ce) {
		return fmt.Sprintf("%s: %s", ce.Code, ce.Message)
	}
	return err.Error()
}
