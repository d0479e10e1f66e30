package auth

import (
	"net/http"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSRotationInPlaceChangesAlgorithm: a provider that rotates
// its key in place under the same kid to another key type (RSA to EC)
// must be refetched as any other in-place rotation is, within
// MinRefreshInterval, not refused until CacheTTL.
func TestJWKSRotationInPlaceChangesAlgorithm(t *testing.T) {
	rsaKeys, ecKeys := testRSA(), testEC()
	for _, tc := range []struct {
		name string
		kid  string
	}{
		{"without kid", ""},
		{"kid reused", "main"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			srv := newJWKSServer(t, jwksJSON(rsaJWK(tc.kid, &rsaKeys[0].PublicKey)))
			j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
			expect(t, j, srv, rsTok(t, 0, tc.kid), "", 1)

			srv.set(jwksJSON(ecJWK(tc.kid, &ecKeys["P-256"].PublicKey)), http.StatusOK)
			clock.Advance(DefaultMinRefreshInterval)
			es := sign(t, jwt.SigningMethodES256, ecKeys["P-256"], tc.kid,
				claims(map[string]any{"iss": nil, "aud": nil}))
			// The key under the kid now is an EC key: after MinRefreshInterval
			// the set must be refetched and the token accepted.
			expect(t, j, srv, es, "", 2)
		})
	}
}
