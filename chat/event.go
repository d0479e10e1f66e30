package chat

import (
	"encoding/json"
	"fmt"
)

// EventType names a domain event.
type EventType string

// The domain events. Each is a proposal until the projection accepts it.
const (
	RoomCreated     EventType = "room.created"
	MessagePosted   EventType = "message.posted"
	MessageEdited   EventType = "message.edited"
	MessageDeleted  EventType = "message.deleted"
	ReactionToggled EventType = "reaction.toggled"
)

// eventFormat is the version of the JSON encoding written to the log.
const eventFormat = 1

// Actor is who proposed an event.
type Actor struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Event is one entry of the log as the domain sees it. Which fields are set
// depends on Type. Times are not in the event: the log's own timestamp is
// used, so every replica sees the same time.
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
}

// SubjectPrefix is the first token of every subject the domain writes; the
// stream must capture SubjectPrefix + ".>".
const SubjectPrefix = "herald"

// Subjects carry the room so NATS can filter and route by room, and they are
// split by kind so that per-subject retention bounds a room's history
// without ever discarding its metadata:
//
//	herald.room.<room>.meta            room created (one per subject)
//	herald.room.<room>.posts           messages posted (the room's history)
//	herald.room.<room>.msg.<message>   edits, deletions and reactions of one message
func (e Event) Subject() string {
	switch e.Type {
	case RoomCreated:
		return SubjectPrefix + ".room." + e.RoomID + ".meta"
	case MessagePosted:
		return SubjectPrefix + ".room." + e.RoomID + ".posts"
	default:
		return SubjectPrefix + ".room." + e.RoomID + ".msg." + e.MessageID
	}
}

// Encode returns the event's log representation.
func (e Event) Encode() ([]byte, error) {
	e.Format = eventFormat
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s event: %w", e.Type, err)
	}
	return data, nil
}

// decodeEvent parses a log entry and checks that it is well formed and
// stored under the subject its content implies, so that a stray or forged
// entry can never be counted against the wrong room's retention.
func decodeEvent(subject string, data []byte) (Event, *Error) {
	e, err := parseEventJSON(data)
	if err != nil {
		return Event{}, errorf(CodeInternal, "malformed event: %v", err)
	}
	if e.Format != eventFormat {
		return Event{}, errorf(CodeInternal, "unsupported event format %d", e.Format)
	}
	switch e.Type {
	case RoomCreated, MessagePosted, MessageEdited, MessageDeleted, ReactionToggled:
	default:
		return Event{}, errorf(CodeInternal, "unknown event type %q", e.Type)
	}
	if !validID(e.RoomID) {
		return Event{}, errorf(CodeInternal, "event has an invalid room id %q", e.RoomID)
	}
	if e.Type != RoomCreated {
		if room, ok := roomOfMessage(e.MessageID); !ok || room != e.RoomID {
			return Event{}, errorf(CodeInternal, "event has an invalid message id %q for room %q", e.MessageID, e.RoomID)
		}
	}
	if got := e.Subject(); got != subject {
		return Event{}, errorf(CodeInternal, "event for subject %q stored under %q", got, subject)
	}
	return e, nil
}
