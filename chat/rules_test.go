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

// TestHiddenEdge: a name or emoji that begins or ends with something that
// shows nothing is refused, as it would pass for another ("general\u200b"
// for "general"). A variation selector or cancel tag at the end shows
// something only when it closes a sequence Unicode defines; anywhere else
// it is as invisible as a zero-width space.
func TestHiddenEdge(t *testing.T) {
	scotland := "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"
	tests := []struct {
		name   string
		s      string
		hidden bool
	}{
		{"plain", "general", false},
		{"zero-width space at the end", "general\u200b", true},
		{"byte order mark at the start", "\ufeffgeneral", true},
		{"emoji style of a heart", "love \u2764\ufe0f", false},
		{"text style of a heart", "\u2764\ufe0e", false},
		{"emoji style of a double exclamation", "\u203c\ufe0f", false},
		{"emoji style of information", "\u2139\ufe0f", false},
		{"emoji style of the copyright sign", "\u00a9\ufe0f", false},
		{"emoji style in a ZWJ sequence", "\U0001F575\ufe0f\u200d\u2642\ufe0f", false},
		{"a subdivision's flag", scotland, false},
		{"a standardized variant of a math symbol", "\u2229\ufe00", false},
		{"an ideographic variation", "\u845b\U000E0100", false},
		{"a Mongolian free variation", "\u1820\u180b", false},

		{"emoji style after a letter", "general\ufe0f", true},
		{"text style after a letter", "general\ufe0e", true},
		{"emoji style after a digit", "room1\ufe0f", true},
		{"emoji style after ASCII punctuation", "room#\ufe0f", true},
		{"emoji style after a Han letter", "\u4e2d\u6587\ufe0f", true},
		{"emoji style after a zero-width joiner", "\u2764\u200d\ufe0f", true},
		{"variation selector alone", "\ufe0f", true},
		{"standardized variant after a Latin letter", "general\ufe00", true},
		{"standardized variant after a Cyrillic letter", "\u0431\ufe00", true},
		{"ideographic variation after a Latin letter", "general\U000E0100", true},
		{"Mongolian variation after a Latin letter", "general\u180b", true},
		{"a lone tag", "general\U000E0067", true},
		{"a tag after an emoji", "\U0001F44D\U000E0067", true},
		{"a cancel tag after a letter", "general\U000E007F", true},
		{"a cancel tag with tags after a letter", "general\U000E0067\U000E007F", true},
		{"a cancel tag right after the black flag", "\U0001F3F4\U000E007F", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hiddenEdge(tt.s); got != tt.hidden {
				t.Errorf("hiddenEdge(%+q) = %v, want %v", tt.s, got, tt.hidden)
			}
		})
	}
}
