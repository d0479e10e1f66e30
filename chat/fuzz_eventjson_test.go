package chat

import (
	"fmt"
	"testing"
)

// FuzzEventRoundTrip: every event Encode writes (json.Marshal, with
// its HTML escaping, \u2028 escapes and U+FFFD for invalid UTF-8) is read
// back by parseEventJSON exactly as encoding/json reads it, with or
// without a room's known strings.
func FuzzEventRoundTrip(f *testing.F) {
	f.Add(1, "message.posted", "u1", "Ann", "ra", "ra_m1", "n", "hi <&> \u2028", 3, "👍", "u2", false, uint64(7), int64(-1))
	f.Add(2, "reaction.toggled", "a\xffb", "", "", "", "", "\x00\x1f\"\\/", -5, "", "", true, ^uint64(0), int64(-1)<<63)
	f.Fuzz(func(t *testing.T, format int, typ, actorID, actorName, room, msgID, name, text string, version int, emoji, user string, private bool, prev uint64, at int64) {
		e := Event{Format: format, Type: EventType(typ), Actor: Actor{ID: actorID, Name: actorName}, RoomID: room,
			MessageID: msgID, Name: name, Text: text, Version: version, Emoji: emoji, UserID: user, Private: private, Prev: prev, At: at}
		data, err := e.Encode()
		if err != nil {
			return
		}
		want, rerr := referenceDecode(data)
		if rerr != nil {
			t.Fatalf("encoding/json cannot read %q back: %v", data, rerr)
		}
		got, err := parseEventJSON(data)
		if err != nil || got != want {
			t.Fatalf("parseEventJSON(%q) = %+v, %v; encoding/json: %+v", data, got, err, want)
		}
		known := newEventStrings(room)
		for range 2 { // the second time, strings come from known
			kgot, kerr := parseEvent(data, known)
			if kerr != nil || kgot != want {
				t.Fatalf("parseEvent(%q, known) = %+v, %v; want %+v", data, kgot, fmt.Sprint(kerr), want)
			}
		}
	})
}
