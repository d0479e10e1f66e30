package graph

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// TestUserIDWhiteSpaceAgrees: addMember accepts a user ID exactly when
// auth accepts it as a token's sub, for every white space and control
// character: an ID auth refuses (bob and a no-break space, a line
// separator, …) names nobody who can ever sign in, and in the member list
// it passes for the user whose ID it looks like. chat states auth's rule
// again (it does not import auth); this holds the two together.
func TestUserIDWhiteSpaceAgrees(t *testing.T) {
	ctx := context.Background()
	secret := []byte(strings.Repeat("k", 32))
	authn, err := auth.NewJWT(ctx, auth.JWTOptions{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	svc := startChat(t)
	do := executorWithVars(t, svc)
	room, err := svc.CreatePrivateRoom(ctx, chat.Actor{ID: "alice"}, "look-alikes")
	if err != nil {
		t.Fatal(err)
	}

	ids := []string{"bob\u200b", "bob\u00ad"} // invisible, but not white space: auth accepts them
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			ids = append(ids, fmt.Sprintf("bob%c%d", r, r)) // each ID once
		}
	}
	for _, id := range ids {
		token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": id, "exp": time.Now().Add(time.Hour).Unix(),
		}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		_, ok, err := authn.FromToken(ctx, token)
		authAccepts := ok && err == nil
		resp := do("alice", `mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) { id } }`,
			map[string]any{"r": room.ID, "u": id})
		switch {
		case authAccepts && len(resp.Errors) > 0:
			t.Errorf("addMember(%+q), an ID auth accepts: %+v", id, resp.Errors)
		case !authAccepts && resp.code() != string(chat.CodeBadUserInput):
			t.Errorf("addMember(%+q), an ID auth refuses (%v): %s %+v, want BAD_USER_INPUT", id, err, resp.Data, resp.Errors)
		case !authAccepts && unicode.IsSpace([]rune(id)[3]) && !unicode.IsControl([]rune(id)[3]) &&
			!strings.Contains(resp.Errors[0].Message, "must not contain white space"):
			t.Errorf("addMember(%+q): %q, want it to name the white space", id, resp.Errors[0].Message)
		}
	}
}
