package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"
)

// signRawHS256 signs a token whose claims are exactly payload, which may
// hold what encoding/json would never write: lone surrogate escapes, bytes
// that are not UTF-8.
func signRawHS256(payload string) string {
	head := b64([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body := b64([]byte(payload))
	mac := hmac.New(sha256.New, testSecret)
	mac.Write([]byte(head + "." + body))
	return head + "." + body + "." + b64(mac.Sum(nil))
}

// TestJWTClaimsMustBeText: two different subs must stay two users, but
// encoding/json reads a lone surrogate escape ("\ud800", "\udbff") and a
// byte that is not UTF-8 as U+FFFD, so the tokens of such subs were all
// taken as the user "\ufffd", who could then act as the others. They are
// refused; a sub that is U+FFFD itself, or a pair, is not.
func TestJWTClaimsMustBeText(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now})
	exp := testStart.Add(time.Hour).Unix()
	for _, tt := range []struct {
		sub     string // the sub claim's JSON text
		user    string // "" for refused
		wantErr string
	}{
		{`"\ufffd"`, "\ufffd", ""},
		{`"alice\ud83d\ude00"`, "alice😀", ""},
		{`"\ud800"`, "", "half of a UTF-16 surrogate pair alone"},
		{`"alice\udbff"`, "", "half of a UTF-16 surrogate pair alone"},
		{`"alice\udc00x"`, "", "half of a UTF-16 surrogate pair alone"},
		{"\"\xff\"", "", "not valid UTF-8"},
		{"\"alice\xfe\"", "", "not valid UTF-8"},
	} {
		tok := signRawHS256(fmt.Sprintf(`{"sub":%s,"exp":%d}`, tt.sub, exp))
		id, ok, err := j.FromRequest(bearer(tok))
		checkResult(t, id, ok, err, tt.wantErr)
		if tt.wantErr == "" && id.UserID != tt.user {
			t.Errorf("sub %+q: user %+q, want %+q", tt.sub, id.UserID, tt.user)
		}
	}
}
