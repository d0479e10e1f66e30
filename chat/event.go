package chat

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// EventType names a domain event.
type EventType string

// The domain events.
const (
	RoomCreated     EventType = "room.created"
	MessagePosted   EventType = "message.posted"
	MessageEdited   EventType = "message.edited"
	MessageDeleted  EventType = "message.deleted"
	ReactionToggled EventType = "reaction.toggled"
	// MemberAdded and MemberRemoved change a private room's members. They
	// are events of the room's own log, so the room's membership is known
	// at every position and ordered against its messages.
	MemberAdded   EventType = "member.added"
	MemberRemoved EventType = "member.removed"
)

// isMemberEvent reports whether t changes a room's members.
func isMemberEvent(t EventType) bool { return t == MemberAdded || t == MemberRemoved }

// eventFormat is the version of the JSON encoding written to the log.
// Format 1 is the single-stream layout before rooms were partitioned; it is
// read only to migrate such a log (see Migrate).
const (
	eventFormat       = 2
	legacyEventFormat = 1
)

// Actor is who proposed an event.
type Actor struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Event is one entry of the log as the domain sees it. Which fields are set
// depends on Type.
type Event struct {
	Format    int       `json:"v"`
	Type      EventType `json:"type"`
	Actor     Actor     `json:"actor"`
	RoomID    string    `json:"roomId,omitempty"`
	MessageID string    `json:"messageId,omitempty"`
	Name      string    `json:"name,omitempty"`
	Text      string    `json:"text,omitempty"`
	Version   int       `json:"version,omitempty"`
	Emoji     string    `json:"emoji,omitempty"`
	// UserID is the member a member event adds or removes.
	UserID string `json:"userId,omitempty"`
	// Private marks a room.created entry of a private room.
	Private bool `json:"private,omitempty"`
	// Prev is the log sequence of the room's previous event (0 for its
	// first). The log stores an event only if Prev is still the room's last
	// sequence, so each room's events form a chain: a replica that receives
	// an event whose Prev it has not applied knows it missed one.
	Prev uint64 `json:"prev,omitempty"`
	// At, in Unix nanoseconds, overrides the time the log stored the event.
	// Only migrated events carry it, to keep their original times; every
	// other event takes the log's own timestamp, the same on every replica.
	At int64 `json:"at,omitempty"`
}

// The log layout of the domain (package pubsub owns the streams):
//
//   - the directory: one entry per room, keyed by a hash of its name key,
//     so the log itself keeps names unique (an entry per key, ever);
//   - the room's partition: its events keyed by the room ID, on
//     "posts" (messages posted: the room's history, bounded by the
//     per-subject limit), "msg.<message>" (edits, deletions and
//     reactions of one message) and "member.<user hash>" (one user's
//     membership changes in a private room), so per-subject retention
//     bounds a room's history and never discards anything else: a user's
//     latest membership change is always retained.
//
// Legacy (format 1) events lived on herald.room.<room>.meta|posts|msg.<id>.

// rest is the part of the event's subject after the room key.
func (e Event) rest() string {
	switch {
	case e.Type == MessagePosted:
		return "posts"
	case isMemberEvent(e.Type):
		return "member." + memberToken(e.UserID)
	}
	return "msg." + e.MessageID
}

// memberToken is a subject token for a user ID, which may hold characters
// a subject cannot: 128 bits of its SHA-256, in hex.
func memberToken(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return hex.EncodeToString(sum[:16])
}

// directoryKey is the directory key of a public room's name: names that
// differ only in case share a key, so only one of them can ever be
// created.
func directoryKey(name string) string {
	sum := sha256.Sum256([]byte(composedNameKey(name)))
	return hex.EncodeToString(sum[:])
}

// uncomposedDirectoryKey is the directory key a public room's name had
// before keys were put in NFC after folding (composedNameKey). It differs
// from directoryKey only for names whose fold is not in NFC (a capital
// with no precomposed form, such as T̈, J̌, W̊, Y̊ or H̱, folds to a letter and
// a mark that compose), and the rooms stored under it keep it.
func uncomposedDirectoryKey(name string) string {
	sum := sha256.Sum256([]byte(roomNameKey(name)))
	return hex.EncodeToString(sum[:])
}

// legacyDirectoryKey is the directory key a public room's name had before
// keys were case-folded: its lower case. It differs from directoryKey for
// names with one of the 22 runes whose lower case is not their fold (ς, ſ,
// µ, …: every Greek word that ends in ς), and the rooms stored under it
// keep it.
func legacyDirectoryKey(name string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	return hex.EncodeToString(sum[:])
}

// migratedDirectoryKey is the directory key of a public room copied from
// the single-stream log whose directoryKey another copied room holds: old
// replicas kept names unique in lower case only, so "ΟΔΟΣ" and "οδος" were
// two rooms, which the copy keeps. Only Migrate writes it.
func migratedDirectoryKey(roomID string) string {
	sum := sha256.Sum256([]byte("migrated\x00" + roomID))
	return hex.EncodeToString(sum[:])
}

// privateDirectoryKey is the directory key of a private room: its ID, not
// its name, so that a private room's name never blocks another room's and
// creating a room never reveals that a private room of that name exists.
func privateDirectoryKey(roomID string) string {
	sum := sha256.Sum256([]byte("private\x00" + roomID))
	return hex.EncodeToString(sum[:])
}

// directoryKey is the key of a room.created entry.
func (e Event) directoryKey() string {
	if e.Private {
		return privateDirectoryKey(e.RoomID)
	}
	return directoryKey(e.Name)
}

// Encode returns the event's log representation.
func (e Event) Encode() ([]byte, error) {
	if e.Format == 0 {
		e.Format = eventFormat
	}
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", e.Type, err)
	}
	return data, nil
}

// decodeRoomEvent parses a partition entry of room key and checks that it is
// well formed and stored where its content implies, so that a stray or forged
// entry can never be counted against the wrong room's retention.
func decodeRoomEvent(key, rest string, data []byte) (Event, *Error) {
	return decodeRoomEventWith(key, rest, data, nil)
}

// decodeRoomEventWith is decodeRoomEvent reusing the strings of known (see
// eventStrings), which may be nil.
func decodeRoomEventWith(key, rest string, data []byte, known *eventStrings) (Event, *Error) {
	e, err := decodeEventWith(data, eventFormat, known)
	if err != nil {
		return Event{}, err
	}
	if e.Type == RoomCreated {
		return Event{}, errorf(CodeInternal, "a room.created event in room %s's partition", key)
	}
	if e.RoomID != key {
		return Event{}, errorf(CodeInternal, "event of room %q stored under room %q", e.RoomID, key)
	}
	if !e.storedUnder(rest) {
		return Event{}, errorf(CodeInternal, "event for %q stored under %q", e.rest(), rest)
	}
	return e, nil
}

// storedUnder reports whether rest == e.rest(), without building e.rest()
// for a message's change.
func (e Event) storedUnder(rest string) bool {
	switch {
	case e.Type == MessagePosted:
		return rest == "posts"
	case isMemberEvent(e.Type):
		return rest == e.rest()
	}
	id, ok := strings.CutPrefix(rest, "msg.")
	return ok && id == e.MessageID
}

// decodeDirectoryEntry parses a directory entry stored under key.
func decodeDirectoryEntry(key string, data []byte) (Event, *Error) {
	e, err := decodeEvent(data, eventFormat)
	if err != nil {
		return Event{}, err
	}
	if e.Type != RoomCreated {
		return Event{}, errorf(CodeInternal, "a %s event in the room directory", e.Type)
	}
	if want := e.directoryKey(); key != want && (e.Private || !acceptedPublicKey(key, e)) {
		return Event{}, errorf(CodeInternal, "room %q stored under directory key %q, not %q", e.Name, key, want)
	}
	return e, nil
}

// acceptedPublicKey reports whether key is one a public room was stored
// under by an earlier version or by Migrate, besides its directoryKey.
func acceptedPublicKey(key string, e Event) bool {
	return key == legacyDirectoryKey(e.Name) || key == uncomposedDirectoryKey(e.Name) || key == migratedDirectoryKey(e.RoomID)
}

// decodeLegacyEvent parses an entry of the single-stream layout.
func decodeLegacyEvent(subject string, data []byte) (Event, *Error) {
	e, err := decodeEvent(data, legacyEventFormat)
	if err != nil {
		return Event{}, err
	}
	want := "herald.room." + e.RoomID + "."
	if e.Type == RoomCreated {
		want += "meta"
	} else {
		want += e.rest()
	}
	if subject != want {
		return Event{}, errorf(CodeInternal, "event for subject %q stored under %q", want, subject)
	}
	return e, nil
}

// decodeEvent parses a log entry of the given format and checks what every
// event must satisfy.
func decodeEvent(data []byte, format int) (Event, *Error) {
	return decodeEventWith(data, format, nil)
}

// decodeEventWith is decodeEvent reusing the strings of known, which may be
// nil.
func decodeEventWith(data []byte, format int, known *eventStrings) (Event, *Error) {
	var (
		e   Event
		err error
	)
	if format == legacyEventFormat {
		e, err = parseLegacyEvent(data)
	} else {
		e, err = parseEvent(data, known)
	}
	if err != nil {
		return Event{}, errorf(CodeInternal, "malformed event: %v", err)
	}
	if e.Format != format {
		return Event{}, errorf(CodeInternal, "unsupported event format %d (want %d)", e.Format, format)
	}
	switch e.Type {
	case RoomCreated, MessagePosted, MessageEdited, MessageDeleted, ReactionToggled:
	case MemberAdded, MemberRemoved:
		if format == legacyEventFormat {
			return Event{}, errorf(CodeInternal, "a %s event in the legacy layout", e.Type)
		}
	default:
		return Event{}, errorf(CodeInternal, "unknown event type %q", e.Type)
	}
	if !validID(e.RoomID) {
		return Event{}, errorf(CodeInternal, "event has an invalid room id %q", e.RoomID)
	}
	if e.Private && e.Type != RoomCreated {
		return Event{}, errorf(CodeInternal, "a %s event marked private", e.Type)
	}
	if isMemberEvent(e.Type) {
		if e.MessageID != "" {
			return Event{}, errorf(CodeInternal, "a %s event names message %q", e.Type, e.MessageID)
		}
		if err := checkMemberID(e.UserID); err != nil {
			return Event{}, errorf(CodeInternal, "a %s event names an invalid user: %s", e.Type, err.Message)
		}
	} else if e.UserID != "" {
		return Event{}, errorf(CodeInternal, "a %s event names user %q", e.Type, e.UserID)
	}
	if e.Type != RoomCreated && !isMemberEvent(e.Type) {
		if room, ok := roomOfMessage(e.MessageID); !ok || room != e.RoomID {
			return Event{}, errorf(CodeInternal, "event has an invalid message id %q for room %q", e.MessageID, e.RoomID)
		}
	}
	return e, nil
}
