package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// TestPageSizeBounds: first and last take 0 to MaxPageSize,
// both ends included; one more is BAD_USER_INPUT (schema: "first takes 0
// to 100 (BAD_USER_INPUT otherwise)").
func TestPageSizeBounds(t *testing.T) {
	r := &Resolver{epoch: 7}
	n := func(v int) *int { return &v }
	for _, tt := range []struct {
		name        string
		first, last *int
		ok          bool
	}{
		{"first at the bound", n(MaxPageSize), nil, true},
		{"last at the bound", nil, n(MaxPageSize), true},
		{"first one over", n(MaxPageSize + 1), nil, false},
		{"last one over", nil, n(MaxPageSize + 1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := r.window(roomScope("room1"), tt.first, tt.last, nil, nil, defaultMessagesPage)
			if tt.ok {
				if err != nil {
					t.Fatalf("err = %v, want accepted", err)
				}
				return
			}
			if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != chat.CodeBadUserInput {
				t.Fatalf("err = %v, want BAD_USER_INPUT", err)
			}
		})
	}
}

// TestRoomsFirstZeroPage: rooms(first: 0) returns no rooms, and
// hasNextPage tells whether any room follows (after the cursor, if one is
// given): a client probing with first: 0 learns there is more to fetch
// even when exactly one room follows.
func TestRoomsFirstZeroPage(t *testing.T) {
	svc := startChat(t)
	do := executor(t, svc)
	type conn struct {
		Nodes    []struct{ ID string }
		PageInfo struct {
			HasNextPage bool
			EndCursor   *string
		}
	}
	rooms := func(args string) conn {
		t.Helper()
		resp := do("alice", fmt.Sprintf(`{ rooms(%s) { nodes { id } pageInfo { hasNextPage endCursor } } }`, args))
		if len(resp.Errors) > 0 {
			t.Fatalf("rooms(%s): %+v", args, resp.Errors)
		}
		var v struct{ Rooms conn }
		if err := json.Unmarshal(resp.Data, &v); err != nil {
			t.Fatal(err)
		}
		return v.Rooms
	}
	if got := rooms("first: 0"); len(got.Nodes) != 0 || got.PageInfo.HasNextPage {
		t.Fatalf("rooms(first: 0) with no room: %+v, want nothing and no next page", got)
	}
	if _, err := svc.CreateRoom(context.Background(), chat.Actor{ID: "alice"}, "only"); err != nil {
		t.Fatal(err)
	}
	got := rooms("first: 0")
	if len(got.Nodes) != 0 {
		t.Errorf("rooms(first: 0): %d rooms, want none", len(got.Nodes))
	}
	if !got.PageInfo.HasNextPage {
		t.Errorf("rooms(first: 0) with exactly one room: hasNextPage = false, want true (a room follows)")
	}
	all := rooms("first: 1")
	if len(all.Nodes) != 1 || all.PageInfo.EndCursor == nil {
		t.Fatalf("rooms(first: 1): %+v", all)
	}
	if got := rooms(fmt.Sprintf("first: 0, after: %q", *all.PageInfo.EndCursor)); len(got.Nodes) != 0 || got.PageInfo.HasNextPage {
		t.Errorf("rooms(first: 0) after the last room: %+v, want nothing and no next page", got)
	}
}

// TestMessagesComplexity: a room's messages count their
// selections once per item the page may hold: last or first as given,
// else the default page (the latest 50), bounded by MaxPageSize.
func TestMessagesComplexity(t *testing.T) {
	c := complexity()
	n := func(v int) *int { return &v }
	for _, tt := range []struct {
		name        string
		last, first *int
		want        int
	}{
		{"default", nil, nil, 1 + 2*defaultMessagesPage.Last},
		{"last", n(100), nil, 1 + 2*100},
		{"first", nil, n(7), 1 + 2*7},
		{"last beyond a page", n(1 << 20), nil, 1 + 2*MaxPageSize},
		{"negative", n(-5), nil, 1},
	} {
		if got := c.Room.Messages(2, tt.last, nil, tt.first, nil); got != tt.want {
			t.Errorf("messages %s: complexity %d, want %d", tt.name, got, tt.want)
		}
	}
	if got, want := c.Query.Rooms(2, nil, nil), 1+2*defaultRoomsPage.First; got != want {
		t.Errorf("rooms default: complexity %d, want %d", got, want)
	}
	if got, want := c.Room.Members(2, n(3), nil), 1+2*3; got != want {
		t.Errorf("members(first: 3): complexity %d, want %d", got, want)
	}
}

// recordedSessions records disconnectUser's requests.
type recordedSessions struct {
	err   error
	users []string
}

func (s *recordedSessions) DisconnectUser(_ context.Context, userID string) error {
	s.users = append(s.users, userID)
	return s.err
}

// TestDisconnectUserRules: disconnectUser needs an
// administrator, a user ID no longer than any user's (counted in
// characters, as auth counts them), and a way to tell the replicas; a
// failure to tell them is UNAVAILABLE, not success.
func TestDisconnectUserRules(t *testing.T) {
	admin := auth.NewContext(context.Background(), auth.Identity{UserID: "root", Admin: true})
	user := auth.NewContext(context.Background(), auth.Identity{UserID: "bob"})
	longest := strings.Repeat("é", auth.MaxUserIDLength) // more bytes than MaxUserIDLength, not characters
	for _, tt := range []struct {
		name     string
		ctx      context.Context
		userID   string
		sessions Disconnector
		code     chat.Code // "" for success
	}{
		{"anonymous", context.Background(), "alice", &recordedSessions{}, chat.CodeUnauthenticated},
		{"not an administrator", user, "alice", &recordedSessions{}, chat.CodeForbidden},
		{"empty user ID", admin, "", &recordedSessions{}, chat.CodeBadUserInput},
		{"ASCII ID at the limit", admin, strings.Repeat("m", auth.MaxUserIDLength), &recordedSessions{}, ""},
		{"non-ASCII ID at the limit", admin, longest, &recordedSessions{}, ""},
		{"one character over", admin, longest + "é", &recordedSessions{}, chat.CodeBadUserInput},
		{"no sessions", admin, "alice", nil, chat.CodeUnavailable},
		{"replicas not told", admin, "alice", &recordedSessions{err: errors.New("nats: timeout")}, chat.CodeUnavailable},
		{"told", admin, "alice", &recordedSessions{}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := mutationResolver{&Resolver{sessions: tt.sessions}}
			ok, err := r.DisconnectUser(tt.ctx, tt.userID)
			if tt.code == "" {
				if err != nil || !ok {
					t.Fatalf("disconnectUser(%d characters) = %v, %v; want true", len([]rune(tt.userID)), ok, err)
				}
				if got := tt.sessions.(*recordedSessions).users; len(got) != 1 || got[0] != tt.userID {
					t.Fatalf("replicas told of %q, want %q once", got, tt.userID)
				}
				return
			}
			chatErr, isChat := errors.AsType[*chat.Error](err)
			if ok || !isChat || chatErr.Code != tt.code {
				t.Fatalf("disconnectUser = %v, %v; want false, %s", ok, err, tt.code)
			}
		})
	}
}

// answeringSession is a WebSocket session whose Refresh answers as
// told.
type answeringSession struct {
	id  auth.Identity
	err error
}

func (s answeringSession) Refresh(context.Context, string) (auth.Identity, error) {
	return s.id, s.err
}

// TestRefreshSessionRules: refreshSession's errors say whose
// mistake it is: another user's token FORBIDDEN, a bad token
// UNAUTHENTICATED, a failure to check it UNAVAILABLE; a token without an
// expiry gives no expiresAt.
func TestRefreshSessionRules(t *testing.T) {
	r := mutationResolver{&Resolver{}}
	if _, err := r.RefreshSession(context.Background(), "t"); err == nil {
		t.Error("refreshSession outside a WebSocket: no error, want BAD_USER_INPUT")
	} else if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != chat.CodeBadUserInput {
		t.Errorf("refreshSession outside a WebSocket: %v, want BAD_USER_INPUT", err)
	}
	for _, tt := range []struct {
		name string
		err  error
		code chat.Code
	}{
		{"another user", auth.ErrOtherUser, chat.CodeForbidden},
		{"bad token", fmt.Errorf("token expired: %w", auth.ErrInvalidCredentials), chat.CodeUnauthenticated},
		{"not checked", errors.New("jwks: connection refused"), chat.CodeUnavailable},
	} {
		ctx := auth.WithSession(context.Background(), answeringSession{err: tt.err})
		_, err := r.RefreshSession(ctx, "t")
		if chatErr, ok := errors.AsType[*chat.Error](err); !ok || chatErr.Code != tt.code {
			t.Errorf("refreshSession, %s: %v, want %s", tt.name, err, tt.code)
		}
	}
	ctx := auth.WithSession(context.Background(), answeringSession{id: auth.Identity{UserID: "alice"}})
	s, err := r.RefreshSession(ctx, "t")
	if err != nil || s.User == nil || s.User.ID != "alice" || s.ExpiresAt != nil {
		t.Errorf("refreshSession without an expiry: %+v, %v; want alice and no expiresAt", s, err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	ctx = auth.WithSession(context.Background(), answeringSession{id: auth.Identity{UserID: "alice", ExpiresAt: at}})
	if s, err := r.RefreshSession(ctx, "t"); err != nil || s.ExpiresAt == nil || !s.ExpiresAt.Equal(at) || s.ExpiresAt.Location() != time.UTC {
		t.Errorf("refreshSession with an expiry: %+v, %v; want %v in UTC", s, err, at)
	}
}

// TestRoomsFirstZeroProbesOne: rooms(first: 0) only probes
// whether a room follows: it reads at most one room, not the whole room
// list (which a client may poll, and which holds every public room).
func TestRoomsFirstZeroProbesOne(t *testing.T) {
	svc := startChat(t)
	ctx := auth.NewContext(context.Background(), auth.Identity{UserID: "alice"})
	for i := range 300 {
		if _, err := svc.CreateRoom(context.Background(), chat.Actor{ID: "alice"}, fmt.Sprint("room ", i)); err != nil {
			t.Fatal(err)
		}
	}
	q := queryResolver{&Resolver{chat: svc, epoch: 1}}
	n := func(v int) *int { return &v }
	list := func(first int) uint64 {
		bytes, _ := allocatedBy(func() {
			for range 20 {
				conn, err := q.Rooms(ctx, n(first), nil)
				if err != nil || len(conn.Nodes) != first || !conn.PageInfo.HasNextPage {
					t.Fatalf("rooms(first: %d): %+v, %v", first, conn, err)
				}
			}
		})
		return bytes
	}
	probe, one, all := list(0), list(1), list(100)
	if probe > (one+all)/2 {
		t.Errorf("20 × rooms(first: 0) of 300 rooms allocated %d KiB, more than halfway from first: 1 (%d KiB) to first: 100 (%d KiB): the probe reads more than one room",
			probe>>10, one>>10, all>>10)
	}
}

// TestAnonymousAndMissing: an anonymous viewer is null, a
// room that does not exist is null (no error), and a mutation without an
// identity is UNAUTHENTICATED, not performed as a user with no ID.
func TestAnonymousAndMissing(t *testing.T) {
	svc := startChat(t)
	room, err := svc.CreateRoom(context.Background(), chat.Actor{ID: "alice"}, "general")
	if err != nil {
		t.Fatal(err)
	}
	do := executor(t, svc)
	if r := do("", `{ viewer { id } }`); len(r.Errors) > 0 || string(r.Data) != `{"viewer":null}` {
		t.Errorf("anonymous viewer: %s %+v, want null", r.Data, r.Errors)
	}
	if r := do("alice", `{ room(id: "no-such-room") { id } }`); len(r.Errors) > 0 || string(r.Data) != `{"room":null}` {
		t.Errorf("room of an unknown ID: %s %+v, want null", r.Data, r.Errors)
	}
	if r := do("", fmt.Sprintf(`mutation { postMessage(roomId: %q, text: "hi") { id } }`, room.ID)); r.code() != string(chat.CodeUnauthenticated) {
		t.Errorf("anonymous postMessage: %s %+v, want UNAUTHENTICATED", r.Data, r.Errors)
	}
}
