package chat

import (
	"strings"
	"testing"
)

// TestIDs: an ID is a subject token of 1–64 characters of [a-z0-9_], a new
// one carries 80 random bits, and a message ID names its room only when
// the whole message ID is valid.
func TestIDs(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"", false},
		{"a", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"abcxyz0189_", true},
		{"z", true},
		{"{", false},
		{"A", false},
		{"a.b", false},
		{"a b", false},
		{"a*", false},
		{"a>", false},
		{"a-b", false},
	} {
		if got := validID(tc.id); got != tc.want {
			t.Errorf("validID(%q) = %v, want %v (IDs are 1–64 characters of [a-z0-9_])", tc.id, got, tc.want)
		}
	}
	for _, tc := range []struct {
		msg, room string
		ok        bool
	}{
		{"rabc_mdef", "rabc", true},
		{"rabc", "", false},
		{"rabc_mD.E", "", false},                        // the message part must be a token too
		{"rabc_m" + strings.Repeat("x", 60), "", false}, // 66 characters
		{"rabc_m>", "", false},
	} {
		room, ok := roomOfMessage(tc.msg)
		if ok != tc.ok || (ok && room != tc.room) {
			t.Errorf("roomOfMessage(%q) = %q, %v; want %q, %v", tc.msg, room, ok, tc.room, tc.ok)
		}
	}
	seen := make(map[string]bool)
	for range 1000 {
		id := newRoomID()
		if !validID(id) || !strings.HasPrefix(id, "r") || len(id) != 1+16 {
			t.Fatalf("newRoomID() = %q; want \"r\" and 16 base32 characters (80 random bits)", id)
		}
		if seen[id] {
			t.Fatalf("newRoomID() repeated %q", id)
		}
		seen[id] = true
		m := newMessageID(id)
		if room, ok := roomOfMessage(m); !ok || room != id || len(m) != len(id)+2+16 {
			t.Fatalf("newMessageID(%q) = %q (room %q, %v); want the room, \"_m\" and 16 base32 characters", id, m, room, ok)
		}
	}
}
