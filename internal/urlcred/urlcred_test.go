package urlcred

import (
	"net/url"
	"strings"
	"testing"
)

func TestUserPart(t *testing.T) {
	for _, tt := range []struct {
		raw, want string
		ok        bool
	}{
		{"nats://alice:s3cret@nats:4222", "alice:s3cret", true},
		{"nats://t0ken@nats:4222", "t0ken", true},
		{"nats://alice:hun#ter@nats:4222", "alice:hun#ter", true},
		{"nats://s3cret/t0ken@nats:4222", "s3cret/t0ken", true},
		{"alice:pass@w0rd@nats:4222", "alice:pass@w0rd", true},
		{"nats://@nats:4222", "", false},
		{"nats://nats:4222", "", false},
		{"https://idp.example/jwks?u=a@b", "idp.example/jwks?u=a", true},
	} {
		got, ok := UserPart(tt.raw)
		if got != tt.want || ok != tt.ok {
			t.Errorf("UserPart(%q) = %q, %v; want %q, %v", tt.raw, got, ok, tt.want, tt.ok)
		}
	}
}

// TestParseProblem: what url.Parse found wrong, without the URL, and
// without what it quotes of a URL with a user part, where that may be the
// start of a password.
func TestParseProblem(t *testing.T) {
	for _, tt := range []struct {
		raw, want, secret string
	}{
		{"nats://alice:hunter#2-s3cret@nats:4222", "invalid port after host", "hunter"},
		{"https://alice:hu?nter2@idp/jwks", "invalid port after host", "hu"},
		{`nats://alice:h"u\nter#x@nats:4222`, "invalid port after host", "nter"},
		{"nats://nats:42x2", `invalid port ":42x2" after host`, ""},
		{"https://idp\x7f.example/jwks", "net/url: invalid control character in URL", ""},
	} {
		_, err := url.Parse(tt.raw)
		if err == nil {
			t.Fatalf("url.Parse(%q) did not fail", tt.raw)
		}
		got := ParseProblem(tt.raw, err)
		if got != tt.want {
			t.Errorf("ParseProblem(%q) = %q, want %q", tt.raw, got, tt.want)
		}
		if tt.secret != "" && strings.Contains(got, tt.secret) {
			t.Errorf("ParseProblem(%q) = %q shows the password", tt.raw, got)
		}
		if strings.Contains(got, "parse ") {
			t.Errorf("ParseProblem(%q) = %q quotes the URL", tt.raw, got)
		}
	}
}
