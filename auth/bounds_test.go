package auth

import (
	"fmt"
	"math/big"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestUserNameRefusesOtherWhiteSpace: a user ID (a JWT's sub, a dev user)
// may hold spaces, but no other white space: U+2028/U+2029 are line breaks
// in many renderers and logs, and a no-break or ideographic space would
// make "alice bob" and "alice\u00a0bob" two users that look the same.
func TestUserNameRefusesOtherWhiteSpace(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now})
	for _, sub := range []string{"alice\u2028bob", "alice\u2029bob", "alice\u00a0bob", "alice\u3000bob", "alice\u2003bob"} {
		t.Run(fmt.Sprintf("%q", sub), func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"sub": sub}))
			id, ok, err := j.FromRequest(bearer(tok))
			checkResult(t, id, ok, err, "contains control characters or white space other than the space")

			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set(DevHeader, sub)
			id, ok, err = Dev{}.FromRequest(r)
			checkResult(t, id, ok, err, "contains control characters or white space other than the space")
		})
	}
	// A plain space stays allowed.
	tok := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"sub": "alice bob"}))
	id, ok, err := j.FromRequest(bearer(tok))
	checkResult(t, id, ok, err, "")
}

// TestJWTOptionsAtTheirBounds: the HS256 secret must be at least 32 bytes
// (RFC 7518 §3.2): 31 is refused, 32 taken; a negative Leeway, however
// small, is refused.
func TestJWTOptionsAtTheirBounds(t *testing.T) {
	if _, err := NewJWT(t.Context(), JWTOptions{Secret: testSecret[:31]}); err == nil {
		t.Fatal("NewJWT accepted a 31-byte HS256 secret")
	}
	newTestJWT(t, JWTOptions{Secret: testSecret[:32]})
	if _, err := NewJWT(t.Context(), JWTOptions{Secret: testSecret, Leeway: -time.Nanosecond}); err == nil {
		t.Fatal("NewJWT accepted a Leeway of -1ns")
	}
}

// TestRSAKeyOf2047BitsRefused: an RSA key one bit short of 2048 is
// refused, and the error names its size.
func TestRSAKeyOf2047BitsRefused(t *testing.T) {
	n := new(big.Int).Lsh(big.NewInt(1), 2046) // 2047 bits
	n.SetBit(n, 0, 1)                          // odd, so only its size is wrong
	raw := fmt.Sprintf(`{"kty":"RSA","kid":"short","n":%q,"e":"AQAB"}`, b64(n.Bytes()))
	if _, err := parseJWK([]byte(raw)); err == nil || !strings.Contains(err.Error(), "2047 bits") {
		t.Fatalf("2047-bit RSA key: err %v, want a refusal naming 2047 bits", err)
	}
}

// TestJWKSRefetchBoundIsTheWholeInterval: made-up kids cost the provider
// at most one fetch per MinRefreshInterval, the whole of it: a second
// before it ends, none; once it has, one.
func TestJWKSRefetchBoundIsTheWholeInterval(t *testing.T) {
	rsaKeys := testRSA()
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
	clock.Advance(DefaultMinRefreshInterval - time.Second)
	expect(t, j, srv, rsTok(t, 1, "made-up"), `jwt: unknown key id "made-up"`, 1)
	clock.Advance(time.Second)
	expect(t, j, srv, rsTok(t, 1, "made-up"), `jwt: unknown key id "made-up"`, 2)
}

// TestNumericDateBelowYearZero: a time claim before year 0 is refused as
// out of range, as one after 9999 is.
func TestNumericDateBelowYearZero(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now})
	tok := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"iat": float64(minNumericDate - 1)}))
	id, ok, err := j.FromRequest(bearer(tok))
	checkResult(t, id, ok, err, "out of range")
}
