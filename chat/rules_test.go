package chat

import (
	"context"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/pubsub"
)

// TestMemberIDLimit: a member's user ID is bounded in characters, as the
// identities that post are (auth.MaxUserIDLength), not in bytes: an ID of
// 256 non-ASCII characters names a user who can post, so it can be added.
func TestMemberIDLimit(t *testing.T) {
	tests := []struct {
		name string
		id   string
		want Code // "" = accepted
	}{
		{"ASCII at the limit", strings.Repeat("a", MaxUserIDLength), ""},
		{"two-byte characters at the limit", strings.Repeat("é", MaxUserIDLength), ""},
		{"four-byte characters at the limit", strings.Repeat("😀", MaxUserIDLength), ""},
		{"ASCII over the limit", strings.Repeat("a", MaxUserIDLength+1), CodeBadUserInput},
		{"two-byte characters over the limit", strings.Repeat("é", MaxUserIDLength+1), CodeBadUserInput},
		{"four-byte characters over the limit", strings.Repeat("😀", MaxUserIDLength+1), CodeBadUserInput},
		{"far too long", strings.Repeat("a", 1<<20), CodeBadUserInput},
		{"empty", "", CodeBadUserInput},
		{"not UTF-8", "bob\xff", CodeBadUserInput},
		{"a control character", "bob\x00", CodeBadUserInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkMemberID(tt.id)
			if codeOf(got) != tt.want {
				t.Fatalf("checkMemberID = %v, want %q", got, tt.want)
			}
			// The rule is judged on replay: it may only loosen the one that
			// judged the events already stored, or a replica would now skip
			// an event every replica accepted before.
			if acceptedByByteRule(tt.id) && got != nil {
				t.Fatalf("checkMemberID refuses what the byte rule accepted: %v", got)
			}
		})
	}
}

// acceptedByByteRule is the member ID rule before it counted characters:
// at most 256 bytes of UTF-8 without control characters.
func acceptedByByteRule(id string) bool {
	return id != "" && len(id) <= 256 && utf8.ValidString(id) && strings.IndexFunc(id, unicode.IsControl) < 0
}

// TestMemberIDLimitOnReplay: a member event naming a long non-ASCII user
// ID, accepted and stored by one replica, is judged the same by a replica
// that loads the room from the log and by every replica's member index: the
// user is a member, and what they posted as one stands.
func TestMemberIDLimitOnReplay(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx := context.Background()
	long := Actor{ID: strings.Repeat("é", MaxUserIDLength)}

	room, err := a.CreatePrivateRoom(ctx, alice, "long names")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, alice, room.ID, long.ID); err != nil {
		t.Fatalf("adding a user of %d characters (%d bytes): %v", MaxUserIDLength, len(long.ID), err)
	}
	if _, err := a.PostMessage(ctx, long, room.ID, "hello", ""); err != nil {
		t.Fatalf("the added user posts: %v", err)
	}
	// b has not held the room: it loads it from the log.
	page, err := b.Messages(ctx, room.ID, Window{Last: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || page.Items[0].Author.ID != long.ID {
		t.Fatalf("replica b replayed messages %+v, want the long-named user's post", page.Items)
	}
	if ok, err := b.CanSee(ctx, long.ID, room.ID); !ok || err != nil {
		t.Fatalf("replica b: the long-named user can see the room: %v, %v", ok, err)
	}
	waitFor(t, "replica b's member index to list the room", func() bool {
		rooms, err := b.Rooms(ctx, long.ID, Window{First: 10})
		return err == nil && len(rooms.Items) == 1 && rooms.Items[0].ID == room.ID
	})
	if _, err := b.RemoveMember(ctx, long, room.ID, long.ID); err != nil {
		t.Fatalf("the long-named user leaves: %v", err)
	}
}
