package server

import (
	"encoding/json"
	"testing"
	"time"
)

// nestedEvent is a messagePosted result with the page its nested
// room.messages(after: $after) field read.
type nestedEvent struct {
	text string
	page []string
}

func readNested(t *testing.T, c *wsClient, id string) nestedEvent {
	t.Helper()
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			t.Fatalf("waiting for an event of %s: %v", id, err)
		}
		if f.keepalive() {
			continue
		}
		if f.ID != id || (f.Type != "next" && f.Type != "data") {
			t.Fatalf("got %s while waiting for an event of %s", f.raw, id)
		}
		var p struct {
			Data struct {
				MessagePosted struct {
					Text string
					Room struct {
						Messages struct{ Nodes []struct{ Text string } }
					}
				}
			}
			Errors []json.RawMessage
		}
		if err := json.Unmarshal(f.Payload, &p); err != nil || len(p.Errors) > 0 {
			t.Fatalf("event of %s: %s (%v)", id, f.raw, err)
		}
		ev := nestedEvent{text: p.Data.MessagePosted.Text}
		for _, n := range p.Data.MessagePosted.Room.Messages.Nodes {
			ev.page = append(ev.page, n.Text)
		}
		return ev
	}
}

// TestLiveFormKeepsNestedUsesOfTheCursorVariable: a subscription that
// passes its cursor variable to the root field's after and also to a nested
// field's argument resumes; once the replay hands over to the shared live
// execution, whose form has the variable null, the nested field is read
// with after null: the subscriber gets the result of another operation
// (the one without a cursor) than the one it sent.
func TestLiveFormKeepsNestedUsesOfTheCursorVariable(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	plain := `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`
	reader := r.dialTransport("reader")
	reader.subscribe("subscribe", "live", plain, map[string]any{"r": room})
	waitFor(t, "the reader's subscription", func() bool { return r.members() == 1 })
	for _, text := range []string{"m1", "m2", "m3"} {
		r.post(room, "poster", text)
	}
	seen := readEvents(t, reader, "live", 3)

	nested := `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) {
		text room { messages(after: $after, first: 1) { nodes { text } } } } }`
	c := r.dialTransport("resumer")
	c.subscribe("subscribe", "r", nested, map[string]any{"r": room, "after": seen[0].cursor})
	for _, want := range []string{"m2", "m3"} {
		ev := readNested(t, c, "r")
		if ev.text != want || len(ev.page) != 1 || ev.page[0] != "m2" {
			t.Fatalf("replayed event %+v, want %s with room.messages(after: m1's cursor, first: 1) = [m2]", ev, want)
		}
	}
	// The replay hands over to the live execution at the next live event
	// at the latest: what follows comes from the live execution.
	for _, want := range []string{"m4", "m5", "m6"} {
		r.post(room, "poster", want)
		ev := readNested(t, c, "r")
		if ev.text != want || len(ev.page) != 1 || ev.page[0] != "m2" {
			t.Fatalf("live event %+v, want %s with room.messages(after: m1's cursor, first: 1) = [m2]: "+
				"the nested field was read with the live form's null cursor", ev, want)
		}
	}
}
