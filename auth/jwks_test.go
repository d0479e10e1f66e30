package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestParseJWK shows which JWKs become verification keys, with which
// algorithm, and why the others are skipped.
func TestParseJWK(t *testing.T) {
	rsaKeys, ecKeys := testRSA(), testEC()
	with := func(k map[string]any, over map[string]any) map[string]any {
		c := map[string]any{}
		for key, v := range k {
			c[key] = v
		}
		for key, v := range over {
			if v == nil {
				delete(c, key)
			} else {
				c[key] = v
			}
		}
		return c
	}
	rsaK := rsaJWK("r", &rsaKeys[0].PublicKey)
	p256 := ecJWK("e", &ecKeys["P-256"].PublicKey)
	offCurveY := []byte(p256["y"].(string))
	if offCurveY[3] == 'A' {
		offCurveY[3] = 'B'
	} else {
		offCurveY[3] = 'A'
	}

	tests := []struct {
		name    string
		jwk     any
		wantAlg string
		wantErr string
	}{
		{"RSA", rsaK, "RS256", ""},
		{"RSA without alg or use", with(rsaK, map[string]any{"alg": nil, "use": nil}), "RS256", ""},
		{"RSA with padded base64", with(rsaK, map[string]any{"e": "AQAB="}), "RS256", ""},
		{"RSA key_ops verify", with(rsaK, map[string]any{"key_ops": []string{"verify"}}), "RS256", ""},
		{"EC P-256", p256, "ES256", ""},
		{"EC P-384", ecJWK("e", &ecKeys["P-384"].PublicKey), "ES384", ""},
		{"EC P-521", ecJWK("e", &ecKeys["P-521"].PublicKey), "ES512", ""},
		{"EC with matching alg", with(p256, map[string]any{"alg": "ES256"}), "ES256", ""},

		{"not an object", "key", "", "not a JWK"},
		{"no kty", with(rsaK, map[string]any{"kty": nil}), "", `kid "r": no "kty"`},
		{"OKP", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "AA"}, "", `kty "OKP" is not supported (want RSA or EC)`},
		{"encryption key", with(rsaK, map[string]any{"use": "enc"}), "", `use "enc" is not "sig"`},
		{"key_ops without verify", with(rsaK, map[string]any{"key_ops": []string{"sign"}}), "", `key_ops does not include "verify"`},
		{"private key", with(rsaK, map[string]any{"d": "AQAB"}), "", "contains private key material"},
		{"RSA PS256", with(rsaK, map[string]any{"alg": "PS256"}), "", `alg "PS256" is not supported for this key (want RS256)`},
		{"RSA no n", with(rsaK, map[string]any{"n": nil}), "", `RSA key has a missing or invalid "n"`},
		{"RSA bad base64", with(rsaK, map[string]any{"n": "!!"}), "", `RSA key has a missing or invalid "n"`},
		{"RSA e even", with(rsaK, map[string]any{"e": b64([]byte{1, 0, 0})}), "", "invalid public exponent 65536"},
		{"RSA e one", with(rsaK, map[string]any{"e": b64([]byte{1})}), "", "invalid public exponent 1"},
		{"RSA e too long", with(rsaK, map[string]any{"e": b64([]byte{1, 0, 0, 0, 1})}), "", `invalid "e"`},
		// crypto/rsa verifies nothing with an exponent above 2^31-1: such a
		// key would turn every token into "signature is invalid".
		{"RSA e above 2^31-1", with(rsaK, map[string]any{"e": b64([]byte{0xff, 0xff, 0xff, 0xff})}), "", "invalid public exponent 4294967295"},
		{"RSA e 2^31-1", with(rsaK, map[string]any{"e": b64([]byte{0x7f, 0xff, 0xff, 0xff})}), "RS256", ""},
		{"RSA even modulus", with(rsaK, map[string]any{"n": b64(append([]byte{0x80}, make([]byte, 255)...))}), "", "RSA key has an even modulus"},
		{"RSA short modulus", with(rsaK, map[string]any{"n": b64(make([]byte, 128))}), "", "RSA key has 0 bits"},
		{"EC alg for another curve", with(p256, map[string]any{"alg": "ES384"}), "", `alg "ES384" is not supported for this key (want ES256)`},
		{"EC unknown curve", with(p256, map[string]any{"crv": "secp256k1"}), "", `EC curve "secp256k1" is not supported`},
		{"EC short x", with(p256, map[string]any{"x": b64(make([]byte, 31))}), "", `EC key has missing or invalid "x"/"y" (want 32 bytes each)`},
		{"EC point off the curve", with(p256, map[string]any{"y": string(offCurveY)}), "", "EC key is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(tt.jwk)
			if err != nil {
				t.Fatal(err)
			}
			k, err := parseJWK(raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseJWK = %+v, %v; want error containing %q", k, err, tt.wantErr)
				}
				return
			}
			if err != nil || k.alg != tt.wantAlg || k.key == nil {
				t.Fatalf("parseJWK = %+v, %v; want alg %s", k, err, tt.wantAlg)
			}
		})
	}
}

// TestParseJWKSSkipsUnusableKeys shows that a set mixing usable and
// unusable keys keeps the usable ones.
func TestParseJWKSSkipsUnusableKeys(t *testing.T) {
	set, err := parseJWKS(jwksJSON(
		map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
		rsaJWK("r", &testRSA()[0].PublicKey),
	))
	if err != nil {
		t.Fatal(err)
	}
	if len(set.keys) != 1 || set.keys[0].kid != "r" {
		t.Fatalf("keys = %+v", set.keys)
	}
}

// jwksServer serves a switchable JWK Set and counts requests.
type jwksServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	status   int
	gate     chan struct{} // when non-nil, requests wait for it to close
	entered  chan struct{} // receives once per request that reached the gate
	left     chan struct{} // receives once per gated request its client abandoned
	requests int
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: http.StatusOK, entered: make(chan struct{}, 1000), left: make(chan struct{}, 1000)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		body, status, gate := s.body, s.status, s.gate
		s.mu.Unlock()
		if gate != nil {
			s.entered <- struct{}{}
			select {
			case <-gate:
			case <-r.Context().Done():
				s.left <- struct{}{}
				return
			}
		}
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.status = body, status
}

func (s *jwksServer) setGate(gate chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = gate
}

func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// rsTok signs claims valid for a day with RSA key i under kid (a day, as
// these tests move the clock by hours).
func rsTok(t *testing.T, i int, kid string) string {
	return sign(t, jwt.SigningMethodRS256, testRSA()[i], kid,
		claims(map[string]any{"iss": nil, "aud": nil, "exp": testStart.Add(24 * time.Hour).Unix()}))
}

// expect runs one FromRequest and checks the outcome and the server's
// request count.
func expect(t *testing.T, j *JWT, srv *jwksServer, tok, wantErr string, wantFetches int) {
	t.Helper()
	id, ok, err := j.FromRequest(bearer(tok))
	checkResult(t, id, ok, err, wantErr)
	if n := srv.count(); n != wantFetches {
		t.Fatalf("JWKS fetched %d times, want %d", n, wantFetches)
	}
}

// TestJWKSURLRotation shows an unknown kid refetching the set, so a key
// the provider rotates in works without a restart, and MinRefreshInterval
// bounding how often that happens.
func TestJWKSURLRotation(t *testing.T) {
	rsaKeys := testRSA()
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
	if n := srv.count(); n != 1 {
		t.Fatalf("NewJWT fetched %d times, want 1", n)
	}
	expect(t, j, srv, rsTok(t, 0, "a"), "", 1)

	srv.set(jwksJSON(rsaJWK("b", &rsaKeys[1].PublicKey)), http.StatusOK)
	// Within MinRefreshInterval of the start-up fetch: no refetch.
	expect(t, j, srv, rsTok(t, 1, "b"), `jwt: unknown key id "b"`, 1)

	clock.Advance(DefaultMinRefreshInterval)
	expect(t, j, srv, rsTok(t, 1, "b"), "", 2)
	// The rotated-out key is gone, and asking for it again does not refetch.
	expect(t, j, srv, rsTok(t, 0, "a"), `jwt: unknown key id "a"`, 2)
	expect(t, j, srv, rsTok(t, 1, "b"), "", 2)
}

// burst has callers present tok at once while the JWKS server holds its
// response at gate, and returns their errors. It releases the gate only
// once every caller waits on the one refetch under way, and fails if any
// caller had returned before that: each must wait for the shared fetch
// rather than give up or fetch on its own.
func burst(t *testing.T, j *JWT, srv *jwksServer, gate chan struct{}, callers int, tok string) []error {
	t.Helper()
	joined := make(chan struct{}, callers)
	j.jwks.joined = func() { joined <- struct{}{} }
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			_, _, err := j.FromRequest(bearer(tok))
			errs <- err
		})
	}
	failure := ""
	deadline := time.After(10 * time.Second)
	for i := 0; i <= callers && failure == ""; i++ {
		wait := joined
		if i == callers {
			wait = srv.entered // and the fetch has reached the server
		}
		select {
		case <-wait:
		case <-deadline:
			failure = fmt.Sprintf("after 10s, %d of %d callers wait on a refetch that has reached the server", i, callers)
		}
	}
	if n := len(errs); failure == "" && n != 0 {
		failure = fmt.Sprintf("%d callers returned before the refetch they share finished", n)
	}
	close(gate)
	wg.Wait()
	j.jwks.joined = nil
	if failure != "" {
		t.Fatal(failure)
	}
	close(errs)
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// TestJWKSURLRefetchBurst shows a burst of tokens with unknown kids,
// arriving together, costing one fetch: concurrent callers share it, and
// later ones are held back by MinRefreshInterval.
func TestJWKSURLRefetchBurst(t *testing.T) {
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &testRSA()[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, MinRefreshInterval: 30 * time.Second, Now: clock.Now})
	clock.Advance(30 * time.Second)

	gate := make(chan struct{})
	srv.setGate(gate)
	tok := rsTok(t, 0, "made-up")
	for _, err := range burst(t, j, srv, gate, 64, tok) {
		if !errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), `unknown key id "made-up"`) {
			t.Fatalf("burst caller got %v", err)
		}
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start-up and one refetch)", n)
	}
	for range 10 {
		expect(t, j, srv, tok, `unknown key id "made-up"`, 2)
	}
	clock.Advance(30 * time.Second)
	expect(t, j, srv, tok, `unknown key id "made-up"`, 3)
}

// TestJWKSURLRotationUnderLoad shows why callers share the refetch: when
// the provider rotates in a key and many clients present it at once, one
// fetch serves them all, and none is refused for arriving while it ran.
func TestJWKSURLRotationUnderLoad(t *testing.T) {
	rsaKeys := testRSA()
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
	srv.set(jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey), rsaJWK("b", &rsaKeys[1].PublicKey)), http.StatusOK)
	clock.Advance(DefaultMinRefreshInterval)

	gate := make(chan struct{})
	srv.setGate(gate)
	for _, err := range burst(t, j, srv, gate, 64, rsTok(t, 1, "b")) {
		if err != nil {
			t.Fatalf("caller presenting the rotated-in key got %v", err)
		}
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start-up and one refetch)", n)
	}
}

// TestJWKSURLDownKeepsCachedKeys shows that when the provider cannot be
// reached the cached keys keep working, even past CacheTTL, while unknown
// kids are still refused as invalid credentials.
func TestJWKSURLDownKeepsCachedKeys(t *testing.T) {
	rsaKeys := testRSA()
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})

	srv.set([]byte("unavailable"), http.StatusServiceUnavailable)
	clock.Advance(DefaultJWKSCacheTTL + time.Minute)
	// The set is stale, so this refetches; the refetch fails; the stale set
	// serves.
	expect(t, j, srv, rsTok(t, 0, "a"), "", 2)
	expect(t, j, srv, rsTok(t, 1, "b"), `jwt: unknown key id "b"`, 2)

	// Unreachable rather than failing: the same.
	srv.Close()
	clock.Advance(DefaultMinRefreshInterval)
	expect(t, j, srv, rsTok(t, 0, "a"), "", 2)
	if n := j.jwks.fetchCount(); n != 3 {
		t.Fatalf("fetch attempts = %d, want 3", n)
	}
	expect(t, j, srv, rsTok(t, 1, "b"), `jwt: unknown key id "b"`, 2)
}

// TestJWKSCacheTTL shows a key withdrawn by the provider stop working once
// the cached set is older than CacheTTL, though its kid is still cached.
func TestJWKSCacheTTL(t *testing.T) {
	rsaKeys := testRSA()
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, CacheTTL: 10 * time.Minute, Now: clock.Now})
	srv.set(jwksJSON(rsaJWK("b", &rsaKeys[1].PublicKey)), http.StatusOK)

	clock.Advance(10*time.Minute - time.Second)
	expect(t, j, srv, rsTok(t, 0, "a"), "", 1)
	clock.Advance(time.Second)
	expect(t, j, srv, rsTok(t, 0, "a"), `jwt: unknown key id "a"`, 2)
	expect(t, j, srv, rsTok(t, 1, "b"), "", 2)
}

// TestJWKSNoKeysIsServerError shows that without any key set (only possible
// if no fetch ever succeeded) a token is not blamed on the client: the
// error does not wrap ErrInvalidCredentials.
func TestJWKSNoKeysIsServerError(t *testing.T) {
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &testRSA()[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
	srv.set(nil, http.StatusInternalServerError)
	j.jwks = &jwksSource{
		url: j.jwks.url, client: srv.Client(), now: clock.Now,
		fetchTimeout: time.Second, minRefresh: time.Minute, ttl: time.Hour,
	}
	for range 2 { // the second is rate-limited: it reports the last failure
		_, ok, err := j.FromRequest(bearer(rsTok(t, 0, "a")))
		if ok || err == nil || errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("FromRequest = %v, %v; want a non-credential error", ok, err)
		}
		if want := "jwt: no verification keys: jwt: fetching JWKS from " + srv.URL + ": HTTP status 500"; !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not contain %q", err, want)
		}
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}
}

// TestJWKSFetchDeadline shows every fetch bounded: at start by FetchTimeout
// and by NewJWT's context, and on refetch by FetchTimeout, after which the
// cached keys still serve.
func TestJWKSFetchDeadline(t *testing.T) {
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &testRSA()[0].PublicKey)))
	hang := make(chan struct{})
	defer close(hang)

	srv.setGate(hang)
	start := time.Now()
	_, err := NewJWT(t.Context(), JWTOptions{JWKSURL: srv.URL, FetchTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") || time.Since(start) > 5*time.Second {
		t.Fatalf("NewJWT with a hanging JWKS URL = %v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = NewJWT(ctx, JWTOptions{JWKSURL: srv.URL})
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded") || time.Since(start) > 5*time.Second {
		t.Fatalf("NewJWT with a hanging JWKS URL and a short context = %v after %v", err, time.Since(start))
	}

	srv.setGate(nil)
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, FetchTimeout: 100 * time.Millisecond, Now: clock.Now})
	srv.setGate(hang)
	clock.Advance(DefaultMinRefreshInterval)
	start = time.Now()
	_, _, err = j.FromRequest(bearer(rsTok(t, 0, "rotated")))
	if !errors.Is(err, ErrInvalidCredentials) || time.Since(start) > 5*time.Second {
		t.Fatalf("FromRequest with a hanging refetch = %v after %v", err, time.Since(start))
	}
	_, ok, err := j.FromRequest(bearer(rsTok(t, 0, "a")))
	if !ok || err != nil {
		t.Fatalf("FromRequest with a cached key = %v, %v", ok, err)
	}
}

// TestJWKSFetchSurvivesCallerHangUp shows that a caller that goes away
// (its context cancelled) while a refetch it started is under way gets its
// context error, not invalid credentials, and that the fetch goes on
// without it: it counts against MinRefreshInterval and its keys serve the
// next caller, with no second request to the provider.
func TestJWKSFetchSurvivesCallerHangUp(t *testing.T) {
	rsaKeys := testRSA()
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
	srv.set(jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey), rsaJWK("b", &rsaKeys[1].PublicKey)), http.StatusOK)
	clock.Advance(DefaultMinRefreshInterval)

	gate := make(chan struct{})
	srv.setGate(gate)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := j.FromInitPayload(ctx, map[string]any{"Authorization": rsTok(t, 1, "b")})
		done <- err
	}()
	<-srv.entered
	cancel()
	err := <-done
	if err == nil || errors.Is(err, ErrInvalidCredentials) || !errors.Is(err, context.Canceled) {
		t.Fatalf("FromInitPayload whose caller hung up = %v; want a context error, not invalid credentials", err)
	}
	// The caller returned as soon as its context ended; its fetch, held
	// at the gate, completes once let through, and serves the next caller.
	close(gate)
	id, ok, err := j.FromInitPayload(t.Context(), map[string]any{"Authorization": rsTok(t, 1, "b")})
	if !ok || err != nil || id.UserID != "user-1" {
		t.Fatalf("FromInitPayload after the hang-up = %+v, %v, %v", id, ok, err)
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (start-up and the one the hang-up started)", n)
	}
}

// TestJWKSWithoutKid shows a token without kid verified by whichever key of
// its algorithm fits, and refused when none does.
func TestJWKSWithoutKid(t *testing.T) {
	rsaKeys, ecKeys := testRSA(), testEC()
	clock := newClock()
	srv := newJWKSServer(t, jwksJSON(
		rsaJWK("a", &rsaKeys[0].PublicKey),
		rsaJWK("b", &rsaKeys[1].PublicKey),
		ecJWK("e", &ecKeys["P-256"].PublicKey),
	))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
	expect(t, j, srv, rsTok(t, 1, ""), "", 1)
	expect(t, j, srv, rsTok(t, 2, ""), "jwt: signature is invalid", 1)
	// No ES384 key at all: after MinRefreshInterval that is worth a refetch.
	clock.Advance(DefaultMinRefreshInterval)
	es384 := sign(t, jwt.SigningMethodES384, ecKeys["P-384"], "", claims(nil))
	expect(t, j, srv, es384, "jwt: no key for ES384 signatures", 2)
}

// TestJWKSRotationInPlace: a provider that rotates its key without a new
// kid (a single key and no kid, or a kid it reuses) must not lock every
// user out until CacheTTL: a signature the cached keys refuse refetches
// the set, as an unknown kid does, within MinRefreshInterval's bound, and
// verifies against the new keys, of another type too.
func TestJWKSRotationInPlace(t *testing.T) {
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

			srv.set(jwksJSON(rsaJWK(tc.kid, &rsaKeys[1].PublicKey)), http.StatusOK)
			// Within MinRefreshInterval of the last fetch: no refetch.
			expect(t, j, srv, rsTok(t, 1, tc.kid), "jwt: signature is invalid", 1)

			clock.Advance(DefaultMinRefreshInterval)
			expect(t, j, srv, rsTok(t, 1, tc.kid), "", 2)
			// A forged signature, however often, costs at most a fetch per
			// MinRefreshInterval, and is refused.
			for range 5 {
				expect(t, j, srv, rsTok(t, 2, tc.kid), "jwt: signature is invalid", 2)
			}
			expect(t, j, srv, rsTok(t, 0, tc.kid), "jwt: signature is invalid", 2)
			clock.Advance(DefaultMinRefreshInterval)
			expect(t, j, srv, rsTok(t, 2, tc.kid), "jwt: signature is invalid", 3)
			expect(t, j, srv, rsTok(t, 1, tc.kid), "", 3)

			// In place to another key type (RSA to EC): no key under the
			// kid fits the token's algorithm, which refetches as well
			// (with the kid known, this was refused until CacheTTL).
			srv.set(jwksJSON(ecJWK(tc.kid, &ecKeys["P-256"].PublicKey)), http.StatusOK)
			clock.Advance(DefaultMinRefreshInterval)
			es := sign(t, jwt.SigningMethodES256, ecKeys["P-256"], tc.kid, claims(map[string]any{"iss": nil, "aud": nil}))
			expect(t, j, srv, es, "", 4)
		})
	}
}
