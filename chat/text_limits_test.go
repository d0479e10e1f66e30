package chat

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/pubsub"
	"golang.org/x/text/unicode/norm"
)

// Emoji a user can pick on a phone keyboard, each one grapheme.
var (
	kissWomanManTones   = "👩🏻\u200d❤\ufe0f\u200d💋\u200d👨🏼" // RGI since Emoji 13.1: 35 bytes
	kissPersonsTones    = "🧑🏻\u200d❤\ufe0f\u200d💋\u200d🧑🏿" // 35 bytes
	coupleHeartManTones = "👨🏻\u200d❤\ufe0f\u200d👨🏼"        // 28 bytes
	familyTones         = "👨🏻\u200d👩🏻\u200d👧🏻\u200d👦🏻"     // shown by some vendors: 41 bytes
	flagScotland        = "🏴\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"
)

// TestEmojiLength: an emoji is bounded in bytes, by a bound above every
// emoji a keyboard offers (the couples with two skin tones are 35 bytes,
// one grapheme). The bound is judged on replay (checkEmoji), so it may only
// loosen the one that judged the reactions already stored.
func TestEmojiLength(t *testing.T) {
	tests := []struct {
		name  string
		emoji string
		ok    bool
	}{
		{"thumbs up", "👍", true},
		{"kiss, woman and man with skin tones", kissWomanManTones, true},
		{"kiss, persons with skin tones", kissPersonsTones, true},
		{"couple with heart and skin tones", coupleHeartManTones, true},
		{"family with skin tones", familyTones, true},
		{"a subdivision's flag", flagScotland, true},
		{"at the limit", strings.Repeat("👍", MaxEmojiLength/4), true},
		{"over the limit", strings.Repeat("👍", MaxEmojiLength/4) + "x", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkProposedEmoji(tt.emoji)
			if (err == nil) != tt.ok {
				t.Fatalf("checkProposedEmoji(%+q, %d bytes) = %v, want accepted %v", tt.emoji, len(tt.emoji), err, tt.ok)
			}
			if !tt.ok && (err.Code != CodeBadUserInput || !strings.Contains(err.Message, "64 bytes")) {
				t.Fatalf("refused with %s %q, want BAD_USER_INPUT naming the limit", err.Code, err.Message)
			}
			// What the 32-byte judge accepted, this one must.
			if len(tt.emoji) <= 32 && checkEmoji(tt.emoji) != nil {
				t.Fatalf("checkEmoji refuses what the 32-byte rule accepted")
			}
		})
	}
}

// TestReactWithLongestStandardEmoji: a reaction with one of the longest
// standard emoji is stored and listed, and a second replica loading the
// room from the log (judging it on replay) lists it too.
func TestReactWithLongestStandardEmoji(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	room := mustRoom(t, a, "reactions")
	msg := mustPost(t, a, room.ID, "congratulations!")
	want := []string{kissWomanManTones, kissPersonsTones, familyTones}
	for _, emoji := range want {
		if _, err := a.React(ctx, alice, msg.ID, emoji); err != nil {
			t.Fatalf("react with %+q (%d bytes, one emoji): %v", emoji, len(emoji), err)
		}
	}
	page, err := b.Messages(ctx, room.ID, Window{Last: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 1 || len(page.Items[0].Reactions) != len(want) {
		t.Fatalf("replica b replayed %+v, want the message with %d reactions", page.Items, len(want))
	}
	for i, r := range page.Items[0].Reactions {
		if r.Emoji != want[i] {
			t.Errorf("reaction %d on replica b is %+q, want %+q", i, r.Emoji, want[i])
		}
	}
}

// TestRoomNameLengthCountedAsSent: a room name may be MaxRoomNameLength
// characters as its creator sends it, or as it is stored, in NFC. NFC
// makes some longer (the Devanagari letters with nukta, U+0958–U+095F, are
// two characters each, U+FB2C three), others shorter (e and U+0301 are
// é); the judge allows what NFC can make of the longest name, and what it
// allowed before.
func TestRoomNameLengthCountedAsSent(t *testing.T) {
	tests := []struct {
		name   string
		sent   string
		stored int // characters; 0 = refused
	}{
		{"ASCII at the limit", strings.Repeat("a", MaxRoomNameLength), MaxRoomNameLength},
		{"ASCII over the limit", strings.Repeat("a", MaxRoomNameLength+1), 0},
		{"Devanagari with nukta", strings.Repeat("\u095c\u095d", 30), 120},
		{"Devanagari with nukta at the limit", strings.Repeat("\u095c", MaxRoomNameLength), 2 * MaxRoomNameLength},
		{"Devanagari with nukta over the limit", strings.Repeat("\u095c", MaxRoomNameLength+1), 0},
		{"threefold in NFC at the limit", strings.Repeat("\ufb2c", MaxRoomNameLength), 3 * MaxRoomNameLength},
		{"decomposed, shorter in NFC", strings.Repeat("e\u0301", MaxRoomNameLength/2), MaxRoomNameLength / 2},
		{"decomposed, over the limit as sent only", strings.Repeat("e\u0301", MaxRoomNameLength/2+1), MaxRoomNameLength/2 + 1},
		{"decomposed, over the limit as stored too", strings.Repeat("e\u0301", MaxRoomNameLength+1), 0},
		{"more as sent than the judge allows", strings.Repeat("e\u0301", maxStoredRoomNameLength/2) + "e", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, err := checkProposedName(tt.sent)
			if tt.stored == 0 {
				if err == nil || err.Code != CodeBadUserInput || !strings.Contains(err.Message, "longer than 100 characters") {
					t.Fatalf("checkProposedName(%d characters) = %v, want BAD_USER_INPUT: longer than 100 characters", utf8.RuneCountInString(tt.sent), err)
				}
				return
			}
			if err != nil {
				t.Fatalf("checkProposedName(%d characters) refused: %v", utf8.RuneCountInString(tt.sent), err)
			}
			if n := utf8.RuneCountInString(name); n != tt.stored || name != norm.NFC.String(tt.sent) {
				t.Fatalf("stored as %d characters (NFC: %v), want the NFC form, %d", n, name == norm.NFC.String(tt.sent), tt.stored)
			}
			// The judge accepts what the proposer stores.
			if err := checkRoomName(name); err != nil {
				t.Fatalf("checkRoomName refuses the stored name: %v", err)
			}
		})
	}
	// The judge loosened: a name of at most 100 characters as stored, as
	// it judged names before, is still accepted.
	if err := checkRoomName(strings.Repeat("\u0958", MaxRoomNameLength)); err != nil {
		t.Fatalf("checkRoomName refuses a name of %d characters: %v", MaxRoomNameLength, err)
	}
	if err := checkRoomName(strings.Repeat("a", maxStoredRoomNameLength+1)); err == nil {
		t.Fatalf("checkRoomName accepts a name of %d characters", maxStoredRoomNameLength+1)
	}
}

// TestNFCLengthensAtMostThreefold: what maxStoredRoomNameLength rests on.
// No character is more than three in NFC, and the worst runs, with the
// U+034F norm adds after each 30 combining marks, stay within three times.
func TestNFCLengthensAtMostThreefold(t *testing.T) {
	var buf [utf8.UTFMax]byte
	for r := rune(0); r <= unicode.MaxRune; r++ {
		s := buf[:utf8.EncodeRune(buf[:], r)]
		if norm.NFC.IsNormal(s) {
			continue
		}
		if n := utf8.RuneCount(norm.NFC.Bytes(s)); n > 3 {
			t.Errorf("%U is %d characters in NFC", r, n)
		}
	}
	for _, s := range []string{
		strings.Repeat("\ufb2c", MaxRoomNameLength),
		strings.Repeat("\u0f73", MaxRoomNameLength), // two combining marks each
		"\ufb2c" + strings.Repeat("\u0f73", MaxRoomNameLength-1),
		"a" + strings.Repeat("\u0344", MaxRoomNameLength-1),
	} {
		if n := utf8.RuneCountInString(norm.NFC.String(s)); n > maxStoredRoomNameLength {
			t.Errorf("%+q... (%d characters) is %d in NFC", s[:8], utf8.RuneCountInString(s), n)
		}
	}
}

// TestLongNFCRoomNameOnReplay: a room whose name NFC made longer than 100
// characters is created, and a second replica's directory, judging the
// entry, lists it under that name.
func TestLongNFCRoomNameOnReplay(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sent := strings.Repeat("\u095c\u095d", 30) // ड़ढ़, precomposed, as Hindi keyboards may type them
	room, err := a.CreateRoom(ctx, alice, sent)
	if err != nil {
		t.Fatalf("a room name of %d characters refused: %v", utf8.RuneCountInString(sent), err)
	}
	if room.Name != norm.NFC.String(sent) {
		t.Fatalf("room named %+q, want the NFC form of %+q", room.Name, sent)
	}
	waitFor(t, "replica b's directory to list the room", func() bool {
		got, ok := b.RoomInfo(room.ID)
		return ok && got.Name == room.Name
	})
	if _, err := b.CreateRoom(ctx, bob, sent); err == nil {
		t.Error("the name was created again on replica b")
	}
}
