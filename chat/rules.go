package chat

import (
	"strings"
	"unicode"
	"unicode/utf8"
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

// roomNameKey is the form under which room names must be unique.
func roomNameKey(name string) string { return strings.ToLower(name) }

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

// MaxUserIDLength bounds the user ID a member event names, in bytes.
const MaxUserIDLength = 256

// checkMemberID checks the user ID addMember and removeMember name. Users
// are not registered anywhere Herald can see (identities come from the
// authenticator), so any well-formed ID may be added.
func checkMemberID(id string) *Error {
	switch {
	case id == "":
		return errorf(CodeBadUserInput, "userId must not be empty")
	case len(id) > MaxUserIDLength:
		return errorf(CodeBadUserInput, "userId is longer than %d bytes", MaxUserIDLength)
	case !utf8.ValidString(id):
		return errorf(CodeBadUserInput, "userId is not valid UTF-8")
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
