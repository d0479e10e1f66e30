package auth

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzBearerToken: bearerToken returns a token only from
// "Bearer <token>" (any case) or, when bareOK, a value with no space; the
// token is never empty and carries no surrounding white space.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc ", "BEARER", "Bearer ", "abc", "Basic abc", " Bearer\tabc", "Bearer a b", "\u00a0Bearer abc", "Bearer\u00a0abc"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, value string, bareOK bool) {
		if strings.TrimSpace(value) == "" {
			return // every caller refuses a blank value before asking
		}
		tok, err := bearerToken(value, bareOK)
		if err != nil {
			if tok != "" || err.Error() == "" {
				t.Fatalf("bearerToken(%q) = %q, %v", value, tok, err)
			}
			return
		}
		if tok == "" {
			t.Fatalf("bearerToken(%q, %v) accepted an empty token", value, bareOK)
		}
		if tok != strings.TrimSpace(tok) {
			t.Fatalf("bearerToken(%q, %v) = %q, with white space around it", value, bareOK, tok)
		}
		v := strings.TrimSpace(value)
		if scheme, rest, ok := strings.Cut(v, " "); ok {
			if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(rest) != tok {
				t.Fatalf("bearerToken(%q, %v) = %q", value, bareOK, tok)
			}
		} else if !bareOK || tok != v {
			t.Fatalf("bearerToken(%q, %v) = %q without a scheme", value, bareOK, tok)
		}
	})
}

// FuzzSanitizeName: sanitizeName's result is a name checkUserName
// takes, no longer than MaxNameLength, without leading or trailing or
// doubled spaces, and unchanged by sanitizing again.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"Ann", "  a \t b\n", "a\xffb", "\u2028x\u0085", strings.Repeat("é ", 100), "x\u200by"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := sanitizeName(s)
		if !utf8.ValidString(n) {
			t.Fatalf("sanitizeName(%q) = %q, not UTF-8", s, n)
		}
		if err := checkUserName(n, MaxNameLength); err != nil {
			t.Fatalf("sanitizeName(%q) = %q, which checkUserName refuses: %v", s, n, err)
		}
		if strings.HasPrefix(n, " ") || strings.HasSuffix(n, " ") || strings.Contains(n, "  ") {
			t.Fatalf("sanitizeName(%q) = %q: stray spaces", s, n)
		}
		if strings.ContainsFunc(n, unicode.IsControl) {
			t.Fatalf("sanitizeName(%q) = %q: control character", s, n)
		}
		if again := sanitizeName(n); again != n {
			t.Fatalf("sanitizeName not idempotent: %q -> %q -> %q", s, n, again)
		}
	})
}
