package graph

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/chat"
)

// A cursor is a position in the event log: the log's epoch and a sequence,
// encoded opaquely. Clients must treat it as an opaque string.
//
// Sequences are per stream, and one stream holds many rooms (a partition)
// or every room's creation (the directory), so a position alone does not
// say what it is a position of: another room's cursor, or the directory's,
// may fall within a room's range and would be read as one of its own,
// starting a resume or a page at the wrong place. So a cursor carries a tag
// of what it was issued for (its cursorScope), and is refused elsewhere:
//
//	h2:<epoch36>:<seq36>:<tag>
//
// Position 0 is the start of a list, before its first entry: a
// connection's resumeCursor when its room (or the directory) has no event
// yet. Only a page's before makes it mean anything but "from the start":
// nothing lies before it.
//
// Cursors of the first format, h1:<epoch36>:<seq36>, carry no tag. They
// are still accepted, anywhere, as positions (what they always were):
// clients hold them across an upgrade, and a rolling deploy must not break
// their resumes. Only h2 cursors are issued, unless Options.UntaggedCursors
// asks for h1 ones (a rolling upgrade from a Herald that knows only h1).
const (
	cursorPrefix       = "h2:"
	legacyCursorPrefix = "h1:"
)

// maxCursorLength bounds the cursors parseCursor reads, encoded. The
// longest h2 cursor, with the least epoch, the greatest sequence and a tag
// of maxTagLength, is exactly this long (48 bytes before base64).
const maxCursorLength = 64

// maxTagLength bounds a tag's length; tags are [0-9a-z]. roomTagBytes of a
// hash give tags of twice as many hex digits.
const (
	maxTagLength = 16
	roomTagBytes = 5
)

// directoryTag tags the room directory's positions (rooms, roomCreated).
// It is not hex, so no room's tag is ever the same.
const directoryTag = "rooms"

// cursorScope is what a cursor's positions index, and so where a cursor
// may be used: the room directory, a room's events, or a room's member
// list. Only the tag decides; room and kind name the scope in errors.
type cursorScope struct {
	tag  string // written into the cursor
	room string // "" for the directory
	kind string // "room" or "members"; "" for the directory
}

// directoryScope: positions in the directory, shared by rooms' pages and
// roomCreated (a page's endCursor resumes roomCreated).
func directoryScope() cursorScope { return cursorScope{tag: directoryTag} }

// roomScope: positions of a room's events, shared by its messages' pages,
// Message.cursor, RoomEvent.cursor and messagePosted's and roomEvents'
// events (a page's endCursor resumes either subscription).
func roomScope(roomID string) cursorScope { return hashedScope("room", roomID) }

// membersScope: a room's member list, keyed by join position plus one,
// which is not an event of the room's messages: a list of its own.
func membersScope(roomID string) cursorScope { return hashedScope("members", roomID) }

// hashedScope tags a room's list with roomTagBytes of SHA-256 of its kind
// and room ID: room IDs are too long to fit in a cursor, and a tag only has
// to tell lists apart, not keep secrets (room IDs are not).
func hashedScope(kind, roomID string) cursorScope {
	sum := sha256.Sum256([]byte(kind + "\x00" + roomID))
	return cursorScope{tag: hex.EncodeToString(sum[:roomTagBytes]), room: roomID, kind: kind}
}

// String names the scope in error messages.
func (s cursorScope) String() string {
	switch s.kind {
	case "":
		return "the room list (rooms, roomCreated)"
	case "members":
		return "the members of room " + s.room
	default:
		return "room " + s.room
	}
}

// owner names, for an error message, the scope tag belongs to when it is
// one we can tell from s alone: the directory, or another list of the
// same room. Anything else is a room's (another room's, for a room's
// list): a tag does not say which.
func (s cursorScope) owner(tag string) string {
	candidates := []cursorScope{directoryScope()}
	if s.room != "" {
		candidates = append(candidates, roomScope(s.room), membersScope(s.room))
	}
	for _, c := range candidates {
		if c.tag == tag {
			return c.String()
		}
	}
	if s.room == "" {
		return "a room"
	}
	return "another room"
}

// cursor is a parsed cursor; tag is "" for a legacy h1 cursor.
type cursor struct {
	epoch int64
	seq   uint64
	tag   string
}

func (r *Resolver) encodeCursor(scope cursorScope, seq uint64) string {
	if r.opts.UntaggedCursors {
		raw := legacyCursorPrefix + strconv.FormatInt(r.epoch, 36) + ":" + strconv.FormatUint(seq, 36)
		return base64.RawURLEncoding.EncodeToString([]byte(raw))
	}
	raw := cursorPrefix + strconv.FormatInt(r.epoch, 36) + ":" + strconv.FormatUint(seq, 36) + ":" + scope.tag
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor returns the sequence a cursor names in scope; nil means no
// cursor. A cursor issued for another scope is a client's mistake, and is
// refused as one even when its log incarnation is gone too.
func (r *Resolver) decodeCursor(arg string, scope cursorScope, s *string) (uint64, error) {
	if s == nil {
		return 0, nil
	}
	c, err := parseCursor(*s)
	if err != nil {
		return 0, &chat.Error{Code: chat.CodeBadUserInput, Message: fmt.Sprintf("%s: invalid cursor: %v", arg, err)}
	}
	if c.tag != "" && c.tag != scope.tag {
		return 0, &chat.Error{Code: chat.CodeBadUserInput,
			Message: fmt.Sprintf("%s: the cursor belongs to %s, not %s; pass a cursor taken from %s", arg, scope.owner(c.tag), scope, scope)}
	}
	if c.epoch != r.epoch {
		return 0, &chat.Error{Code: chat.CodeCursorExpired,
			Message: fmt.Sprintf("%s: the cursor belongs to another incarnation of the event log; refetch from the start", arg)}
	}
	return c.seq, nil
}

// parseCursor reads an h2 or h1 cursor; on error it returns no fields, so
// that nothing half-read is ever taken for a position.
func parseCursor(s string) (cursor, error) {
	c, err := parseCursorFields(s)
	if err != nil {
		return cursor{}, err
	}
	return c, nil
}

func parseCursorFields(s string) (c cursor, err error) {
	if len(s) > maxCursorLength {
		return c, fmt.Errorf("too long")
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, fmt.Errorf("not base64url")
	}
	rest, tagged := strings.CutPrefix(string(raw), cursorPrefix)
	if !tagged {
		var ok bool
		if rest, ok = strings.CutPrefix(string(raw), legacyCursorPrefix); !ok {
			return c, fmt.Errorf("unknown format")
		}
	}
	epochPart, rest, ok := strings.Cut(rest, ":")
	if !ok {
		return c, fmt.Errorf("unknown format")
	}
	seqPart := rest
	if tagged {
		if seqPart, c.tag, ok = strings.Cut(rest, ":"); !ok {
			return c, fmt.Errorf("unknown format")
		}
		if !validTag(c.tag) {
			return c, fmt.Errorf("bad tag")
		}
	}
	if c.epoch, err = strconv.ParseInt(epochPart, 36, 64); err != nil {
		return c, fmt.Errorf("bad epoch")
	}
	if c.seq, err = strconv.ParseUint(seqPart, 36, 64); err != nil {
		return c, fmt.Errorf("bad position")
	}
	return c, nil
}

// validTag reports whether tag is one encodeCursor could write: 1 to
// maxTagLength of [0-9a-z].
func validTag(tag string) bool {
	if tag == "" || len(tag) > maxTagLength {
		return false
	}
	for i := 0; i < len(tag); i++ {
		if b := tag[i]; (b < '0' || b > '9') && (b < 'a' || b > 'z') {
			return false
		}
	}
	return true
}
