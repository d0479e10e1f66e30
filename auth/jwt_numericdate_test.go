package auth

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestHugeNbfIsRefused: a token whose nbf lies beyond what an int64 of
// seconds holds is not valid for billions of years (RFC 7519 §4.1.5), but
// golang-jwt converts the float64 with int64(f), which on amd64 yields
// math.MinInt64 out of range, a time in the distant past: it was accepted.
func TestHugeNbfIsRefused(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now})
	for _, nbf := range []float64{1e19, 1e300, 253402300800} {
		t.Run(fmt.Sprintf("nbf=%g", nbf), func(t *testing.T) {
			tok := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"nbf": nbf}))
			id, ok, err := j.FromRequest(bearer(tok))
			if ok || err == nil {
				t.Fatalf("token with nbf %g (not valid before the distant future) accepted as %+v (now is %v)", nbf, id, clock.Now().Format(time.RFC3339))
			}
		})
	}
}
