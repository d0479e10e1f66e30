package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWKSOnlyAuthenticator: --auth=jwt with a JWK Set and no --jwt-secret
// starts, and verifies tokens signed with the set's key.
func TestJWKSOnlyAuthenticator(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	set, _ := json.Marshal(map[string]any{"keys": []map[string]any{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig",
		"x": b64(key.X.FillBytes(make([]byte, 32))), "y": b64(key.Y.FillBytes(make([]byte, 32))),
	}}})
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, set, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig([]string{"--auth", "jwt", "--jwks-file", file}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	authn, err := newAuthenticator(context.Background(), cfg)
	if err != nil {
		t.Fatalf("newAuthenticator with --jwks-file only: %v", err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Minute).Unix()})
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+signed)
	id, ok, err := authn.FromRequest(req)
	if err != nil || !ok || id.UserID != "alice" {
		t.Fatalf("FromRequest = %+v, %v, %v; want alice", id, ok, err)
	}
	// With no secret, an HS256 token is refused, whatever key signed it.
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "mallory", "exp": time.Now().Add(time.Minute).Unix()}).
		SignedString([]byte{})
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+hs)
	if _, ok, err := authn.FromRequest(req); ok || err == nil {
		t.Fatalf("HS256 token with an empty key accepted (ok=%v, err=%v)", ok, err)
	}
}

// TestDefaultMaxConnections: the default connection limit never exceeds
// the open-file limit, and a huge (or unlimited) one does not overflow.
func TestDefaultMaxConnections(t *testing.T) {
	tests := []struct {
		limit uint64
		ok    bool
		want  int
		sized bool
	}{
		{limit: 20000, ok: true, want: 19488, sized: true},
		{limit: 1025, ok: true, want: 513, sized: true},
		{limit: 1024, ok: true, want: 512, sized: false},
		{limit: 256, ok: true, want: 128, sized: false},
		{limit: 1, ok: true, want: 1, sized: false},
		{limit: 0, ok: true, want: 1, sized: false},
		{limit: ^uint64(0), ok: true, want: 1<<31 - 1, sized: true}, // RLIM_INFINITY
		{ok: false, want: 10000, sized: false},
	}
	for _, tt := range tests {
		n, sized := defaultMaxConnections(tt.limit, tt.ok)
		if n != tt.want || sized != tt.sized {
			t.Errorf("defaultMaxConnections(%d, %v) = %d, %v; want %d, %v", tt.limit, tt.ok, n, sized, tt.want, tt.sized)
		}
	}
}

// TestPprofDoesNotServeTheCommandLine: net/http/pprof's cmdline handler
// answers with the process's arguments, which hold --jwt-secret when the
// key is given as a flag. The pprof listener serves the profiles, not that.
func TestPprofDoesNotServeTheCommandLine(t *testing.T) {
	const secret = "pprof-must-not-show-this-secret-0123456789"
	pprofAddr := freeAddr(t)
	p := startProcess(t, "herald", "--data-dir", t.TempDir(), "--pprof", pprofAddr,
		"--auth", "jwt", "--jwt-secret", secret)
	for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/cmdline?debug=1", "/debug/pprof/"} {
		resp, err := http.Get("http://" + pprofAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), secret) {
			t.Errorf("GET %s on the pprof listener shows --jwt-secret: %d %.200s", path, resp.StatusCode, body)
		}
	}
	// The profiles are still there.
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Fatalf("goroutine profile: %d %.80s", resp.StatusCode, body)
	}
	p.stop(15 * time.Second)
}
