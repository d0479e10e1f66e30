package chat

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/heraldhq/herald/pubsub"
)

// TestRoomNameInvisibleInside: a room name holding a character that shows
// nothing, anywhere in it, is refused by the proposer, naming the character
// and where it stands in the name as sent: "gen\u200beral" shows as
// "general". The zero-width joiner and non-joiner are kept where they join
// (emoji, Persian, the Indic scripts), variation selectors right after a
// character they vary, tags inside a subdivision's flag.
func TestRoomNameInvisibleInside(t *testing.T) {
	scotland := "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"
	tests := []struct {
		name string
		sent string
		want string // a part of the error; "" = accepted
	}{
		{"zero-width space", "gen\u200beral", "U+200B at character 4"},
		{"word joiner", "gen\u2060eral", "U+2060 at character 4"},
		{"soft hyphen", "gene\u00adral", "U+00AD at character 5"},
		{"combining grapheme joiner", "gen\u034feral", "U+034F at character 4"},
		{"Mongolian vowel separator", "gen\u180eeral", "U+180E at character 4"},
		{"byte order mark", "gen\ufefferal", "U+FEFF at character 4"},
		{"left-to-right mark", "gen\u200eeral", "U+200E at character 4"},
		{"right-to-left override", "gen\u202eeral", "U+202E at character 4"},
		{"Arabic letter mark", "gen\u061ceral", "U+061C at character 4"},
		{"Hangul filler", "gen\u3164eral", "U+3164 at character 4"},
		{"zero-width joiner between ASCII letters", "gen\u200deral", "U+200D at character 4: zero-width joiners"},
		{"zero-width non-joiner between ASCII letters", "gen\u200ceral", "U+200C at character 4"},
		{"zero-width joiner between Latin letters", "gé\u200déral", "U+200D at character 3"},
		{"zero-width joiner between Cyrillic letters", "пр\u200dивет", "U+200D at character 3"},
		{"zero-width joiner after a space", "a \u200d👍", "U+200D at character 3"},
		{"two zero-width joiners", "👨\u200d\u200d👩", "U+200D at character 2"},
		{"joiner before a variation selector", "❤\u200d\ufe0f🔥", "U+200D at character 2"},
		{"emoji style after a letter", "gen\ufe0feral", "U+FE0F at character 4: variation selectors"},
		{"emoji style after a digit, no keycap", "room 1\ufe0f!", "U+FE0F at character 7"},
		{"stray tag", "gen\U000E0067eral", "U+E0067 at character 4: tags"},
		{"tags without their flag", "a\U000E0067\U000E0062\U000E007Fb", "U+E0067 at character 2"},
		{"a flag's tags without the cancel tag", "\U0001F3F4\U000E0067\U000E0062 b", "U+E0067 at character 2"},
		{"the first of two", "a\u200bb\u200bc", "U+200B at character 2"},
		{"a joiner after one kept", "👨\u200d👩 gen\u200deral", "U+200D at character 8"},
		{"a joiner after one kept and a decomposed letter", "Cafe\u0301 👨\u200d👩 a\u200db", "U+200D at character 12"},
		// Counted as sent: "e\u0301" is one character (é) as stored, two as sent.
		{"after a decomposed letter", "Cafe\u0301\u200bx", "U+200B at character 6"},

		{"plain", "general", ""},
		{"spaces", "general chat", ""},
		{"a no-break space", "general\u00a0chat", ""},
		{"precomposed and decomposed letters", "Café Cafe\u0301", ""},
		{"a family", "family 👨\u200d👩\u200d👧 room", ""},
		{"a kiss with skin tones", "👩🏻\u200d❤\ufe0f\u200d💋\u200d👨🏼 fans", ""},
		{"a heart on fire", "❤\ufe0f\u200d🔥 club", ""},
		// A Malayalam chillu spelled as before Unicode 5.1, consonant +
		// virama + ZWJ, ends a word: a space or a comma follows it.
		{"a Malayalam chillu before a space", "അവന്\u200d വന്നു", ""},
		{"Malayalam chillus before a comma", "കേരളത്തിന്\u200d, മക്കള്\u200d ക്ലബ്", ""},
		{"two joiners after a virama", "അവന്\u200d\u200d വന്നു", "U+200D at character 5"},
		{"emoji style inside", "I ❤\ufe0f Go", ""},
		{"text style inside", "I ❤\ufe0e Go", ""},
		{"a keycap", "room 1\ufe0f\u20e3 and #\ufe0f\u20e3", ""},
		{"Persian with a non-joiner", "می\u200cخواهم برنامه", ""},
		{"Hindi with a joiner", "क्\u200dष प्रोग्राम", ""},
		{"Sinhala with a joiner", "ශ්\u200dරී ලංකා", ""},
		{"a subdivision's flag inside", scotland + " fans", ""},
		{"an ideographic variation", "\u845b\U000E0100飾区", ""},
		{"a Mongolian free variation", "\u1820\u180b\u1821", ""},
		{"a Mongolian vowel separator in Mongolian", "\u182d\u180e\u1820", ""},
		{"a braille blank inside", "a\u2800b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkProposedName(tt.sent)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("checkProposedName(%+q) refused: %v", tt.sent, err)
			case tt.want == "":
			case err == nil:
				t.Fatalf("checkProposedName(%+q) accepted, want %q", tt.sent, tt.want)
			case err.Code != CodeBadUserInput || !strings.Contains(err.Message, tt.want):
				t.Fatalf("checkProposedName(%+q) = %s %q, want BAD_USER_INPUT with %q", tt.sent, err.Code, err.Message, tt.want)
			}
		})
	}
}

// TestRoomNameStackedMarks: NFC (norm's Stream-Safe Text Format) puts a
// U+034F after each 30 combining marks in a row; a name holding one is
// refused for what the user sent, not for a character they did not type.
func TestRoomNameStackedMarks(t *testing.T) {
	_, err := checkProposedName("e" + strings.Repeat("\u0301", 40) + " room")
	if err == nil || err.Code != CodeBadUserInput || !strings.Contains(err.Message, "30 combining marks") {
		t.Fatalf("a letter with 40 marks: %v, want BAD_USER_INPUT about combining marks", err)
	}
	if _, err := checkProposedName("e" + strings.Repeat("\u0301", 20) + " room"); err != nil {
		t.Fatalf("a letter with 20 marks: %v", err)
	}
}

// TestLookalikeRoomNamesRefused: a public room name that shows as a taken
// one because of an invisible character inside it is refused, before
// anything is appended, and the two rooms that would look alike are never
// made; a private room's name is held to the same rule.
func TestLookalikeRoomNamesRefused(t *testing.T) {
	log := &countingLog{Log: openLog(t, pubsub.Options{})}
	svc := startService(t, log, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mustRoom(t, svc, "general")
	public := func(name string) error { _, err := svc.CreateRoom(ctx, bob, name); return err }
	private := func(name string) error { _, err := svc.CreatePrivateRoom(ctx, bob, name); return err }
	tests := []struct {
		name   string
		create func(string) error
		sent   string
	}{
		{"zero-width space", public, "gen\u200beral"},
		{"word joiner", public, "gen\u2060eral"},
		{"soft hyphen", public, "gene\u00adral"},
		{"combining grapheme joiner", public, "gen\u034feral"},
		{"Mongolian vowel separator", public, "gen\u180eeral"},
		{"private, zero-width space", private, "pla\u200bns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := log.appends.Load()
			wantCode(t, tt.create(tt.sent), CodeBadUserInput)
			if log.appends.Load() != before {
				t.Fatal("a name the rules refuse was appended to the directory")
			}
		})
	}
	// What emoji and Persian need still makes a room.
	for _, name := range []string{"family 👨\u200d👩\u200d👧", "می\u200cخواهم"} {
		mustRoom(t, svc, name)
	}
}

// TestIgnorableIsDefaultIgnorable: ignorable is Unicode's
// Default_Ignorable_Code_Point, listed here as DerivedCoreProperties.txt
// (Unicode 15.0, the version of package unicode) lists it.
func TestIgnorableIsDefaultIgnorable(t *testing.T) {
	listed := []struct{ lo, hi rune }{
		{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x061C, 0x061C}, {0x115F, 0x1160},
		{0x17B4, 0x17B5}, {0x180B, 0x180F}, {0x200B, 0x200F}, {0x202A, 0x202E},
		{0x2060, 0x206F}, {0x3164, 0x3164}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF},
		{0xFFA0, 0xFFA0}, {0xFFF0, 0xFFF8}, {0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A},
		{0xE0000, 0xE0FFF},
	}
	if unicode.Version != "15.0.0" {
		t.Skipf("the list is Unicode 15.0's; package unicode is %s", unicode.Version)
	}
	next := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		for next < len(listed) && r > listed[next].hi {
			next++
		}
		want := next < len(listed) && r >= listed[next].lo
		if got := ignorable(r); got != want {
			t.Errorf("ignorable(%U) = %v, want %v", r, got, want)
		}
	}
}
