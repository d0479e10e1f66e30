package chat

import "time"

// Room is a room's metadata, as the room directory holds it.
type Room struct {
	ID        string
	Name      string
	CreatedAt time.Time
	CreatedBy Actor
	// Private rooms are seen, and changed, only by their members; the
	// creator is the first.
	Private bool
	// Seq is the sequence of the room's entry in the room directory.
	Seq uint64
}

// RoomStats are a room's counters, which need the room's messages: reading
// them loads the room on this replica.
type RoomStats struct {
	// MessageCount is the number of messages the room holds: retained by the
	// room's history limit and not deleted.
	MessageCount int
	// LastMessageAt is when the latest message was posted (zero if none).
	LastMessageAt time.Time
}

// Message is a snapshot of a message as the read model holds it.
type Message struct {
	ID        string
	RoomID    string
	Author    Actor
	Text      string // empty once deleted
	Version   int    // 1 when posted; every edit or deletion adds one
	CreatedAt time.Time
	EditedAt  time.Time // zero if never edited
	Deleted   bool
	Reactions []Reaction // in the order each emoji was first used
	// Seq is the log sequence of the event that posted the message (in its
	// room's partition).
	Seq uint64
	// UpdatedSeq is the log sequence of the last event that changed it.
	UpdatedSeq uint64
}

// Reaction is one emoji on a message and who used it, in reaction order.
type Reaction struct {
	Emoji   string
	UserIDs []string
}

// HasUser reports whether userID reacted with this emoji.
func (r Reaction) HasUser(userID string) bool {
	for _, id := range r.UserIDs {
		if id == userID {
			return true
		}
	}
	return false
}

// Member is a member of a private room.
type Member struct {
	User Actor
	// Since is the log position of the event that added the member (0 for
	// the room's creator, a member from the start): their membership
	// covers the room's events after it.
	Since    uint64
	JoinedAt time.Time
}
