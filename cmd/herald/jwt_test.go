package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWTMode runs a replica with --auth=jwt: a signed token acts as its
// subject, anything else claiming an identity gets 401, the dev header is
// ignored, and introspection is off by default.
func TestJWTMode(t *testing.T) {
	secret := testJWTSecret
	cfg, err := parseConfig([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--auth", "jwt", "--jwt-secret", secret},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a := startTestApp(t, cfg)
	token := func(sub string, ttl time.Duration, key string) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "name": "Alice A.", "exp": time.Now().Add(ttl).Unix()}).
			SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	post := func(header map[string]string, query string) (int, string) {
		body, _ := json.Marshal(map[string]any{"query": query})
		req, _ := http.NewRequest(http.MethodPost, "http://"+a.Addr()+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	tests := []struct {
		name   string
		header map[string]string
		query  string
		status int
		want   string
	}{
		{"valid token", map[string]string{"Authorization": "Bearer " + token("alice", time.Minute, secret)}, `{ viewer { id name } }`, 200, `"id":"alice","name":"Alice A."`},
		{"wrong key", map[string]string{"Authorization": "Bearer " + token("alice", time.Minute, strings.Repeat("x", 32))}, `{ viewer { id } }`, 401, "UNAUTHENTICATED"},
		{"expired", map[string]string{"Authorization": "Bearer " + token("alice", -time.Minute, secret)}, `{ viewer { id } }`, 401, "expired"},
		{"dev header ignored", map[string]string{"X-Herald-User": "mallory"}, `{ viewer { id } }`, 200, `"viewer":null`},
		{"introspection off", nil, `{ __schema { queryType { name } } }`, 200, "introspection is disabled"},
		{"anonymous mutation", nil, `mutation { createRoom(name: "x") { id } }`, 200, "UNAUTHENTICATED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(tt.header, tt.query)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("%d %s; want %d containing %q", status, body, tt.status, tt.want)
			}
		})
	}
}
