package chat

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

// IDs are lowercase base32 so they are valid NATS subject tokens. A message
// ID starts with its room's ID, so a command on a message can be routed to
// the room's subjects without first looking the message up.

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const idSeparator = "_"

func randomToken() string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return idEncoding.EncodeToString(b[:])
}

func newRoomID() string { return "r" + randomToken() }

func newMessageID(roomID string) string { return roomID + idSeparator + "m" + randomToken() }

// roomOfMessage returns the room part of a message ID.
func roomOfMessage(messageID string) (string, bool) {
	room, _, ok := strings.Cut(messageID, idSeparator)
	return room, ok && validID(messageID)
}

// validID reports whether id can be used as a subject token: 1–64 characters
// of [a-z0-9_].
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
