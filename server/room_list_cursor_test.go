package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// A private room "is seen only by its members", yet the room list's
// resumeCursor was the whole directory's position, private rooms
// included: a non-member reading the list before and after someone
// created private rooms saw the cursor move while the list stayed the
// same, and learnt when and how many were created. The cursor is the
// position of the newest room the viewer may see now, and roomCreated
// after it still hands on every room created since that the viewer may
// see, from an empty list too.
func TestRoomListCursorHidesPrivateRooms(t *testing.T) {
	r := newReplica(t, nil)
	const q = `{ rooms { totalCount resumeCursor nodes { id } } }`
	read := func(user string) (cursor, seen string) {
		t.Helper()
		status, _, body := r.graphqlPost(user, q, nil, nil)
		data, _ := body["data"].(map[string]any)
		rooms, _ := data["rooms"].(map[string]any)
		if status != 200 || rooms == nil {
			t.Fatalf("rooms: %d %v", status, body)
		}
		cursor, _ = rooms["resumeCursor"].(string)
		var ids []string
		for _, n := range rooms["nodes"].([]any) {
			ids = append(ids, n.(map[string]any)["id"].(string))
		}
		return cursor, strings.Join(ids, ",")
	}

	empty, _ := read("eve") // no room yet: the hand-over starts at the beginning
	r.privateRoom("secret before", "bob")
	lobby := r.room("lobby")
	before, seenBefore := read("eve")
	for _, name := range []string{"secret a", "secret b", "secret c"} {
		r.privateRoom(name, "bob") // ann's, with bob; never eve's
	}
	after, seenAfter := read("eve")
	if seenAfter != seenBefore || seenAfter != lobby {
		t.Fatalf("eve's rooms: %q, then %q; want the lobby only", seenBefore, seenAfter)
	}
	if after != before {
		b, _ := decodeB64(before)
		a, _ := decodeB64(after)
		t.Errorf("eve's resumeCursor moved from %s to %s as private rooms she may not see were created", b, a)
	}

	// bob sees his rooms: his cursor is past them.
	if bobs, _ := read("bob"); bobs == after {
		t.Errorf("bob's resumeCursor is eve's, though he sees three rooms created after it")
	}

	hall := r.room("hall")
	for name, cursor := range map[string]string{"from an empty list": empty, "from eve's list": after} {
		c := r.forTest(t).dialTransport("eve")
		c.subscribe("subscribe", "1", `subscription($a: String) { roomCreated(after: $a) { id } }`, map[string]any{"a": cursor})
		want := []string{hall}
		if cursor == empty {
			want = []string{lobby, hall}
		}
		for _, id := range want {
			f := c.next()
			var p struct {
				Data struct{ RoomCreated struct{ ID string } } `json:"data"`
			}
			if err := json.Unmarshal(f.Payload, &p); err != nil || f.Type != "next" || p.Data.RoomCreated.ID != id {
				t.Fatalf("%s: got %s, want room %s", name, f.raw, id)
			}
		}
	}
}
