package graph

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// legacyCursor is an h1 cursor, as Herald issued them before cursors
// carried a tag: clients may still hold them.
func legacyCursor(epoch int64, seq uint64) *string {
	c := base64.RawURLEncoding.EncodeToString([]byte("h1:" + strconv.FormatInt(epoch, 36) + ":" + strconv.FormatUint(seq, 36)))
	return &c
}

func TestCursorRoundTrip(t *testing.T) {
	r := &Resolver{epoch: 1_763_000_000_123_456_789}
	for _, scope := range []cursorScope{directoryScope(), roomScope("abc"), membersScope("abc")} {
		for _, seq := range []uint64{1, 42, 1 << 40, ^uint64(0)} {
			c := r.encodeCursor(scope, seq)
			got, err := r.decodeCursor("after", scope, &c)
			if err != nil || got != seq {
				t.Fatalf("decode(encode(%d)) in %s = %d, %v", seq, scope, got, err)
			}
		}
	}
	if got, err := r.decodeCursor("after", roomScope("abc"), nil); got != 0 || err != nil {
		t.Fatalf("no cursor = %d, %v", got, err)
	}
}

// TestUntaggedCursors: with Options.UntaggedCursors the schema issues h1
// cursors, exactly as a Herald from before tagged cursors wrote them and
// parsed them, so that such a replica resumes them during a rolling
// upgrade; tagged cursors are still accepted.
func TestUntaggedCursors(t *testing.T) {
	const epoch, seq = 1_763_000_000_123_456_789, 42
	r := &Resolver{epoch: epoch, opts: Options{UntaggedCursors: true}}
	c := r.encodeCursor(roomScope("abc"), seq)
	if want := *legacyCursor(epoch, seq); c != want {
		t.Fatalf("cursor = %q, want the h1 cursor %q", c, want)
	}
	for _, scope := range []cursorScope{directoryScope(), roomScope("abc"), membersScope("xyz")} {
		if got, err := r.decodeCursor("after", scope, &c); err != nil || got != seq {
			t.Fatalf("decode in %s = %d, %v; want %d", scope, got, err, seq)
		}
	}
	tagged := (&Resolver{epoch: epoch}).encodeCursor(roomScope("abc"), seq)
	if got, err := r.decodeCursor("after", roomScope("abc"), &tagged); err != nil || got != seq {
		t.Fatalf("a tagged cursor = %d, %v; want %d", got, err, seq)
	}
	if _, err := r.decodeCursor("after", roomScope("other"), &tagged); err == nil {
		t.Fatal("a tagged cursor of another room was accepted")
	}
}

// TestCursorLongestFits: the longest cursor encodeCursor can write (least
// epoch, greatest position, longest tag) is within what parseCursor reads.
func TestCursorLongestFits(t *testing.T) {
	r := &Resolver{epoch: -1 << 63}
	scope := cursorScope{tag: strings.Repeat("z", maxTagLength)}
	c := r.encodeCursor(scope, ^uint64(0))
	if len(c) != maxCursorLength {
		t.Errorf("the longest cursor is %d bytes, want exactly %d (the limit is tight)", len(c), maxCursorLength)
	}
	if got, err := r.decodeCursor("after", scope, &c); err != nil || got != ^uint64(0) {
		t.Fatalf("decode(%q) = %d, %v", c, got, err)
	}
}

// TestCursorStartPosition: position 0, a list's start (an empty room's or
// directory's resumeCursor), is a cursor like any other, in either format,
// and keeps its scope.
func TestCursorStartPosition(t *testing.T) {
	r := &Resolver{epoch: 7}
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	room := roomScope("room")
	for _, c := range []string{r.encodeCursor(room, 0), raw("h2:7:0:" + room.tag), raw("h1:7:0")} {
		if got, err := r.decodeCursor("after", room, &c); err != nil || got != 0 {
			t.Errorf("decode(%q) = %d, %v; want position 0", c, got, err)
		}
	}
	c := r.encodeCursor(room, 0)
	if _, err := r.decodeCursor("after", roomScope("other"), &c); err == nil {
		t.Errorf("room's position 0 was accepted for another room")
	}
}

// TestCursorScopes: a cursor is accepted only where it was issued for (a
// room's events, a room's members, the room list); a legacy h1 cursor,
// which says nothing of that, is accepted anywhere, as before.
func TestCursorScopes(t *testing.T) {
	r := &Resolver{epoch: 7}
	scopes := []cursorScope{directoryScope(), roomScope("room-a"), roomScope("room-b"), membersScope("room-a"), membersScope("room-b")}
	for _, issued := range scopes {
		for _, used := range scopes {
			t.Run(issued.String()+" used for "+used.String(), func(t *testing.T) {
				c := r.encodeCursor(issued, 5)
				got, err := r.decodeCursor("after", used, &c)
				if issued == used {
					if err != nil || got != 5 {
						t.Fatalf("decode = %d, %v; want 5", got, err)
					}
					return
				}
				chatErr, ok := errors.AsType[*chat.Error](err)
				if !ok || chatErr.Code != chat.CodeBadUserInput || !strings.Contains(chatErr.Message, "after: the cursor belongs to ") {
					t.Fatalf("decode = %d, %v; want BAD_USER_INPUT saying whose cursor it is", got, err)
				}
			})
		}
		t.Run("legacy cursor used for "+issued.String(), func(t *testing.T) {
			if got, err := r.decodeCursor("after", issued, legacyCursor(7, 5)); err != nil || got != 5 {
				t.Fatalf("decode = %d, %v; want 5", got, err)
			}
		})
	}
}

func TestCursorRejections(t *testing.T) {
	r := &Resolver{epoch: 7}
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tag := roomScope("room").tag
	tests := []struct{ name, cursor string }{
		{"empty", ""},
		{"not base64", "!!!"},
		{"padded base64", base64.URLEncoding.EncodeToString([]byte("h1:7:55"))},
		{"unknown prefix", raw("x1:7:5")},
		{"no separator", raw("h1:75")},
		{"bad epoch", raw("h1:zz!:5")},
		{"bad position", raw("h1:7:-1")},
		{"too long", raw("h1:7:" + string(make([]byte, 80)))},
		{"legacy with a tag", raw("h1:7:5:" + tag)},
		{"no tag", raw("h2:7:5")},
		{"empty tag", raw("h2:7:5:")},
		{"upper-case tag", raw("h2:7:5:" + strings.ToUpper(tag))},
		{"tag too long", raw("h2:7:5:" + strings.Repeat("a", maxTagLength+1))},
		{"tag with a separator", raw("h2:7:5:" + tag + ":")},
		{"tag not alphanumeric", raw("h2:7:5:ro-ms")},
		{"tagged bad epoch", raw("h2:z!:5:" + tag)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cursor
			_, err := r.decodeCursor("after", roomScope("room"), &c)
			var chatErr *chat.Error
			if !errors.As(err, &chatErr) || chatErr.Code != chat.CodeBadUserInput {
				t.Fatalf("err = %v, want BAD_USER_INPUT", err)
			}
		})
	}
}

func TestCursorFromAnotherEpochHasExpired(t *testing.T) {
	r := &Resolver{epoch: 7}
	for _, tt := range []struct {
		name   string
		cursor string
	}{
		{"tagged", (&Resolver{epoch: 8}).encodeCursor(roomScope("room"), 5)},
		{"legacy", *legacyCursor(8, 5)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.decodeCursor("after", roomScope("room"), &tt.cursor)
			var chatErr *chat.Error
			if !errors.As(err, &chatErr) || chatErr.Code != chat.CodeCursorExpired {
				t.Fatalf("err = %v, want CURSOR_EXPIRED", err)
			}
		})
	}
}
