package graph

import (
	"context"
	"errors"
	"testing"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// alicesRooms has alice create a private room and a public one, named
// after name.
func alicesRooms(t *testing.T, svc *chat.Service, name string) (private, public chat.Room) {
	t.Helper()
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	private, err := svc.CreatePrivateRoom(ctx, alice, name+"-private")
	if err != nil {
		t.Fatal(err)
	}
	public, err = svc.CreateRoom(ctx, alice, name+"-public")
	if err != nil {
		t.Fatal(err)
	}
	return private, public
}

// aliceAndBobsRoom is a private room alice created, named name, with bob
// added as a member.
func aliceAndBobsRoom(t *testing.T, svc *chat.Service, name string) chat.Room {
	t.Helper()
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	room, err := svc.CreatePrivateRoom(ctx, alice, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	return room
}

// TestMutationsNeedIdentity: every mutation that acts as someone refuses a
// request without an identity with UNAUTHENTICATED, before chat is asked
// anything, and changes nothing (schema: "Needs an identity"). Without
// the check it would act as a user with an empty ID.
func TestMutationsNeedIdentity(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	room, pub := alicesRooms(t, svc, "anon")
	msg, err := svc.PostMessage(ctx, chat.Actor{ID: "alice"}, pub.ID, "hello", "")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingPresence{}
	m := mutationResolver{&Resolver{chat: svc, epoch: 1, presence: p, typing: newTypingThrottle(1, typingKeep)}}
	yes := true
	key := "k"
	for _, c := range []struct {
		name string
		call func() (any, error)
	}{
		{"createRoom", func() (any, error) { return m.CreateRoom(ctx, "anon-new", nil) }},
		{"createRoom(private: true)", func() (any, error) { return m.CreateRoom(ctx, "anon-new-private", &yes) }},
		{"addMember", func() (any, error) { return m.AddMember(ctx, room.ID, "mallory") }},
		{"removeMember", func() (any, error) { return m.RemoveMember(ctx, room.ID, "alice") }},
		{"postMessage", func() (any, error) { return m.PostMessage(ctx, pub.ID, "anonymous", &key) }},
		{"editMessage", func() (any, error) { return m.EditMessage(ctx, msg.ID, msg.Version, "edited") }},
		{"deleteMessage", func() (any, error) { return m.DeleteMessage(ctx, msg.ID, msg.Version) }},
		{"react", func() (any, error) { return m.React(ctx, msg.ID, "👍") }},
		{"setTyping", func() (any, error) { return m.SetTyping(ctx, pub.ID) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.call()
			if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != chat.CodeUnauthenticated {
				t.Errorf("anonymous %s: %v; want UNAUTHENTICATED", c.name, err)
			}
		})
	}
	if sent := p.sentSignals(); len(sent) != 0 {
		t.Errorf("anonymous setTyping sent signals %q; want none", sent)
	}
	rooms, err := svc.Rooms(ctx, "", chat.Window{Last: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms.Items) == 0 {
		t.Fatal("rooms lists nothing")
	}
	for _, r := range rooms.Items {
		if r.Name == "anon-new" || r.Name == "anon-new-private" {
			t.Errorf("anonymous createRoom created room %q", r.Name)
		}
	}
	page, err := svc.Messages(ctx, pub.ID, chat.Window{Last: 50})
	if err != nil {
		t.Fatal(err)
	}
	if page.TotalCount != 1 {
		t.Errorf("%d messages after anonymous mutations, want 1", page.TotalCount)
	}
}

// TestCreateRoomPrivateFlag: createRoom(private: true) makes a private
// room; private omitted (null) or false a public one (the schema's default
// is false: a client spelling it out must not get a private room).
func TestCreateRoomPrivateFlag(t *testing.T) {
	svc := startChat(t)
	ctx := auth.NewContext(context.Background(), auth.Identity{UserID: "alice"})
	m := mutationResolver{&Resolver{chat: svc, epoch: 1}}
	yes, no := true, false
	for _, tt := range []struct {
		name    string
		private *bool
		want    bool
	}{
		{"omitted", nil, false},
		{"false", &no, false},
		{"true", &yes, true},
	} {
		room, err := m.CreateRoom(ctx, "flag "+tt.name, tt.private)
		if err != nil {
			t.Fatalf("createRoom(private: %s): %v", tt.name, err)
		}
		if room.Private != tt.want {
			t.Errorf("createRoom(private: %s) made a room with private %v, want %v", tt.name, room.Private, tt.want)
		}
		if room.CreatedBy.ID != "alice" {
			t.Errorf("createRoom(private: %s) created by %q, want alice", tt.name, room.CreatedBy.ID)
		}
	}
}

// TestIdempotencyKeyPassedOn: a postMessage retried with the same
// idempotencyKey answers with the first post and stores nothing more; the
// identity's name is what the message carries as its author's.
func TestIdempotencyKeyPassedOn(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	room, err := svc.CreateRoom(ctx, chat.Actor{ID: "alice"}, "idempotency")
	if err != nil {
		t.Fatal(err)
	}
	m := mutationResolver{&Resolver{chat: svc, epoch: 1}}
	actx := auth.NewContext(ctx, auth.Identity{UserID: "alice", Name: "Alice Liddell"})
	key := "retry-1"
	first, err := m.PostMessage(actx, room.ID, "once", &key)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := m.PostMessage(actx, room.ID, "once", &key)
	if err != nil {
		t.Fatal(err)
	}
	if retry.ID != first.ID {
		t.Errorf("a retry with idempotencyKey %q posted %s, want the first post %s", key, retry.ID, first.ID)
	}
	page, err := svc.Messages(ctx, room.ID, chat.Window{Last: 50})
	if err != nil {
		t.Fatal(err)
	}
	if page.TotalCount != 1 {
		t.Errorf("%d messages stored for two posts with one idempotencyKey, want 1", page.TotalCount)
	}
	if first.Author.ID != "alice" || first.Author.Name != "Alice Liddell" {
		t.Errorf("author %+v, want alice named as the identity names her (Alice Liddell)", first.Author)
	}
}
