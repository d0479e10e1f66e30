package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/eventmeta"
)

// asLegacy turns a cursor into the h1 cursor Herald issued for the same
// position before cursors carried their scope's tag.
func asLegacy(t *testing.T, c string) string {
	t.Helper()
	parsed, err := parseCursor(c)
	if err != nil {
		t.Fatalf("parse %q: %v", c, err)
	}
	return *legacyCursor(parsed.epoch, parsed.seq)
}

// TestCursorOfAnotherListIsRefused: one partition holds every room's
// events, and the directory numbers room creations from 1 too, so a cursor
// of room A, or of the room list, names a position within room B's range.
// Used on room B (a page or a resume), or a room's cursor used on the room
// list, it must be refused with BAD_USER_INPUT, not taken as a position of
// B: the page or the replay would start at the wrong place. A legacy h1
// cursor, which names no list, still works as before.
func TestCursorOfAnotherListIsRefused(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	do := executor(t, svc)
	r := &Resolver{chat: svc, epoch: time.Unix(0, 1).UnixNano()} // executor's epoch

	// Room creations are read from roomCreated, as a client resumes them.
	created, err := r.Subscription().RoomCreated(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	roomA, err := svc.CreateRoom(ctx, alice, "room a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.PostMessage(ctx, alice, roomA.ID, "a1", ""); err != nil {
		t.Fatal(err)
	}
	roomB, err := svc.CreateRoom(ctx, alice, "room b")
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"b1", "b2", "b3"} {
		if _, err := svc.PostMessage(ctx, alice, roomB.ID, text, ""); err != nil {
			t.Fatal(err)
		}
	}
	private, err := svc.CreatePrivateRoom(ctx, alice, "private")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddMember(ctx, alice, private.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	var createdCursor string
	select {
	case ev := <-created:
		meta, _ := eventmeta.MetaFrom(ev.Context)
		createdCursor = meta.Cursor
	case <-time.After(5 * time.Second):
		t.Fatal("no roomCreated event")
	}

	// Cursors as clients get them.
	query := func(user, q string, v any) {
		t.Helper()
		resp := do(user, q)
		if len(resp.Errors) > 0 {
			t.Fatalf("%s: %+v", q, resp.Errors)
		}
		if err := json.Unmarshal(resp.Data, v); err != nil {
			t.Fatal(err)
		}
	}
	type pageInfo struct{ StartCursor, EndCursor string }
	var a, b struct {
		Room struct {
			Messages struct {
				PageInfo pageInfo
				Nodes    []struct{ Cursor string }
			}
		}
	}
	messages := func(roomID string) string {
		return fmt.Sprintf(`{ room(id: %q) { messages { pageInfo { startCursor endCursor } nodes { cursor } } } }`, roomID)
	}
	query("", messages(roomA.ID), &a)
	query("", messages(roomB.ID), &b)
	var rooms struct{ Rooms struct{ PageInfo pageInfo } }
	query("", `{ rooms { pageInfo { startCursor endCursor } } }`, &rooms)
	var members struct {
		Room struct{ Members struct{ PageInfo pageInfo } }
	}
	query("alice", fmt.Sprintf(`{ room(id: %q) { members { pageInfo { startCursor endCursor } } } }`, private.ID), &members)

	aCursor := a.Room.Messages.PageInfo.EndCursor     // a1: before b1..b3 in the partition
	aMessageCursor := a.Room.Messages.Nodes[0].Cursor // Message.cursor of a1
	bFirst := b.Room.Messages.PageInfo.StartCursor    // b1
	listCursor := rooms.Rooms.PageInfo.StartCursor    // room a's creation: directory position 1
	membersCursor := members.Room.Members.PageInfo.EndCursor

	const (
		otherRoom = "belongs to another room"
		roomList  = "belongs to the room list (rooms, roomCreated)"
		aRoom     = "belongs to a room, not the room list"
		theirs    = "belongs to the members of room "
	)
	page := func(user, q string) (texts []string, err error) {
		resp := do(user, q)
		if len(resp.Errors) > 0 {
			e := resp.Errors[0]
			return nil, &chat.Error{Code: chat.Code(fmt.Sprint(e.Extensions["code"])), Message: e.Message}
		}
		var v struct {
			Room *struct {
				Messages struct{ Nodes []struct{ Text string } }
				Members  struct{ Nodes []struct{ ID string } }
			}
			Rooms *struct{ Nodes []struct{ Name string } }
		}
		if err := json.Unmarshal(resp.Data, &v); err != nil {
			t.Fatal(err)
		}
		switch {
		case v.Rooms != nil:
			for _, n := range v.Rooms.Nodes {
				texts = append(texts, n.Name)
			}
		case v.Room != nil:
			for _, n := range v.Room.Messages.Nodes {
				texts = append(texts, n.Text)
			}
			for _, n := range v.Room.Members.Nodes {
				texts = append(texts, n.ID)
			}
		}
		return texts, nil
	}
	roomPage := func(roomID, args string) func() ([]string, error) {
		return func() ([]string, error) {
			return page("", fmt.Sprintf(`{ room(id: %q) { messages(%s) { nodes { text } } } }`, roomID, args))
		}
	}
	resume := func(sub func(after *string) (<-chan string, error), after string) func() ([]string, error) {
		return func() ([]string, error) {
			ch, err := sub(&after)
			if err != nil {
				return nil, err
			}
			var got []string
			for {
				select {
				case text, ok := <-ch:
					if !ok {
						return got, nil
					}
					got = append(got, text)
				case <-time.After(300 * time.Millisecond):
					return got, nil
				}
			}
		}
	}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	messagePosted := func(roomID string) func(*string) (<-chan string, error) {
		return func(after *string) (<-chan string, error) {
			ch, err := r.Subscription().MessagePosted(subCtx, roomID, after)
			return texts(ch, func(m *chat.Message) string { return m.Text }), err
		}
	}
	roomEvents := func(roomID string) func(*string) (<-chan string, error) {
		return func(after *string) (<-chan string, error) {
			ch, err := r.Subscription().RoomEvents(subCtx, roomID, after)
			return texts(ch, func(c *chat.Change) string { return c.Message.Text }), err
		}
	}
	roomCreated := func(after *string) (<-chan string, error) {
		ch, err := r.Subscription().RoomCreated(subCtx, after)
		return texts(ch, func(room *chat.Room) string { return room.Name }), err
	}

	tests := []struct {
		name    string
		run     func() ([]string, error)
		want    []string
		wantErr string // in a BAD_USER_INPUT error
	}{
		// Pages.
		{name: "room b's page after its own cursor", run: roomPage(roomB.ID, fmt.Sprintf("after: %q", bFirst)), want: []string{"b2", "b3"}},
		{name: "room b's page after room a's cursor", run: roomPage(roomB.ID, fmt.Sprintf("after: %q", aCursor)), wantErr: otherRoom},
		{name: "room b's page before room a's cursor", run: roomPage(roomB.ID, fmt.Sprintf("before: %q", aCursor)), wantErr: otherRoom},
		{name: "room b's page after room a's Message.cursor", run: roomPage(roomB.ID, fmt.Sprintf("after: %q", aMessageCursor)), wantErr: otherRoom},
		{name: "room b's page after the room list's cursor", run: roomPage(roomB.ID, fmt.Sprintf("after: %q", listCursor)), wantErr: roomList},
		{name: "room b's page after roomCreated's cursor", run: roomPage(roomB.ID, fmt.Sprintf("after: %q", createdCursor)), wantErr: roomList},
		{name: "the private room's messages after its members' cursor", wantErr: theirs, run: func() ([]string, error) {
			return page("alice", fmt.Sprintf(`{ room(id: %q) { messages(after: %q) { nodes { text } } } }`, private.ID, membersCursor))
		}},
		{name: "the private room's members after its own cursor", want: []string{"bob"}, run: func() ([]string, error) {
			return page("alice", fmt.Sprintf(`{ room(id: %q) { members(after: %q) { nodes { id } } } }`, private.ID, members.Room.Members.PageInfo.StartCursor))
		}},
		{name: "the room list after room b's cursor", wantErr: aRoom, run: func() ([]string, error) {
			return page("", fmt.Sprintf(`{ rooms(after: %q) { nodes { name } } }`, bFirst))
		}},
		{name: "the room list after its own cursor", want: []string{"room b"}, run: func() ([]string, error) {
			return page("", fmt.Sprintf(`{ rooms(after: %q) { nodes { name } } }`, listCursor))
		}},
		{name: "room b's page after a legacy cursor", run: roomPage(roomB.ID, fmt.Sprintf("after: %q", asLegacy(t, bFirst))), want: []string{"b2", "b3"}},
		{name: "the room list after a legacy cursor", want: []string{"room b"}, run: func() ([]string, error) {
			return page("", fmt.Sprintf(`{ rooms(after: %q) { nodes { name } } }`, asLegacy(t, listCursor)))
		}},
		// Resumes.
		{name: "messagePosted on room b after its own cursor", run: resume(messagePosted(roomB.ID), bFirst), want: []string{"b2", "b3"}},
		{name: "messagePosted on room b after room a's cursor", run: resume(messagePosted(roomB.ID), aCursor), wantErr: otherRoom},
		{name: "roomEvents on room b after room a's cursor", run: resume(roomEvents(roomB.ID), aCursor), wantErr: otherRoom},
		{name: "roomEvents on room b after roomCreated's cursor", run: resume(roomEvents(roomB.ID), createdCursor), wantErr: roomList},
		{name: "roomCreated after room b's cursor", run: resume(roomCreated, bFirst), wantErr: aRoom},
		{name: "roomCreated after its own cursor", run: resume(roomCreated, createdCursor), want: []string{"room b"}},
		{name: "roomCreated after the room list's cursor", run: resume(roomCreated, listCursor), want: []string{"room b"}},
		{name: "messagePosted on room b after a legacy cursor", run: resume(messagePosted(roomB.ID), asLegacy(t, bFirst)), want: []string{"b2", "b3"}},
		{name: "roomEvents on room b after a legacy cursor", run: resume(roomEvents(roomB.ID), asLegacy(t, bFirst)), want: []string{"b2", "b3"}},
		{name: "roomCreated after a legacy cursor", run: resume(roomCreated, asLegacy(t, createdCursor)), want: []string{"room b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.run()
			if tt.wantErr != "" {
				chatErr, ok := errors.AsType[*chat.Error](err)
				if !ok || chatErr.Code != chat.CodeBadUserInput || !strings.Contains(chatErr.Message, tt.wantErr) {
					t.Fatalf("got %q, %v; want BAD_USER_INPUT saying the cursor %s", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// texts maps a subscription's events to strings until it closes.
func texts[T any](ch <-chan graphql.Event[T], text func(T) string) <-chan string {
	out := make(chan string, 16)
	if ch == nil {
		close(out)
		return out
	}
	go func() {
		defer close(out)
		for ev := range ch {
			out <- text(ev.Value)
		}
	}()
	return out
}
