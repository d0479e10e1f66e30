package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Keys are generated once per test binary: RSA generation is slow, more so
// under -race.
var (
	testRSA = sync.OnceValue(func() []*rsa.PrivateKey {
		keys := make([]*rsa.PrivateKey, 3)
		for i := range keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			keys[i] = k
		}
		return keys
	})
	testEC = sync.OnceValue(func() map[string]*ecdsa.PrivateKey {
		keys := map[string]*ecdsa.PrivateKey{}
		for name, c := range map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()} {
			k, err := ecdsa.GenerateKey(c, rand.Reader)
			if err != nil {
				panic(err)
			}
			keys[name] = k
		}
		return keys
	})
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// testStart is the fake clock's start; tokens' times are relative to it.
var testStart = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: testStart} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, pub *rsa.PublicKey) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func ecJWK(kid string, pub *ecdsa.PublicKey) map[string]any {
	raw, err := pub.Bytes()
	if err != nil {
		panic(err)
	}
	size := (len(raw) - 1) / 2
	return map[string]any{
		"kty": "EC", "kid": kid, "crv": pub.Curve.Params().Name,
		"x": b64(raw[1 : 1+size]), "y": b64(raw[1+size:]),
	}
}

func jwksJSON(keys ...map[string]any) []byte {
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

func writeJWKS(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// claims returns valid claims for the fake clock, with overrides applied;
// a nil override deletes the claim.
func claims(over map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":  "user-1",
		"name": "Alice Smith",
		"iss":  "https://issuer.example",
		"aud":  "herald",
		"exp":  testStart.Add(time.Hour).Unix(),
		"iat":  testStart.Add(-time.Minute).Unix(),
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, kid string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestJWT(t *testing.T, opts JWTOptions) *JWT {
	t.Helper()
	j, err := NewJWT(t.Context(), opts)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	return j
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// checkResult asserts a FromRequest/FromInitPayload outcome: wantErr ""
// means success, otherwise an invalid-credentials error containing wantErr.
func checkResult(t *testing.T, id Identity, ok bool, err error, wantErr string) {
	t.Helper()
	if wantErr == "" {
		if err != nil || !ok {
			t.Fatalf("got %+v, %v, %v; want success", id, ok, err)
		}
		return
	}
	if err == nil || ok {
		t.Fatalf("got %+v, %v, %v; want error containing %q", id, ok, err, wantErr)
	}
	if !errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("error %q does not wrap ErrInvalidCredentials", err)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("error %q does not contain %q", err, wantErr)
	}
}

// TestJWTVerify runs tokens past authenticators of each key source and
// checks both the verdict and that refusals say why.
func TestJWTVerify(t *testing.T) {
	rsaKeys, ecKeys := testRSA(), testEC()
	clock := newClock()
	common := JWTOptions{Issuer: "https://issuer.example", Audience: "herald", Now: clock.Now}

	set := jwksJSON(
		rsaJWK("rsa-1", &rsaKeys[0].PublicKey),
		ecJWK("ec-256", &ecKeys["P-256"].PublicKey),
		ecJWK("ec-384", &ecKeys["P-384"].PublicKey),
		ecJWK("ec-521", &ecKeys["P-521"].PublicKey),
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(set)
	}))
	defer srv.Close()

	withSecret := common
	withSecret.Secret = testSecret
	withFile := common
	withFile.JWKSFile = writeJWKS(t, set)
	withURL := common
	withURL.JWKSURL = srv.URL
	both := withFile
	both.Secret = testSecret
	authn := map[string]*JWT{
		"secret": newTestJWT(t, withSecret),
		"file":   newTestJWT(t, withFile),
		"url":    newTestJWT(t, withURL),
		"both":   newTestJWT(t, both),
	}

	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKeys[0].PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	hs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodHS256, testSecret, "", c) }
	rs := func(kid string, c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, rsaKeys[0], kid, c) }
	valid := claims(nil)
	expired := testStart.Add(-time.Second)
	notBefore := testStart.Add(time.Minute)

	tests := []struct {
		name    string
		authn   []string // which authenticators see the token
		token   string
		wantErr string // "" for success
	}{
		{"HS256 valid", []string{"secret", "both"}, hs(valid), ""},
		{"RS256 valid", []string{"file", "url", "both"}, rs("rsa-1", valid), ""},
		{"ES256 valid", []string{"file", "url"}, sign(t, jwt.SigningMethodES256, ecKeys["P-256"], "ec-256", valid), ""},
		{"ES384 valid", []string{"file"}, sign(t, jwt.SigningMethodES384, ecKeys["P-384"], "ec-384", valid), ""},
		{"ES512 valid", []string{"file"}, sign(t, jwt.SigningMethodES512, ecKeys["P-521"], "ec-521", valid), ""},
		{"RS256 without kid tries every RSA key", []string{"file"}, rs("", valid), ""},

		{"HS256 wrong secret", []string{"secret", "both"},
			sign(t, jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes"), "", valid), "jwt: signature is invalid"},
		{"RS256 wrong key", []string{"file", "url"},
			sign(t, jwt.SigningMethodRS256, rsaKeys[1], "rsa-1", valid), "jwt: signature is invalid"},
		{"ES256 wrong key", []string{"file"},
			sign(t, jwt.SigningMethodES256, ecKeys["P-256"], "ec-384", valid), `jwt: key "ec-384" cannot verify ES256 signatures`},
		{"wrong issuer", []string{"secret"}, hs(claims(map[string]any{"iss": "https://evil.example"})),
			`jwt: issuer "https://evil.example" is not the expected "https://issuer.example"`},
		{"no issuer", []string{"secret"}, hs(claims(map[string]any{"iss": nil})), `jwt: token has no issuer, want "https://issuer.example"`},
		{"wrong audience", []string{"file"}, rs("rsa-1", claims(map[string]any{"aud": []string{"other", "api"}})),
			`jwt: audience ["other" "api"] does not include the expected "herald"`},
		{"no audience", []string{"secret"}, hs(claims(map[string]any{"aud": nil})), `jwt: token has no audience, want "herald"`},
		{"expired", []string{"secret", "both"}, hs(claims(map[string]any{"exp": expired.Unix()})),
			"jwt: token expired at 2030-01-02T03:04:04Z"},
		{"expires exactly now", []string{"secret"}, hs(claims(map[string]any{"exp": testStart.Unix()})),
			"jwt: token expired at"},
		{"not yet valid", []string{"secret"}, hs(claims(map[string]any{"nbf": notBefore.Unix()})),
			"jwt: token is not valid before 2030-01-02T03:05:05Z"},
		{"expired and wrong issuer", []string{"secret"}, hs(claims(map[string]any{"exp": expired.Unix(), "iss": "x"})),
			`jwt: token expired at 2030-01-02T03:04:04Z; issuer "x" is not the expected`},
		{"no exp", []string{"secret"}, hs(claims(map[string]any{"exp": nil})), "jwt: token has no exp claim (tokens must expire)"},
		{"exp not a number", []string{"secret"}, hs(claims(map[string]any{"exp": "tomorrow"})), "jwt: exp claim is not a number"},
		{"nbf not a number", []string{"secret"}, hs(claims(map[string]any{"nbf": "soon"})), "jwt: nbf claim is not a number"},
		{"iss not a string", []string{"secret"}, hs(claims(map[string]any{"iss": 7})), "jwt: iss claim is not a string"},
		{"aud not strings", []string{"secret"}, hs(claims(map[string]any{"aud": []any{"herald", 7}})),
			"jwt: aud claim is not a string or an array of strings"},
		{"empty audience", []string{"secret"}, hs(claims(map[string]any{"aud": []string{""}})), `jwt: token has no audience, want "herald"`},
		{"no exp and no audience", []string{"secret"}, hs(claims(map[string]any{"exp": nil, "aud": nil})),
			`jwt: token has no exp claim (tokens must expire); token has no audience, want "herald"`},
		{"expired, not yet valid and wrong audience", []string{"secret"},
			hs(claims(map[string]any{"exp": expired.Unix(), "nbf": notBefore.Unix(), "aud": "api"})),
			`jwt: token expired at 2030-01-02T03:04:04Z; token is not valid before 2030-01-02T03:05:05Z; audience ["api"] does not include the expected "herald"`},
		{"no sub", []string{"secret"}, hs(claims(map[string]any{"sub": nil})), "jwt: token has no sub claim"},
		{"empty sub", []string{"secret"}, hs(claims(map[string]any{"sub": ""})), "jwt: sub claim is empty"},
		{"numeric sub", []string{"secret"}, hs(claims(map[string]any{"sub": 42})), "jwt: sub claim must be a string, got a number"},
		{"sub too long", []string{"secret"}, hs(claims(map[string]any{"sub": strings.Repeat("é", MaxUserIDLength+1)})),
			"jwt: sub claim has 257 characters, at most 256 allowed"},
		{"sub longest", []string{"secret"}, hs(claims(map[string]any{"sub": strings.Repeat("é", MaxUserIDLength)})), ""},
		{"sub with newline", []string{"secret"}, hs(claims(map[string]any{"sub": "a\nb"})),
			"jwt: sub claim contains control characters or white space other than the space"},

		{"alg none", []string{"secret", "file", "url", "both"},
			sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", valid), `jwt: signing algorithm "none" is not accepted`},
		{"HS256 keyed with the RSA public key", []string{"file", "url"},
			sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", valid), `jwt: signing algorithm "HS256" is not accepted (want RS256, ES256, ES384, ES512)`},
		{"HS256 keyed with the RSA public key, secret also set", []string{"both"},
			sign(t, jwt.SigningMethodHS256, pubPEM, "rsa-1", valid), "jwt: signature is invalid"},
		{"RS256 to a secret-only authenticator", []string{"secret"}, rs("rsa-1", valid),
			`jwt: signing algorithm "RS256" is not accepted (want HS256)`},
		{"RS384 is not accepted", []string{"file"}, sign(t, jwt.SigningMethodRS384, rsaKeys[0], "rsa-1", valid),
			`jwt: signing algorithm "RS384" is not accepted`},
		{"unknown kid", []string{"file", "url"}, rs("rsa-9", valid), `jwt: unknown key id "rsa-9"`},
		{"kid not a string", []string{"file"}, func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, valid)
			tok.Header["kid"] = 7
			s, err := tok.SignedString(rsaKeys[0])
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(), "jwt: kid header must be a string, got a number"},
		{"malformed", []string{"secret", "file"}, "not.a.jwt", "jwt: malformed token"},
		{"two segments", []string{"secret"}, "abc.def", "jwt: malformed token"},
		{"oversized", []string{"secret"}, strings.Repeat("a", maxTokenBytes+1), "jwt: token is 16385 bytes, at most 16384 allowed"},
	}
	for _, tt := range tests {
		for _, name := range tt.authn {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				id, ok, err := authn[name].FromRequest(bearer(tt.token))
				checkResult(t, id, ok, err, tt.wantErr)
				if tt.wantErr != "" && !strings.HasPrefix(err.Error(), "invalid credentials: Authorization header: jwt: ") {
					t.Fatalf("error %q does not say where the token came from", err)
				}
			})
		}
	}
}

// TestJWTLeeway shows Leeway tolerating skew on exp and nbf, and no more.
func TestJWTLeeway(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, Leeway: 30 * time.Second, Now: clock.Now})
	tests := []struct {
		name    string
		over    map[string]any
		wantErr string
	}{
		{"expired within leeway", map[string]any{"exp": testStart.Add(-29 * time.Second).Unix()}, ""},
		{"expired beyond leeway", map[string]any{"exp": testStart.Add(-31 * time.Second).Unix()}, "token expired at"},
		{"nbf within leeway", map[string]any{"nbf": testStart.Add(29 * time.Second).Unix()}, ""},
		{"nbf beyond leeway", map[string]any{"nbf": testStart.Add(31 * time.Second).Unix()}, "token is not valid before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok, err := j.FromRequest(bearer(sign(t, jwt.SigningMethodHS256, testSecret, "", claims(tt.over))))
			checkResult(t, id, ok, err, tt.wantErr)
		})
	}
}

// TestJWTIdentity shows how claims become an Identity.
func TestJWTIdentity(t *testing.T) {
	clock := newClock()
	exp := testStart.Add(90 * time.Minute)
	tests := []struct {
		name      string
		opts      JWTOptions
		over      map[string]any
		wantName  string
		wantUntil time.Time
	}{
		{"name claim", JWTOptions{}, nil, "Alice Smith", exp},
		{"custom name claim", JWTOptions{NameClaim: "preferred_username"},
			map[string]any{"preferred_username": "alice"}, "alice", exp},
		{"custom name claim absent falls back to sub", JWTOptions{NameClaim: "preferred_username"}, nil, "user-1", exp},
		{"no name falls back to sub", JWTOptions{}, map[string]any{"name": nil}, "user-1", exp},
		{"empty name falls back to sub", JWTOptions{}, map[string]any{"name": " \t"}, "user-1", exp},
		{"non-string name falls back to sub", JWTOptions{}, map[string]any{"name": map[string]any{"first": "A"}}, "user-1", exp},
		{"name with line breaks is cleaned", JWTOptions{}, map[string]any{"name": "  Alice\n\tSmith\x00 "}, "Alice Smith", exp},
		{"long name is cut", JWTOptions{}, map[string]any{"name": strings.Repeat("ü", 100)}, strings.Repeat("ü", MaxNameLength), exp},
		{"long sub as name is cut", JWTOptions{}, map[string]any{"name": nil, "sub": strings.Repeat("s", 100)},
			strings.Repeat("s", MaxNameLength), exp},
		{"ExpiresAt includes leeway", JWTOptions{Leeway: 10 * time.Second}, nil, "Alice Smith", exp.Add(10 * time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.Secret, opts.Now = testSecret, clock.Now
			j := newTestJWT(t, opts)
			over := map[string]any{"exp": exp.Unix()}
			for k, v := range tt.over {
				over[k] = v
			}
			c := claims(over)
			id, ok, err := j.FromRequest(bearer(sign(t, jwt.SigningMethodHS256, testSecret, "", c)))
			if err != nil || !ok {
				t.Fatalf("FromRequest = %+v, %v, %v", id, ok, err)
			}
			if id.UserID != c["sub"] || id.Name != tt.wantName || !id.ExpiresAt.Equal(tt.wantUntil) {
				t.Fatalf("identity = %+v, want UserID %q, Name %q, ExpiresAt %v", id, c["sub"], tt.wantName, tt.wantUntil)
			}
		})
	}
}

// TestJWTFromRequest covers where FromRequest looks for a token and how it
// treats malformed headers.
func TestJWTFromRequest(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, CookieName: "herald_token", Now: clock.Now})
	noCookie := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now})
	good := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))
	bad := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"exp": testStart.Add(-time.Hour).Unix()}))

	tests := []struct {
		name    string
		authn   *JWT
		headers []string // Authorization header values
		cookie  string   // herald_token cookie value, if not ""
		wantOK  bool
		wantErr string
	}{
		{"anonymous", j, nil, "", false, ""},
		{"Bearer", j, []string{"Bearer " + good}, "", true, ""},
		{"scheme is case-insensitive", j, []string{"bEARER " + good}, "", true, ""},
		{"extra spaces", j, []string{"  Bearer   " + good + "  "}, "", true, ""},
		{"empty header is anonymous", j, []string{""}, "", false, ""},
		{"blank header is anonymous", j, []string{"   "}, "", false, ""},
		{"Basic scheme", j, []string{"Basic dXNlcjpwYXNz"}, "", false, `jwt: Authorization scheme "Basic" is not Bearer`},
		{"bare token", j, []string{good}, "", false, "jwt: Authorization scheme must be Bearer"},
		{"Bearer without token", j, []string{"Bearer"}, "", false, "jwt: empty Bearer token"},
		{"Bearer with blank token", j, []string{"Bearer   "}, "", false, "jwt: empty Bearer token"},
		{"two headers", j, []string{"Bearer " + good, "Bearer " + good}, "", false, "jwt: 2 Authorization headers, want one"},
		{"expired Bearer", j, []string{"Bearer " + bad}, "", false, "invalid credentials: Authorization header: jwt: token expired"},
		{"cookie", j, nil, good, true, ""},
		{"expired cookie", j, nil, bad, false, "invalid credentials: cookie herald_token: jwt: token expired"},
		{"header wins over cookie", j, []string{"Bearer " + bad}, good, false, "Authorization header: jwt: token expired"},
		{"cookie ignored when not configured", noCookie, nil, good, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: "herald_token", Value: tt.cookie})
			}
			id, ok, err := tt.authn.FromRequest(r)
			if !tt.wantOK && tt.wantErr == "" {
				if ok || err != nil {
					t.Fatalf("FromRequest = %+v, %v, %v; want anonymous", id, ok, err)
				}
				return
			}
			checkResult(t, id, ok, err, tt.wantErr)
			if ok && id.UserID != "user-1" {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

// TestJWTFromInitPayload covers the connection_init payload conventions.
func TestJWTFromInitPayload(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now})
	good := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))
	bad := sign(t, jwt.SigningMethodHS256, []byte("a different secret of 32+ bytes!!"), "", claims(nil))

	tests := []struct {
		name    string
		payload map[string]any
		wantOK  bool
		wantErr string
	}{
		{"nil payload", nil, false, ""},
		{"no key", map[string]any{"user": "bob"}, false, ""},
		{"null value", map[string]any{"Authorization": nil}, false, ""},
		{"empty value", map[string]any{"authorization": ""}, false, ""},
		{"Authorization Bearer", map[string]any{"Authorization": "Bearer " + good}, true, ""},
		{"authorization Bearer", map[string]any{"authorization": "Bearer " + good}, true, ""},
		{"lower-case scheme", map[string]any{"authorization": "bearer " + good}, true, ""},
		{"bare token", map[string]any{"Authorization": good}, true, ""},
		{"both spellings agree", map[string]any{"Authorization": good, "authorization": good}, true, ""},
		{"both spellings differ", map[string]any{"Authorization": good, "authorization": bad}, false,
			"jwt: keys Authorization and authorization hold different values"},
		{"number", map[string]any{"Authorization": float64(42)}, false,
			"connection_init payload key Authorization: jwt: value must be a string, got a number"},
		{"object", map[string]any{"authorization": map[string]any{"token": good}}, false, "value must be a string, got an object"},
		{"Bearer without token", map[string]any{"Authorization": "Bearer "}, false, "jwt: empty Bearer token"},
		{"other scheme", map[string]any{"Authorization": "Basic abc"}, false, `jwt: Authorization scheme "Basic" is not Bearer`},
		{"bad signature", map[string]any{"authorization": "Bearer " + bad}, false,
			"invalid credentials: connection_init payload key authorization: jwt: signature is invalid"},
		{"headers Authorization", map[string]any{"headers": map[string]any{"Authorization": "Bearer " + good}}, true, ""},
		{"headers authorization", map[string]any{"headers": map[string]any{"authorization": good}}, true, ""},
		{"headers and top level agree", map[string]any{"Authorization": good, "headers": map[string]any{"Authorization": good}}, true, ""},
		{"headers and top level differ", map[string]any{"Authorization": good, "headers": map[string]any{"authorization": bad}}, false,
			"jwt: keys Authorization and headers.authorization hold different values"},
		{"headers bad signature", map[string]any{"headers": map[string]any{"Authorization": bad}}, false,
			"invalid credentials: connection_init payload key headers.Authorization: jwt: signature is invalid"},
		{"headers number", map[string]any{"headers": map[string]any{"authorization": true}}, false,
			"connection_init payload key headers.authorization: jwt: value must be a string, got a boolean"},
		{"headers without the key", map[string]any{"headers": map[string]any{"X-Other": good}}, false, ""},
		{"headers not an object", map[string]any{"headers": "Authorization: Bearer " + good}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok, err := j.FromInitPayload(t.Context(), tt.payload)
			if !tt.wantOK && tt.wantErr == "" {
				if ok || err != nil {
					t.Fatalf("FromInitPayload = %+v, %v, %v; want anonymous", id, ok, err)
				}
				return
			}
			checkResult(t, id, ok, err, tt.wantErr)
			if ok && (id.UserID != "user-1" || id.Name != "Alice Smith") {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

// TestJWTChallenge shows the WWW-Authenticate values.
func TestJWTChallenge(t *testing.T) {
	j := newTestJWT(t, JWTOptions{Secret: testSecret})
	if got, want := j.Challenge(), `Bearer realm="herald"`; got != want {
		t.Fatalf("Challenge() = %q, want %q", got, want)
	}
	_, _, err := j.FromRequest(bearer("garbage"))
	if got, want := j.ChallengeFor(err), `Bearer realm="herald", error="invalid_token"`; got != want {
		t.Fatalf("ChallengeFor(%v) = %q, want %q", err, got, want)
	}
	if got, want := j.ChallengeFor(context.DeadlineExceeded), `Bearer realm="herald"`; got != want {
		t.Fatalf("ChallengeFor(deadline) = %q, want %q", got, want)
	}
}

// TestNewJWTConfigErrors shows that a bad configuration is refused at start
// with an error that names the problem.
func TestNewJWTConfigErrors(t *testing.T) {
	rsaKeys := testRSA()
	goodSet := jwksJSON(rsaJWK("k", &rsaKeys[0].PublicKey))
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("<html>login</html>"))
	}))
	defer notJSON.Close()
	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write(jwksJSON())
	}))
	defer empty.Close()

	downgrade := httptest.NewServer(http.RedirectHandler("http://idp.example/jwks", http.StatusFound))
	defer downgrade.Close()

	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	unusable := jwksJSON(
		map[string]any{"kty": "oct", "k": "c2VjcmV0"},
		rsaJWK("small", &smallRSA.PublicKey),
		func() map[string]any { k := rsaJWK("enc", &rsaKeys[0].PublicKey); k["use"] = "enc"; return k }(),
	)

	tests := []struct {
		name    string
		opts    JWTOptions
		wantErr string
	}{
		{"no key source", JWTOptions{}, "auth: jwt: no key source: set Secret, JWKSFile or JWKSURL"},
		{"short secret", JWTOptions{Secret: []byte("short")}, "auth: jwt: Secret is 5 bytes, HS256 needs at least 32"},
		{"empty secret", JWTOptions{Secret: []byte{}}, "auth: jwt: Secret is 0 bytes"},
		{"file and URL", JWTOptions{JWKSFile: writeJWKS(t, goodSet), JWKSURL: "https://idp.example/jwks"},
			"auth: jwt: set only one of JWKSFile and JWKSURL"},
		{"missing file", JWTOptions{JWKSFile: "/nonexistent/jwks.json"},
			"auth: jwt: reading JWKS file: open /nonexistent/jwks.json: no such file or directory"},
		{"file not JSON", JWTOptions{JWKSFile: writeJWKS(t, []byte("-----BEGIN PUBLIC KEY-----"))}, "jwks.json: not a JWK Set: invalid character"},
		{"file without keys", JWTOptions{JWKSFile: writeJWKS(t, []byte(`{"kty":"RSA"}`))}, `not a JWK Set: no "keys" array`},
		{"file with empty set", JWTOptions{JWKSFile: writeJWKS(t, jwksJSON())}, "JWK Set has no keys"},
		{"file with no usable keys", JWTOptions{JWKSFile: writeJWKS(t, unusable)},
			`JWK Set has no usable keys (key 0: kty "oct" is not supported (want RSA or EC); key 1: kid "small": RSA key has 1024 bits, want 2048 to 16384; key 2: kid "enc": use "enc" is not "sig")`},
		{"oversized file", JWTOptions{JWKSFile: writeJWKS(t, make([]byte, maxJWKSBytes+1))}, "is larger than 1048576 bytes"},
		{"plain http off loopback", JWTOptions{JWKSURL: "http://idp.example/jwks"},
			"auth: jwt: JWKSURL: http://idp.example/jwks must use https (plain http is allowed only on loopback)"},
		{"relative URL", JWTOptions{JWKSURL: "/jwks"}, `auth: jwt: JWKSURL: "/jwks" is not an absolute URL`},
		// The error goes to the log: the password is hidden, not shown
		// re-escaped as url.URL writes it back ("!" as "%21").
		{"URL without a host, with a password", JWTOptions{JWKSURL: "https://alice:s3cret!pw@/jwks"},
			`auth: jwt: JWKSURL: "https://alice:xxxxx@/jwks" is not an absolute URL`},
		// A "#" in a password ends the host, and url.Parse quotes the
		// password's start as a port: neither error shows any of it.
		{"password with a #", JWTOptions{JWKSURL: "https://alice:s3#cret@idp.example/jwks"},
			`auth: jwt: JWKSURL: has a "#", which no request sends: write a "#" in a password or token as %23`},
		{"password with a ?", JWTOptions{JWKSURL: "https://alice:s3?cret@idp.example/jwks"},
			`auth: jwt: JWKSURL: is not a URL: invalid port after host`},
		{"bad port, no credentials", JWTOptions{JWKSURL: "https://idp.example:44x3/jwks"},
			`auth: jwt: JWKSURL: is not a URL: invalid port ":44x3" after host`},
		{"ftp URL", JWTOptions{JWKSURL: "ftp://idp.example/jwks"}, `scheme "ftp" is not http or https`},
		{"unreachable URL", JWTOptions{JWKSURL: downURL}, "auth: jwt: fetching JWKS from " + downURL + ": dial tcp"},
		{"URL not found", JWTOptions{JWKSURL: notFound.URL + "/jwks"},
			"auth: jwt: fetching JWKS from " + notFound.URL + "/jwks: HTTP status 404 Not Found"},
		{"URL serves HTML", JWTOptions{JWKSURL: notJSON.URL}, "auth: jwt: JWKS from " + notJSON.URL + ": not a JWK Set"},
		{"URL serves empty set", JWTOptions{JWKSURL: empty.URL}, "auth: jwt: JWKS from " + empty.URL + ": JWK Set has no keys"},
		{"redirect to plain http", JWTOptions{JWKSURL: downgrade.URL},
			"auth: jwt: fetching JWKS from " + downgrade.URL + ": http://idp.example/jwks must use https"},
		{"negative leeway", JWTOptions{Secret: testSecret, Leeway: -time.Second}, "auth: jwt: Leeway is negative (-1s)"},
		{"negative TTL", JWTOptions{Secret: testSecret, CacheTTL: -time.Second}, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := NewJWT(t.Context(), tt.opts)
			if err == nil {
				t.Fatalf("NewJWT = %v, nil; want error containing %q", j, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewJWT error %q does not contain %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("configuration error %q wraps ErrInvalidCredentials", err)
			}
		})
	}
}

// TestNewJWTSecretIsCopied shows the caller cannot change the key afterwards.
func TestNewJWTSecretIsCopied(t *testing.T) {
	secret := append([]byte(nil), testSecret...)
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: secret, Now: clock.Now})
	secret[0] ^= 0xff
	_, ok, err := j.FromRequest(bearer(sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))))
	if !ok || err != nil {
		t.Fatalf("FromRequest = %v, %v after the caller changed its slice", ok, err)
	}
}

// TestClip shows client-supplied strings cut on a character boundary before
// they reach an error message.
func TestClip(t *testing.T) {
	tests := []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), strings.Repeat("a", 64) + "…"},
		{"a" + strings.Repeat("é", 40), "a" + strings.Repeat("é", 31) + "…"},
	}
	for _, tt := range tests {
		if got := clip(tt.in); got != tt.want {
			t.Errorf("clip(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestJWTFromToken: refreshSession's token is the bare JWT or "Bearer
// <token>"; blank is anonymous, anything else bad is refused as invalid
// credentials.
func TestJWTFromToken(t *testing.T) {
	clock := newClock()
	j := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now})
	good := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))
	tests := []struct {
		name, token string
		wantOK      bool
		wantErr     string
	}{
		{"empty", "", false, ""},
		{"blank", "  ", false, ""},
		{"bare", good, true, ""},
		{"Bearer", "Bearer " + good, true, ""},
		{"other scheme", "Basic abc", false, `scheme "Basic" is not Bearer`},
		{"garbage", "not-a-jwt", false, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok, err := j.FromToken(context.Background(), tt.token)
			if ok != tt.wantOK || ok && id.UserID != "user-1" {
				t.Fatalf("FromToken = %+v, %v, %v", id, ok, err)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want invalid credentials mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestJWTAdminClaim: only the JSON true in the configured claim makes an
// administrator; without AdminClaim no token is one.
func TestJWTAdminClaim(t *testing.T) {
	clock := newClock()
	tests := []struct {
		name   string
		claim  string
		value  any
		wantOK bool
	}{
		{"true", "admin", true, true},
		{"string true", "admin", "true", false},
		{"false", "admin", false, false},
		{"one", "admin", 1, false},
		{"absent", "admin", nil, false},
		{"not configured", "", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now, AdminClaim: tt.claim})
			token := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(map[string]any{"admin": tt.value}))
			id, ok, err := j.FromToken(context.Background(), token)
			if err != nil || !ok {
				t.Fatalf("FromToken: %v %v", ok, err)
			}
			if id.Admin != tt.wantOK {
				t.Fatalf("Admin = %v, want %v", id.Admin, tt.wantOK)
			}
		})
	}
}

// TestJWTRefusesWhatRFC7515Refuses: a token is one exact string. A
// signature segment whose last character carries bits beyond the
// signature (non-canonical base64url) would otherwise verify as well as
// the issuer's, so one token would have several spellings that all pass
// (a deny list or cache keyed on the token would be bypassed); and a
// "crit" header lists extensions the recipient must understand or refuse
// the token (RFC 7515 §4.1.11), and Herald understands none.
func TestJWTRefusesWhatRFC7515Refuses(t *testing.T) {
	rsaKeys, ecKeys := testRSA(), testEC()
	clock := newClock()
	authn := map[string]*JWT{
		"secret": newTestJWT(t, JWTOptions{Secret: testSecret, Now: clock.Now}),
		"file": newTestJWT(t, JWTOptions{Now: clock.Now, JWKSFile: writeJWKS(t, jwksJSON(
			rsaJWK("r", &rsaKeys[0].PublicKey), ecJWK("e", &ecKeys["P-256"].PublicKey)))}),
	}
	// respell flips the lowest bit of the last character of the signature:
	// those bits lie beyond the signature's bytes (32, 64 and 256 bytes
	// leave 4 or 2 of them), so it decodes to the same signature unless
	// decoding is strict.
	respell := func(tok string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, tok[len(tok)-1])
		return tok[:len(tok)-1] + string(alphabet[last^1])
	}
	withHeader := func(m jwt.SigningMethod, key any, header map[string]any) string {
		tok := jwt.NewWithClaims(m, claims(nil))
		for k, v := range header {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hs := sign(t, jwt.SigningMethodHS256, testSecret, "", claims(nil))
	rs := sign(t, jwt.SigningMethodRS256, rsaKeys[0], "r", claims(nil))
	es := sign(t, jwt.SigningMethodES256, ecKeys["P-256"], "e", claims(nil))
	tests := []struct {
		name    string
		authn   string
		token   string
		wantErr string
	}{
		{"HS256 as issued", "secret", hs, ""},
		{"HS256 respelled", "secret", respell(hs), "jwt: malformed token"},
		{"RS256 as issued", "file", rs, ""},
		{"RS256 respelled", "file", respell(rs), "jwt: malformed token"},
		{"ES256 as issued", "file", es, ""},
		{"ES256 respelled", "file", respell(es), "jwt: malformed token"},
		{"crit b64", "secret", withHeader(jwt.SigningMethodHS256, testSecret, map[string]any{"crit": []string{"b64"}, "b64": false}),
			`jwt: critical header parameters ["b64"] are not understood`},
		{"crit on an RS256 token", "file", withHeader(jwt.SigningMethodRS256, rsaKeys[0], map[string]any{"kid": "r", "crit": []string{"exp"}}),
			`jwt: critical header parameters ["exp"] are not understood`},
		{"crit not a list", "secret", withHeader(jwt.SigningMethodHS256, testSecret, map[string]any{"crit": "b64"}),
			`jwt: critical header parameters "b64" are not understood`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok, err := authn[tt.authn].FromRequest(bearer(tt.token))
			checkResult(t, id, ok, err, tt.wantErr)
		})
	}
}
