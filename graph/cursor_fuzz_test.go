package graph

// Fuzz targets for resume cursors, which clients hand back verbatim and so
// are untrusted input. The seeds below and the files under
// testdata/fuzz/<FuzzName>/ run as ordinary tests with `go test`;
// scripts/fuzz.sh fuzzes each target briefly.

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// fuzzCursor encodes a cursor as encodeCursor does, for inputs that are
// not what encodeCursor would produce.
func fuzzCursor(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }

// FuzzCursorParse checks parseCursor on arbitrary strings: whatever it
// accepts names a real position, survives re-encoding in its scope, and is
// refused in another scope unless it is a legacy h1 cursor, which has none;
// whatever it refuses, decodeCursor turns into BAD_USER_INPUT.
func FuzzCursorParse(f *testing.F) {
	room := roomScope("abc")
	for _, s := range []string{
		(&Resolver{epoch: 1_763_000_000_123_456_789}).encodeCursor(room, 42),
		(&Resolver{epoch: -1}).encodeCursor(directoryScope(), 1),
		(&Resolver{epoch: 0}).encodeCursor(membersScope("abc"), ^uint64(0)),
		(&Resolver{epoch: -1 << 63}).encodeCursor(cursorScope{tag: "zzzzzzzzzzzzzzzz"}, ^uint64(0)), // the longest
		fuzzCursor("h1:7:0"),                   // zero position
		fuzzCursor("h2:7:5"),                   // h2 without its tag
		fuzzCursor("h2:7:5:"),                  // empty tag
		fuzzCursor("h2:7:5:ROOMS"),             // upper-case tag
		fuzzCursor("h2:7:5:rooms:x"),           // extra field after the tag
		fuzzCursor("h2:7:5:0123456789abcdefg"), // tag too long
		fuzzCursor("h3:7:5:rooms"),             // wrong prefix
		fuzzCursor("h1:7"),                     // no separator
		fuzzCursor("h1:7:5:9"),                 // a legacy cursor with a tag
		fuzzCursor("h1:7:3w5e11264sgsg"),       // position overflows uint64
		fuzzCursor("h1:1y2p0ij32e8e8:5"),       // epoch overflows int64
		fuzzCursor("h1:-1y2p0ij32e8e8:5"),      // the least epoch
		fuzzCursor("h1:+7:05"),                 // not what encodeCursor writes, but parses
		"aDE6Nzo1",                             // h1:7:5
		"aDE6Nzo1==",                           // padded
		"aDE6N\nzo1",                           // newline inside
		"!!!",                                  // not base64
		"",                                     // empty
		fuzzCursor("h1:7:" + string(make([]byte, 80))), // over 64 bytes
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		r := &Resolver{epoch: c.epoch}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("parseCursor(%q): error with no message", s)
			}
			if c != (cursor{}) {
				t.Fatalf("parseCursor(%q) failed (%v) but returned %+v", s, err, c)
			}
			_, derr := r.decodeCursor("after", room, &s)
			if chatErr, ok := errors.AsType[*chat.Error](derr); !ok || chatErr.Code != chat.CodeBadUserInput {
				t.Fatalf("decodeCursor(%q) = %v, want BAD_USER_INPUT", s, derr)
			}
			return
		}
		if len(s) > maxCursorLength {
			t.Fatalf("parseCursor accepted a %d-byte cursor %q", len(s), s)
		}
		// Its own scope: any scope with its tag; a legacy cursor has none,
		// and is re-encoded in some scope, as a client's next cursor is.
		own := cursorScope{tag: c.tag}
		if c.tag == "" {
			own = room
		} else if !validTag(c.tag) {
			t.Fatalf("parseCursor(%q) accepted tag %q", s, c.tag)
		}
		again := r.encodeCursor(own, c.seq)
		if c2, err := parseCursor(again); err != nil || c2 != (cursor{epoch: c.epoch, seq: c.seq, tag: own.tag}) {
			t.Fatalf("parseCursor(%q) = %+v, but its re-encoding %q in %q parses to %+v, %v", s, c, again, own.tag, c2, err)
		}
		if got, err := r.decodeCursor("after", own, &s); err != nil || got != c.seq {
			t.Fatalf("decodeCursor(%q) in epoch %d = %d, %v; want %d", s, c.epoch, got, err, c.seq)
		}
		other := &Resolver{epoch: c.epoch ^ 1}
		_, derr := other.decodeCursor("after", own, &s)
		if chatErr, ok := errors.AsType[*chat.Error](derr); !ok || chatErr.Code != chat.CodeCursorExpired {
			t.Fatalf("decodeCursor(%q) in epoch %d = %v, want CURSOR_EXPIRED", s, other.epoch, derr)
		}
		elsewhere := cursorScope{tag: own.tag + "0"}
		if len(elsewhere.tag) > maxTagLength {
			elsewhere.tag = own.tag[:len(own.tag)-1]
		}
		got, derr := r.decodeCursor("after", elsewhere, &s)
		if c.tag == "" {
			if derr != nil || got != c.seq {
				t.Fatalf("legacy decodeCursor(%q) in another scope = %d, %v; want %d", s, got, derr, c.seq)
			}
		} else if chatErr, ok := errors.AsType[*chat.Error](derr); !ok || chatErr.Code != chat.CodeBadUserInput {
			t.Fatalf("decodeCursor(%q) in scope %q = %d, %v; want BAD_USER_INPUT", s, elsewhere.tag, got, derr)
		}
	})
}

// FuzzCursorRoundTrip checks that every cursor encodeCursor writes parses
// back to its position, epoch and scope, position 0 (a list's start)
// included. room "" stands for the room directory.
func FuzzCursorRoundTrip(f *testing.F) {
	for _, c := range []struct {
		epoch int64
		seq   uint64
		room  string
	}{
		{1_763_000_000_123_456_789, 1, "abc"},
		{1_763_000_000_123_456_789, 42, ""},
		{0, 1, "abc"},
		{-1, 1 << 40, ""},
		{-1 << 63, ^uint64(0), "abc"},
		{1<<63 - 1, ^uint64(0), ""},
		{7, 0, "abc"},
	} {
		f.Add(c.epoch, c.seq, c.room)
	}
	f.Fuzz(func(t *testing.T, epoch int64, seq uint64, room string) {
		scopes := []cursorScope{directoryScope()}
		if room != "" {
			scopes = []cursorScope{roomScope(room), membersScope(room)}
		}
		for _, scope := range scopes {
			c := (&Resolver{epoch: epoch}).encodeCursor(scope, seq)
			got, err := parseCursor(c)
			if len(c) > maxCursorLength {
				t.Fatalf("cursor %q of (%d, %d) is %d bytes, more than parseCursor accepts", c, seq, epoch, len(c))
			}
			if want := (cursor{epoch: epoch, seq: seq, tag: scope.tag}); err != nil || got != want {
				t.Fatalf("cursor %q of %+v parsed to %+v, %v", c, want, got, err)
			}
		}
	})
}
