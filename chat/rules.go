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
// apply stricter limits of its own before appending. One may only ever be
// loosened: the log holds events judged by the old value, and a replica
// replaying them must reach every verdict it reached before.
const (
	// MaxRoomNameLength bounds a room name in characters, as its creator
	// sends it or as it is stored, in NFC (checkProposedName). NFC may make
	// it longer; the judge allows that (maxStoredRoomNameLength).
	MaxRoomNameLength = 100
	MaxTextLength     = 4000 // characters
	// MaxEmojiLength bounds a reaction's emoji, in bytes. It was 32 until
	// that refused emoji every phone keyboard offers: a kiss or a couple
	// with two skin tones (RGI since Emoji 13.1) is one emoji of 35 bytes,
	// and the families with a skin tone for each person some vendors show
	// take 41. Raising it only loosened the judge (checkEmoji, on replay):
	// every reaction stored before is judged as it was.
	MaxEmojiLength = 64
)

// maxStoredRoomNameLength is the judge's limit on a room name, in
// characters: the most NFC makes of MaxRoomNameLength characters sent.
// NFC lengthens a character at most threefold (U+FB2C, a Hebrew
// presentation form, is three code points in NFC; the Devanagari letters
// with nukta, U+0958–U+095F, two), and the U+034F that norm puts after
// each 30 combining marks in a row keeps within that. It was
// MaxRoomNameLength, counted after NFC, until that refused names shorter
// as typed (60 of ड़, U+095C, are 120 characters in NFC). Raising it only
// loosened the judge: every room stored before is judged as it was.
const maxStoredRoomNameLength = 3 * MaxRoomNameLength

// maxSentRoomNameLength is the most characters of a room name that a
// proposer puts through NFC (checkProposedName): the most a name of
// MaxRoomNameLength characters in NFC can be as sent. A character's
// canonical decomposition is at most four code points (U+1FAF, ᾯ, is Ω and
// three marks, as macOS may send it), so 100 of them are 400 as sent. It
// was maxStoredRoomNameLength, which refused names of 76 such characters.
const maxSentRoomNameLength = 4 * MaxRoomNameLength

func checkRoomName(name string) *Error {
	trimmed := strings.TrimSpace(name)
	switch {
	case !utf8.ValidString(name):
		return errorf(CodeBadUserInput, "room name is not valid UTF-8")
	case trimmed == "":
		return errorf(CodeBadUserInput, "room name must not be empty")
	case trimmed != name:
		return errorf(CodeBadUserInput, "room name must not start or end with white space")
	case utf8.RuneCountInString(name) > maxStoredRoomNameLength:
		return errorf(CodeBadUserInput, "room name is longer than %d characters", maxStoredRoomNameLength)
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
// refused as taken: composedNameKey of its NFC form. Proposed names are
// stored in NFC (createRoom); rooms stored before in another spelling keep
// their directory key and still block their name.
func nameTakenKey(name string) string { return composedNameKey(norm.NFC.String(name)) }

// composedNameKey is roomNameKey in NFC. Folding an NFC name rune by rune
// may leave it out of NFC: a capital with no precomposed form ("T\u0308",
// T̈, the capital of ẗ, U+1E97) folds to a letter and a mark that do
// compose ("t\u0308", whose NFC is ẗ), so without it the two cases of one
// name had two keys, and were two public rooms.
func composedNameKey(name string) string { return norm.NFC.String(roomNameKey(name)) }

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

// checkProposedMemberID is addMember's rule on top of the judge's
// (checkMemberID): the ID must be one an identity can have. auth refuses
// every white space character in a user ID but the space itself, U+0020
// (auth's checkUserName: the no-break space, the line and paragraph
// separators, the ideographic space, the rest of unicode.IsSpace), so such
// an ID names nobody who can ever sign in, and shows in the member list as
// a look-alike of someone who can ("bob\u00a0" reads "bob"). chat does not
// import auth: the rule is stated again here, and TestUserIDWhiteSpaceAgrees
// (graph) holds the two together.
//
// It is not part of the judge: member events naming such IDs may be in the
// log already, and a replica replaying them must accept them as before.
// removeMember does not apply it either, so those members can be removed.
func checkProposedMemberID(id string) *Error {
	if strings.ContainsFunc(id, func(r rune) bool { return r != ' ' && unicode.IsSpace(r) }) {
		return errorf(CodeBadUserInput, "userId must not contain white space other than the space character (U+0020)")
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
		tags := strings.TrimRightFunc(before, isTag)
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

// checkProposedName checks a room name as its creator sent it and returns
// the name to store: its NFC form, so that the two spellings of "Café"
// ("Cafe\u0301" and "Caf\u00e9") are one name, not two rooms that look
// alike. It may be MaxRoomNameLength characters as sent or as stored:
// NFC makes some names longer (ड़, U+095C, as Hindi keyboards may type
// it, is two characters in NFC) and others shorter (e and U+0301, as
// macOS may send it, is one: é), and the user typed what they see. A name
// longer as sent than any of MaxRoomNameLength characters in NFC can be
// (maxSentRoomNameLength) is refused before NFC, which bounds its work.
// The rest is checked as stored: the judge's rules (checkRoomName), then
// the proposer's: a name that shows nothing, begins or ends with an
// invisible character, or holds one inside that is not part of what it
// shows (hiddenInside), is refused; "general\u200b" and "gen\u200beral"
// would pass for "general".
func checkProposedName(sent string) (string, *Error) {
	tooLong := func() *Error {
		return errorf(CodeBadUserInput, "room name is longer than %d characters", MaxRoomNameLength)
	}
	sentLength := utf8.RuneCountInString(sent)
	switch {
	case !utf8.ValidString(sent):
		return "", errorf(CodeBadUserInput, "room name is not valid UTF-8")
	case sentLength > maxSentRoomNameLength:
		return "", tooLong()
	}
	name := norm.NFC.String(sent)
	if sentLength > MaxRoomNameLength && utf8.RuneCountInString(name) > MaxRoomNameLength {
		return "", tooLong()
	}
	if err := checkRoomName(name); err != nil {
		return "", err
	}
	switch {
	case blank(name):
		return "", errorf(CodeBadUserInput, "room name must not be empty")
	case hiddenEdge(name):
		return "", errorf(CodeBadUserInput, "room name must not start or end with invisible characters")
	}
	if at := hiddenInside(name); at >= 0 {
		return "", hiddenInsideError(sent, name, at)
	}
	return name, nil
}

const (
	zwj  = '\u200d' // zero-width joiner
	zwnj = '\u200c' // zero-width non-joiner
)

// ignorable reports whether r is one of Unicode's default-ignorable code
// points (Default_Ignorable_Code_Point, derived as DerivedCoreProperties.txt
// derives it, which package unicode has no table of): characters that
// show nothing of their own, such as the zero-width space and joiners, the
// word joiner, the soft hyphen, the combining grapheme joiner, marks of
// direction, the Mongolian vowel separator, fillers, variation selectors
// and tags. Unlike invisible, it leaves out white space, which shows as
// space, and the format characters that show (the Arabic number signs).
func ignorable(r rune) bool {
	switch {
	case r < '\u00ad':
		return false // ASCII and most of Latin-1: most names hold nothing else
	case unicode.Is(unicode.White_Space, r),
		r >= 0xFFF9 && r <= 0xFFFB,   // interlinear annotation
		r >= 0x13430 && r <= 0x13440, // Egyptian hieroglyph format controls
		unicode.Is(unicode.Prepended_Concatenation_Mark, r):
		return false
	}
	return unicode.In(r, unicode.Cf, unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// hiddenInside returns the byte offset in s of the first default-ignorable
// character that is not part of what s shows (shownInside), or -1: inside
// a word, as at its ends, one would make it pass for the word without it.
func hiddenInside(s string) int {
	for i, r := range s {
		if ignorable(r) && !shownInside(s[:i], r, s[i+utf8.RuneLen(r):]) {
			return i
		}
	}
	return -1
}

// shownInside reports whether r, a default-ignorable character between
// before and after, is part of what they show: a zero-width joiner or
// non-joiner where it may join (joins), the emoji style of a keycap's
// digit, # or * (1️⃣: 1, U+FE0F, U+20E3), a tag inside a subdivision's
// flag, or what ends a sequence Unicode defines (endsSequence: a
// variation selector right after a character it varies, a flag's cancel
// tag).
func shownInside(before string, r rune, after string) bool {
	switch {
	case r == zwj || r == zwnj:
		return joins(before, after)
	case r == 0xFE0F && strings.HasPrefix(after, "\u20e3"):
		if base, _ := utf8.DecodeLastRuneInString(before); base == '#' || base == '*' || base >= '0' && base <= '9' {
			return true
		}
	case isTag(r):
		// The black flag, tags, the cancel tag (Scotland's: U+1F3F4, tags
		// g b s c t, U+E007F).
		return strings.HasSuffix(strings.TrimRightFunc(before, isTag), "\U0001F3F4") &&
			strings.HasPrefix(strings.TrimLeftFunc(after, isTag), "\U000E007F")
	}
	return endsSequence(before, r)
}

// isTag reports whether r is a tag character other than the cancel tag.
func isTag(r rune) bool { return r >= 0xE0020 && r <= 0xE007E }

// joins reports whether a zero-width joiner or non-joiner between before
// and after may change how they show: both of them are characters of
// scripts that join (joinable), and neither is another joiner, nor is the
// next one invisible. So emoji (👨‍👩‍👧), Persian (می‌خواهم) and the Indic
// scripts (क्‍ष) keep theirs; between ASCII or Latin, Greek or Cyrillic
// letters, which never join, it would only hide.
//
// Right after a virama one may be followed by anything shown: it chooses
// the form of the consonant before the virama, and a Malayalam chillu
// spelled as before Unicode 5.1 (ന് + U+200D, ൻ), which ends a word, is
// followed by a space or a mark of punctuation.
func joins(before, after string) bool {
	prev, _ := utf8.DecodeLastRuneInString(before)
	next, _ := utf8.DecodeRuneInString(after)
	if before == "" || after == "" || prev == zwj || prev == zwnj || ignorable(next) {
		return false
	}
	return isVirama(prev) || joinable(prev) && joinable(next)
}

// isVirama reports whether r is a virama (a killer of the vowel of the
// consonant before it: canonical combining class 9), of a script that
// joins.
func isVirama(r rune) bool {
	return r > unicode.MaxASCII && norm.NFC.PropertiesString(string(r)).CCC() == 9
}

// joinable reports whether a joiner or non-joiner next to r may be part
// of what it shows: r is a letter, mark or symbol (emoji are symbols, and
// their skin tones modifier symbols; a variation selector is a mark), not
// ASCII and not of the Latin, Greek or Cyrillic scripts.
func joinable(r rune) bool {
	return r > unicode.MaxASCII && unicode.In(r, unicode.L, unicode.M, unicode.So, unicode.Sk) &&
		!unicode.In(r, unicode.Latin, unicode.Greek, unicode.Cyrillic)
}

// hiddenInsideError says which character of name, the NFC form of sent,
// hides at byte offset at, and where: in characters from 1 of the name as
// sent, which the user typed. NFC leaves default-ignorable characters as
// they are and in their order (none composes, decomposes or is reordered),
// save the U+034F norm puts after each 30 combining marks in a row (the
// Stream-Safe Text Format), which the user did not send.
func hiddenInsideError(sent, name string, at int) *Error {
	r, _ := utf8.DecodeRuneInString(name[at:])
	nth := strings.Count(name[:at], string(r)) // those before it
	pos := 0
	for _, c := range sent {
		pos++
		if c != r {
			continue
		}
		if nth > 0 {
			nth--
			continue
		}
		why := "it shows nothing and would make the name pass for one without it"
		switch {
		case r == zwj || r == zwnj:
			why = "zero-width joiners and non-joiners are kept only between emoji or letters of scripts that join, or after a virama"
		case unicode.Is(unicode.Variation_Selector, r):
			why = "variation selectors are kept only right after a character they vary (an emoji, a CJK ideograph)"
		case isTag(r) || r == 0xE007F:
			why = "tags are kept only inside a subdivision's flag"
		}
		return errorf(CodeBadUserInput, "room name must not contain %U at character %d: %s", r, pos, why)
	}
	return errorf(CodeBadUserInput, "room name must not stack more than 30 combining marks on one character")
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

// MaxReactionGroups bounds the distinct emoji one message's reactions may
// hold. Every change of a message, a reaction toggled included, sends each
// roomEvents subscriber the whole message with all its groups, so without
// it one user toggling distinct emoji (each a small react, up to
// --room-history − 1 of them) made every later event of the message a
// payload of up to ~850 KB per subscriber; and a query's complexity counts
// a message's reactions as this many groups (graph's complexity). 20 is
// what Discord allows on a message (Slack 23, GitHub offers 8), and keeps a
// page of 10 rooms × 10 messages with their reactions within the default
// --max-complexity of 10,000.
//
// It is a proposer's rule (checkProposedReaction), not the judge's: the log
// may hold messages given more groups before it existed, or by replicas of
// an earlier version during an upgrade, and every replica must load and
// apply them as before.
const MaxReactionGroups = 20

// checkProposedReaction refuses a reaction with emoji that would add a
// group to message id, whose groups are reactions, once it holds
// MaxReactionGroups (or more, stored before the cap). Toggling an emoji the
// message has, on or off, is always allowed: anyone may still join a
// reaction, or take theirs back. It is judged against the room at the
// proposal's position (judgeProposal), so every replica decides alike.
// Below the cap, as nearly every toggle is, it costs one comparison.
func checkProposedReaction(id string, reactions []*Reaction, emoji string) *Error {
	if len(reactions) < MaxReactionGroups {
		return nil
	}
	for _, r := range reactions {
		if r.Emoji == emoji {
			return nil
		}
	}
	return errorf(CodeBadUserInput, "message %s already has reactions with %d different emoji, the most a message may have: react with one of those",
		id, MaxReactionGroups)
}

// checkVersion refuses a version no message ever has: a bad argument,
// not a stale one (CONFLICT) that refetching would fix.
func checkVersion(version int) *Error {
	if version < 1 {
		return errorf(CodeBadUserInput, "version must be at least 1, got %d", version)
	}
	return nil
}
