package graph

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// TestUserIDLimitsAgree: whoever auth lets act can be added to a private
// room, and a user ID auth refuses for length is refused by addMember too.
// auth bounds a token's sub in characters; chat's member rule must count
// the same way, or a user with a long non-ASCII ID could post but never be
// added to a private room.
func TestUserIDLimitsAgree(t *testing.T) {
	if chat.MaxUserIDLength != auth.MaxUserIDLength {
		t.Fatalf("chat.MaxUserIDLength = %d, auth.MaxUserIDLength = %d", chat.MaxUserIDLength, auth.MaxUserIDLength)
	}
	if auth.MaxDevUserLength > chat.MaxUserIDLength {
		t.Fatalf("auth.MaxDevUserLength = %d, more than chat.MaxUserIDLength = %d", auth.MaxDevUserLength, chat.MaxUserIDLength)
	}
	ctx := context.Background()
	secret := []byte(strings.Repeat("k", 32))
	authn, err := auth.NewJWT(ctx, auth.JWTOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	svc := startChat(t)
	do := executor(t, svc)
	alice := chat.Actor{ID: "alice"}

	for _, tt := range []struct {
		name string
		id   string
		ok   bool // auth accepts it, so addMember must
	}{
		{"ASCII at auth's limit", strings.Repeat("a", auth.MaxUserIDLength), true},
		{"two-byte characters at auth's limit", strings.Repeat("é", auth.MaxUserIDLength), true},
		{"four-byte characters at auth's limit", strings.Repeat("😀", auth.MaxUserIDLength), true},
		{"one character over auth's limit", strings.Repeat("é", auth.MaxUserIDLength+1), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
				"sub": tt.id, "exp": time.Now().Add(time.Hour).Unix(),
			}).SignedString(secret)
			if err != nil {
				t.Fatal(err)
			}
			id, ok, err := authn.FromToken(ctx, token)
			if (ok && err == nil) != tt.ok {
				t.Fatalf("auth: ok %v, err %v; want accepted: %v", ok, err, tt.ok)
			}
			room, err := svc.CreatePrivateRoom(ctx, alice, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			resp := do("alice", fmt.Sprintf(`mutation { addMember(roomId: %q, userId: %q) { id } }`, room.ID, tt.id))
			if !tt.ok {
				if len(resp.Errors) == 0 || resp.Errors[0].Extensions["code"] != string(chat.CodeBadUserInput) {
					t.Fatalf("addMember of an ID auth refuses: %s %+v, want BAD_USER_INPUT", resp.Data, resp.Errors)
				}
				return
			}
			if len(resp.Errors) > 0 {
				t.Fatalf("addMember of an identity auth accepts (%d bytes): %+v", len(id.UserID), resp.Errors)
			}
			resp = do(id.UserID, fmt.Sprintf(`mutation { postMessage(roomId: %q, text: "hi") { id } }`, room.ID))
			if len(resp.Errors) > 0 {
				t.Fatalf("the added user posts: %+v", resp.Errors)
			}
		})
	}
}
