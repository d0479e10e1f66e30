package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Hard limits every replica enforces when it judges an event (checkRoomName,
// checkText, checkEmoji). They are constants, not settings,
// because every replica must judge every event identically; a proposer may
// apply stricter limits of its own before appending.
const (
	MaxRoomNameLength = 100  // characters
	MaxTextLength     = 4000 // characters
	MaxEmojiLength    = 32   // bytes
)

func checkRoomName(name string) *Error {
	trimmed := strings.TrimSpace(name)
	switch {
	case !utf8.ValidString(name):
		return errorf(CodeBadUserInput, "room name is not valid UTF-8")
	case trimmed == "":
		return errorf(CodeBadUserInput, "room name must not be empty")
	case trimmed != name:
		return errorf(CodeBadUserInput, "room name must not start or end with white space")
	case utf8.RuneCountInString(name) > MaxRoomNameLength:
		return errorf(CodeBadUserInput, "room name is longer than %d characters", MaxRoomNameLength)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return errorf(CodeBadUserInput, "room name must not contain control characters")
	}
	return nil
}

// roomNameKey is the form under which room names must be unique: names
// that are one ignoring case (strings.EqualFold: Unicode's simple case
// folding) have one key. Lower case alone is not that: it leaves the
// final sigma ς, the long s ſ and twenty other second lower-case forms
// apart from the letters they fold with (σ, s, …). Every other rune keys
// as its lower case, as the keys stored before did.
func roomNameKey(name string) string { return strings.Map(foldRune, name) }

// nameTakenKey is the form under which a proposed public room name is
// refused as taken: roomNameKey of its NFC form. Proposed names are stored
// in NFC (createRoom); rooms stored before in another spelling keep their
// directory key and still block their name.
func nameTakenKey(name string) string { return roomNameKey(norm.NFC.String(name)) }

func foldRune(r rune) rune {
	if unicode.SimpleFold(r) == r {
		return unicode.ToLower(r) // no other case: İ still keys as i, as before
	}
	return unicode.ToLower(unicode.ToUpper(r))
}

func checkText(text string) *Error {
	switch {
	case !utf8.ValidString(text):
		return errorf(CodeBadUserInput, "text is not valid UTF-8")
	case strings.TrimSpace(text) == "":
		return errorf(CodeBadUserInput, "text must not be empty")
	case utf8.RuneCountInString(text) > MaxTextLength:
		return errorf(CodeBadUserInput, "text is longer than %d characters", MaxTextLength)
	}
	return nil
}

func checkEmoji(emoji string) *Error {
	switch {
	case emoji == "":
		return errorf(CodeBadUserInput, "emoji must not be empty")
	case len(emoji) > MaxEmojiLength:
		return errorf(CodeBadUserInput, "emoji is longer than %d bytes", MaxEmojiLength)
	case !utf8.ValidString(emoji):
		return errorf(CodeBadUserInput, "emoji is not valid UTF-8")
	case strings.IndexFunc(emoji, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return errorf(CodeBadUserInput, "emoji must not contain white space or control characters")
	}
	return nil
}

func checkActor(a Actor) *Error {
	if a.ID == "" {
		return errorf(CodeUnauthenticated, "an identity is required")
	}
	return nil
}

// MaxUserIDLength bounds the user ID a member event names, in characters:
// the same limit, counted the same way, as auth.MaxUserIDLength puts on the
// identities that act, so that whoever can post can also be added to a
// private room (chat does not import auth; a test in graph holds the two
// together).
//
// It was 256 bytes until the two were made to agree. It is judged on
// replay (judgeMemberEvent, decodeEvent), so the change had to leave every
// stored event's verdict as it was: it only loosens (an ID of at most 256
// bytes has at most 256 characters), and no member event naming a longer
// ID was ever stored, since proposers refused it before appending
// (changeMember) with the very rule replicas judged by.
const MaxUserIDLength = 256

// maxUserIDBytes is the most bytes MaxUserIDLength characters of UTF-8
// take: a longer ID is refused before its characters are counted.
const maxUserIDBytes = MaxUserIDLength * utf8.UTFMax

// checkMemberID checks the user ID addMember and removeMember name. Users
// are not registered anywhere Herald can see (identities come from the
// authenticator), so any well-formed ID may be added.
func checkMemberID(id string) *Error {
	switch {
	case id == "":
		return errorf(CodeBadUserInput, "userId must not be empty")
	case len(id) > maxUserIDBytes:
		return errorf(CodeBadUserInput, "userId is longer than %d characters", MaxUserIDLength)
	case !utf8.ValidString(id):
		return errorf(CodeBadUserInput, "userId is not valid UTF-8")
	case utf8.RuneCountInString(id) > MaxUserIDLength:
		return errorf(CodeBadUserInput, "userId is longer than %d characters", MaxUserIDLength)
	case strings.IndexFunc(id, unicode.IsControl) >= 0:
		return errorf(CodeBadUserInput, "userId must not contain control characters")
	}
	return nil
}

// checkIdempotencyKey checks postMessage's idempotency key. It becomes part
// of a NATS header (Nats-Msg-Id), whose value NATS trims of white space and
// whose line breaks it turns into spaces: keys differing only there would
// be taken for one, so they are refused. It costs at most
// MaxIdempotencyKeyLength bytes' scan.
func checkIdempotencyKey(key string) *Error {
	switch {
	case len(key) > MaxIdempotencyKeyLength || !utf8.ValidString(key):
		return errorf(CodeBadUserInput, "idempotencyKey must be valid UTF-8 of at most %d bytes", MaxIdempotencyKeyLength)
	case strings.IndexFunc(key, unicode.IsControl) >= 0:
		return errorf(CodeBadUserInput, "idempotencyKey must not contain control characters")
	case strings.TrimSpace(key) != key:
		return errorf(CodeBadUserInput, "idempotencyKey must not start or end with white space")
	}
	return nil
}

// Rules a proposer applies on top of the hard ones (checkProposedText,
// checkProposedName, checkProposedEmoji). They came after events were
// first stored, so they are not part of judge: a room or directory
// judging its log with them would skip what earlier replicas accepted.

// invisible reports whether r shows nothing by itself: white space,
// format characters (zero-width space, joiners, marks of direction, the
// byte order mark, soft hyphen, tags), variation selectors, the other
// default-ignorable code points (fillers) and the braille blank, a symbol
// of no dots used as a filler as they are.
func invisible(r rune) bool {
	return unicode.IsSpace(r) || r == '\u2800' ||
		unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// blank reports whether s shows nothing.
func blank(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !invisible(r) }) < 0
}

// hiddenEdge reports whether s begins or ends with an invisible character,
// which would make it look like another (a name taken, an emoji used
// already). A variation selector or a cancel tag at the end is visible
// only when it closes a sequence Unicode defines (endsSequence).
func hiddenEdge(s string) bool {
	first, _ := utf8.DecodeRuneInString(s)
	last, n := utf8.DecodeLastRuneInString(s)
	return invisible(first) || invisible(last) && !endsSequence(s[:len(s)-n], last)
}

// endsSequence reports whether last, a variation selector or tag, closes a
// variation or tag sequence begun by the end of before. Anywhere else it
// shows nothing: "general\ufe0f" looks like "general", and so would a
// stray tag.
func endsSequence(before string, last rune) bool {
	base, _ := utf8.DecodeLastRuneInString(before)
	switch {
	case last == 0xE007F:
		// A cancel tag ends an emoji tag sequence: 🏴 and its tags, a
		// subdivision's flag (Scotland's: U+1F3F4, tags g b s c t, U+E007F).
		tags := strings.TrimRightFunc(before, func(r rune) bool { return r >= 0xE0020 && r <= 0xE007E })
		return len(tags) < len(before) && strings.HasSuffix(tags, "\U0001F3F4")
	case before == "" || invisible(base):
		return false
	case last == 0xFE0E || last == 0xFE0F:
		// Text or emoji style of a symbol (❤, ‼, ℹ or © then U+FE0F): the
		// bases are in the Common script and not ASCII (#, * and digits
		// become emoji only with a keycap, U+20E3, which is visible).
		return base > unicode.MaxASCII && unicode.Is(unicode.Common, base) && !unicode.IsDigit(base)
	case last >= 0xFE00 && last <= 0xFE0D:
		// Standardized variants: mathematical symbols, CJK compatibility
		// ideographs, Myanmar, Phags-pa and other scripts; never a Latin,
		// Greek or Cyrillic letter, nor a digit.
		return base > unicode.MaxASCII && !unicode.IsDigit(base) &&
			!unicode.In(base, unicode.Latin, unicode.Greek, unicode.Cyrillic)
	case last >= 0xE0100 && last <= 0xE01EF:
		return unicode.Is(unicode.Han, base) // an ideographic variation (葛 with U+E0100)
	case last >= 0x180B && last <= 0x180F:
		return unicode.Is(unicode.Mongolian, base) // a Mongolian free variation
	}
	return false
}

// checkProposedTextRules refuses a text that shows nothing, or holds
// control characters other than tabs and line breaks (a terminal's escape
// sequences, NUL), which no chat client shows as the author meant.
func checkProposedTextRules(text string) *Error {
	switch {
	case blank(text):
		return errorf(CodeBadUserInput, "text must not be empty")
	case strings.IndexFunc(text, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' }) >= 0:
		return errorf(CodeBadUserInput, "text must not contain control characters other than tabs and line breaks")
	}
	return nil
}

// checkProposedName is checkRoomName with the proposer's rules: a name
// that shows nothing, or begins or ends with an invisible character, is
// refused; "general\u200b" would pass for "general", which is taken.
func checkProposedName(name string) *Error {
	if err := checkRoomName(name); err != nil {
		return err
	}
	switch {
	case blank(name):
		return errorf(CodeBadUserInput, "room name must not be empty")
	case hiddenEdge(name):
		return errorf(CodeBadUserInput, "room name must not start or end with invisible characters")
	}
	return nil
}

// checkProposedEmoji is checkEmoji with the proposer's rules: an emoji
// that shows nothing, or begins or ends with an invisible character (a
// group of its own that looks like another), is refused.
func checkProposedEmoji(emoji string) *Error {
	if err := checkEmoji(emoji); err != nil {
		return err
	}
	switch {
	case blank(emoji):
		return errorf(CodeBadUserInput, "emoji must not be empty")
	case hiddenEdge(emoji):
		return errorf(CodeBadUserInput, "emoji must not start or end with invisible characters")
	}
	return nil
}

// checkVersion refuses a version no message ever has: a bad argument,
// not a stale one (CONFLICT) that refetching would fix.
func checkVersion(version int) *Error {
	if version < 1 {
		return errorf(CodeBadUserInput, "version must be at least 1, got %d", version)
	}
	return nil
}
