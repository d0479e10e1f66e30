package auth

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDevFromRequest(t *testing.T) {
	tests := []struct {
		name, header string
		wantOK       bool
		wantErr      bool
	}{
		{"anonymous", "", false, false},
		{"user", "alice", true, false},
		{"spaces inside", "Alice Smith", true, false},
		{"longest", strings.Repeat("a", MaxDevUserLength), true, false},
		{"too long", strings.Repeat("a", MaxDevUserLength+1), false, true},
		{"tab", "a\tb", false, true},
		{"invalid utf-8", "a\xffb", false, true},
		{"spaces around", " alice\t", true, false},
		{"spaces alone", "  ", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set(DevHeader, tt.header)
			}
			id, ok, err := Dev{}.FromRequest(r)
			if ok != tt.wantOK || (err != nil) != tt.wantErr {
				t.Fatalf("FromRequest = %+v, %v, %v", id, ok, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("error %v does not wrap ErrInvalidCredentials", err)
			}
			if want := strings.Trim(tt.header, " \t"); ok && (id.UserID != want || id.Name != want) {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

func TestDevFromInitPayload(t *testing.T) {
	tests := []struct {
		name    string
		payload map[string]any
		wantOK  bool
		wantErr bool
	}{
		{"nil payload", nil, false, false},
		{"no user", map[string]any{"other": 1}, false, false},
		{"null user", map[string]any{"user": nil}, false, false},
		{"empty user", map[string]any{"user": ""}, false, false},
		{"user", map[string]any{"user": "bob"}, true, false},
		{"number", map[string]any{"user": 7}, false, true},
		{"newline", map[string]any{"user": "a\nb"}, false, true},
		// As an X-Herald-User header would carry them: the same user, or
		// nobody.
		{"spaces around", map[string]any{"user": " bob "}, true, false},
		{"spaces alone", map[string]any{"user": " \t "}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok, err := Dev{}.FromInitPayload(context.Background(), tt.payload)
			if ok != tt.wantOK || (err != nil) != tt.wantErr || ok && (id.UserID != "bob" || id.Name != "bob") {
				t.Fatalf("FromInitPayload = %+v, %v, %v", id, ok, err)
			}
			if err != nil && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("error %v does not wrap ErrInvalidCredentials", err)
			}
		})
	}
}

func TestIdentityContext(t *testing.T) {
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("identity in an empty context")
	}
	ctx := NewContext(context.Background(), Identity{UserID: "u", Name: "U"})
	if id, ok := FromContext(ctx); !ok || id.UserID != "u" {
		t.Fatalf("FromContext = %+v, %v", id, ok)
	}
}

func TestDevFromToken(t *testing.T) {
	tests := []struct {
		token   string
		wantOK  bool
		wantErr bool
	}{
		{"", false, false},
		{"bob", true, false},
		{"a\nb", false, true},
		{"  bob ", true, false},
		{"   ", false, false},
	}
	for _, tt := range tests {
		id, ok, err := Dev{}.FromToken(context.Background(), tt.token)
		if ok != tt.wantOK || (err != nil) != tt.wantErr || ok && id.UserID != "bob" {
			t.Errorf("FromToken(%q) = %+v, %v, %v", tt.token, id, ok, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidCredentials) {
			t.Errorf("FromToken(%q): error %v does not wrap ErrInvalidCredentials", tt.token, err)
		}
	}
}

type fakeSession struct{}

func (fakeSession) Refresh(context.Context, string) (Identity, error) { return Identity{}, nil }

func TestSessionContext(t *testing.T) {
	if _, ok := SessionFrom(context.Background()); ok {
		t.Fatal("session in an empty context")
	}
	if s, ok := SessionFrom(WithSession(context.Background(), fakeSession{})); !ok || s != (fakeSession{}) {
		t.Fatalf("SessionFrom = %v, %v", s, ok)
	}
}
