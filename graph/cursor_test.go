package graph

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/heraldhq/herald/chat"
)

func TestCursorRoundTrip(t *testing.T) {
	r := &Resolver{epoch: 1_763_000_000_123_456_789}
	for _, seq := range []uint64{1, 42, 1 << 40, ^uint64(0)} {
		c := r.encodeCursor(seq)
		got, err := r.decodeCursor("after", &c)
		if err != nil || got != seq {
			t.Fatalf("decode(encode(%d)) = %d, %v", seq, got, err)
		}
	}
	if got, err := r.decodeCursor("after", nil); got != 0 || err != nil {
		t.Fatalf("no cursor = %d, %v", got, err)
	}
}

func TestCursorRejections(t *testing.T) {
	r := &Resolver{epoch: 7}
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct{ name, cursor string }{
		{"empty", ""},
		{"not base64", "!!!"},
		{"padded base64", base64.URLEncoding.EncodeToString([]byte("h1:7:55"))},
		{"unknown prefix", raw("x1:7:5")},
		{"no separator", raw("h1:75")},
		{"bad epoch", raw("h1:zz!:5")},
		{"bad position", raw("h1:7:-1")},
		{"zero position", raw("h1:7:0")},
		{"too long", raw("h1:7:" + string(make([]byte, 80)))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cursor
			_, err := r.decodeCursor("after", &c)
			var chatErr *chat.Error
			if !errors.As(err, &chatErr) || chatErr.Code != chat.CodeBadUserInput {
				t.Fatalf("err = %v, want BAD_USER_INPUT", err)
			}
		})
	}
}

func TestCursorFromAnotherEpochHasExpired(t *testing.T) {
	r := &Resolver{epoch: 7}
	other := (&Resolver{epoch: 8}).encodeCursor(5)
	_, err := r.decodeCursor("after", &other)
	var chatErr *chat.Error
	if !errors.As(err, &chatErr) || chatErr.Code != chat.CodeCursorExpired {
		t.Fatalf("err = %v, want CURSOR_EXPIRED", err)
	}
}
