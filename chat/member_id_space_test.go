package chat

import (
	"context"
	"errors"
	"testing"
	"unicode"

	"github.com/heraldhq/herald/pubsub"
)

// TestAddMemberRefusesWhiteSpace: addMember refuses a user ID that no
// identity can have because auth refuses its white space (every
// unicode.IsSpace character but the space, U+0020): "bob\u00a0" reads as
// "bob" in the member list and names nobody who can sign in. IDs auth
// accepts stay accepted, the space and invisible characters that are not
// white space (a zero-width space) among them. The rule is addMember's
// alone: a member stored with such an ID before it (an earlier replica's
// event) is judged as before on replay, and can still be removed.
func TestAddMemberRefusesWhiteSpace(t *testing.T) {
	const wantMsg = "userId must not contain white space other than the space character (U+0020)"
	first := openLog(t, pubsub.Options{})
	svc := startService(t, first, Options{})
	ctx := context.Background()
	room, err := svc.CreatePrivateRoom(ctx, alice, "look-alikes")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      string
		wantMsg string // "" = added
	}{
		{"no-break space at the end", "bob\u00a0", wantMsg},
		{"no-break space inside", "bob\u00a0smith", wantMsg},
		{"line separator", "bob\u2028", wantMsg},
		{"paragraph separator", "\u2029bob", wantMsg},
		{"ideographic space", "bob\u3000", wantMsg},
		{"em space", "b\u2003ob", wantMsg},
		{"narrow no-break space", "bob\u202f", wantMsg},
		{"ogham space mark", "bob\u1680", wantMsg},
		{"tab: a control character", "bob\t", "userId must not contain control characters"},
		{"next line: a control character", "bob\u0085", "userId must not contain control characters"},
		{"a space inside", "bob smith", ""},
		{"a space at the end (a JWT sub may have one)", "carol ", ""},
		{"zero-width space: not white space", "dave\u200b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.AddMember(ctx, alice, room.ID, tt.id)
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("AddMember(%+q): %v, want added", tt.id, err)
				}
				return
			}
			var chatErr *Error
			if !errors.As(err, &chatErr) || chatErr.Code != CodeBadUserInput || chatErr.Message != tt.wantMsg {
				t.Fatalf("AddMember(%+q) = %v, want BAD_USER_INPUT %q", tt.id, err, tt.wantMsg)
			}
			if ok, err := svc.CanSee(ctx, tt.id, room.ID); ok || err != nil {
				t.Fatalf("%+q refused, yet a member: %v, %v", tt.id, ok, err)
			}
		})
	}

	// Every character: the rule is unicode.IsSpace but U+0020, as auth's.
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.IsControl(r) {
			continue // the judge's rule, above
		}
		id := string(r)
		if refused, want := checkProposedMemberID(id) != nil, unicode.IsSpace(r) && r != ' '; refused != want {
			t.Errorf("%+q: refused %v, want %v", id, refused, want)
		}
	}

	// A member an earlier replica stored with such an ID (proposed here
	// without addMember's rule) stands on replay and can be removed.
	stored := "eve\u00a0"
	if err := svc.propose(ctx, Event{Type: MemberAdded, Actor: alice, RoomID: room.ID, UserID: stored}, "",
		func(*roomState, uint64, bool) *Error { return nil }); err != nil {
		t.Fatalf("storing a member event as an earlier replica did: %v", err)
	}
	other := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	if ok, err := other.CanSee(ctx, stored, room.ID); !ok || err != nil {
		t.Fatalf("a replica replaying the room: %+q a member %v, %v; want a member", stored, ok, err)
	}
	if _, err := svc.RemoveMember(ctx, alice, room.ID, stored); err != nil {
		t.Fatalf("RemoveMember(%+q), added before the rule: %v", stored, err)
	}
	if ok, err := svc.CanSee(ctx, stored, room.ID); ok || err != nil {
		t.Fatalf("%+q removed, yet a member: %v, %v", stored, ok, err)
	}
}
