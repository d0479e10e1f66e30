package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestResumeCursorHandsOver: a connection's resumeCursor is the position
// its list had reached when the page was read, so a subscription after it
// delivers exactly what came since: on an empty room or an empty room list
// too, which have no endCursor, and without replaying a change the page
// already showed (endCursor, the newest message's own position, would
// replay an edit of an older message made after it).
func TestResumeCursorHandsOver(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	do := executor(t, svc)
	r := &Resolver{chat: svc, epoch: time.Unix(0, 1).UnixNano()} // executor's epoch

	type page struct {
		Nodes []struct {
			ID   string
			Text string
			Name string
		}
		PageInfo struct {
			HasNextPage, HasPreviousPage bool
			EndCursor                    *string
		}
		ResumeCursor string
	}
	query := func(q string) page {
		t.Helper()
		resp := do("alice", q)
		if len(resp.Errors) > 0 {
			t.Fatalf("%s: %+v", q, resp.Errors)
		}
		var v struct {
			Rooms *page
			Room  *struct{ Messages page }
		}
		if err := json.Unmarshal(resp.Data, &v); err != nil {
			t.Fatal(err)
		}
		if v.Rooms != nil {
			return *v.Rooms
		}
		return v.Room.Messages
	}
	const fields = `nodes { id text } pageInfo { hasNextPage hasPreviousPage endCursor } resumeCursor`
	rooms := func() page { return query(`{ rooms { nodes { name } pageInfo { endCursor } resumeCursor } }`) }
	messages := func(roomID, args string) page {
		if args != "" {
			args = "(" + args + ")"
		}
		return query(fmt.Sprintf(`{ room(id: %q) { messages%s { %s } } }`, roomID, args, fields))
	}
	post := func(roomID, text string) chat.Message {
		t.Helper()
		m, err := svc.PostMessage(ctx, alice, roomID, text, "")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// received reads a subscription's events until none comes for 300 ms.
	received := func(ch <-chan string, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		var got []string
		for {
			select {
			case text, ok := <-ch:
				if !ok {
					return got
				}
				got = append(got, text)
			case <-time.After(300 * time.Millisecond):
				return got
			}
		}
	}
	roomCreated := func(after string) []string {
		ch, err := r.Subscription().RoomCreated(subCtx, &after)
		return received(texts(ch, func(room *chat.Room) string { return room.Name }), err)
	}
	roomEvents := func(roomID, after string) []string {
		ch, err := r.Subscription().RoomEvents(subCtx, roomID, &after)
		return received(texts(ch, func(c *chat.Change) string { return string(c.Type) + ":" + c.Message.Text }), err)
	}
	messagePosted := func(roomID, after string) []string {
		ch, err := r.Subscription().MessagePosted(subCtx, roomID, &after)
		return received(texts(ch, func(m *chat.Message) string { return m.Text }), err)
	}
	want := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: got %q, want %q", what, got, want)
		}
	}

	// An empty room list: no endCursor, but a resumeCursor.
	emptyList := rooms()
	if emptyList.PageInfo.EndCursor != nil || emptyList.ResumeCursor == "" {
		t.Fatalf("empty room list: endCursor %v, resumeCursor %q; want null and a cursor", emptyList.PageInfo.EndCursor, emptyList.ResumeCursor)
	}
	room, err := svc.CreateRoom(ctx, alice, "first")
	if err != nil {
		t.Fatal(err)
	}
	want("roomCreated after the empty list's resumeCursor", roomCreated(emptyList.ResumeCursor), "first")

	// An empty room: the same.
	empty := messages(room.ID, "")
	if empty.PageInfo.EndCursor != nil || empty.ResumeCursor == "" {
		t.Fatalf("empty room: endCursor %v, resumeCursor %q; want null and a cursor", empty.PageInfo.EndCursor, empty.ResumeCursor)
	}
	first := post(room.ID, "m1")
	post(room.ID, "m2")
	if _, err := svc.EditMessage(ctx, alice, first.ID, 1, "m1 edited"); err != nil {
		t.Fatal(err)
	}
	want("roomEvents after the empty room's resumeCursor", roomEvents(room.ID, empty.ResumeCursor),
		"message.posted:m1 edited", "message.posted:m2", "message.edited:m1 edited")
	want("messagePosted after the empty room's resumeCursor", messagePosted(room.ID, empty.ResumeCursor), "m1 edited", "m2")

	// As a page's cursor, the start of the room's list.
	after := messages(room.ID, fmt.Sprintf("after: %q", empty.ResumeCursor))
	if len(after.Nodes) != 2 || after.Nodes[0].Text != "m1 edited" || after.Nodes[1].Text != "m2" {
		t.Errorf("messages after the empty room's resumeCursor: %+v; want m1 edited, m2", after.Nodes)
	}
	before := messages(room.ID, fmt.Sprintf("last: 10, before: %q", empty.ResumeCursor))
	if len(before.Nodes) != 0 || before.PageInfo.HasPreviousPage || !before.PageInfo.HasNextPage {
		t.Errorf("messages before the empty room's resumeCursor: %+v; want none, none before, more after", before)
	}

	// A room whose last change is an edit of an older message: the page
	// shows it, so a resume must not replay it.
	edited := messages(room.ID, "")
	if edited.ResumeCursor == *edited.PageInfo.EndCursor {
		t.Fatalf("resumeCursor %q is the newest message's endCursor, though an edit came after it", edited.ResumeCursor)
	}
	post(room.ID, "m3")
	want("roomEvents after the page's resumeCursor", roomEvents(room.ID, edited.ResumeCursor), "message.posted:m3")
	want("messagePosted after the page's resumeCursor", messagePosted(room.ID, edited.ResumeCursor), "m3")

	// A room list that is not empty.
	listed := rooms()
	if _, err := svc.CreateRoom(ctx, alice, "second"); err != nil {
		t.Fatal(err)
	}
	want("roomCreated after the list's resumeCursor", roomCreated(listed.ResumeCursor), "second")

	// Each list's resumeCursor is its own: refused elsewhere.
	other, err := svc.CreateRoom(ctx, alice, "other")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Subscription().RoomEvents(subCtx, other.ID, &empty.ResumeCursor); err == nil || !strings.Contains(err.Error(), "belongs to another room") {
		t.Errorf("another room's resumeCursor: %v; want it refused", err)
	}
	if _, err := r.Subscription().RoomCreated(subCtx, &empty.ResumeCursor); err == nil || !strings.Contains(err.Error(), "belongs to a room") {
		t.Errorf("a room's resumeCursor given to roomCreated: %v; want it refused", err)
	}
}
