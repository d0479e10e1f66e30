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

// fuzzMaxCursor is the longest cursor parseCursor considers.
const fuzzMaxCursor = 64

// fuzzCursor encodes a cursor as encodeCursor does, for inputs that are
// not what encodeCursor would produce.
func fuzzCursor(raw string) string { return base64.RawURLEncoding.EncodeToString([]byte(raw)) }

// FuzzCursorParse checks parseCursor on arbitrary strings: whatever it
// accepts names a real position and survives re-encoding; whatever it
// refuses, decodeCursor turns into BAD_USER_INPUT.
func FuzzCursorParse(f *testing.F) {
	for _, s := range []string{
		(&Resolver{epoch: 1_763_000_000_123_456_789}).encodeCursor(42),
		(&Resolver{epoch: -1}).encodeCursor(1),
		(&Resolver{epoch: 0}).encodeCursor(^uint64(0)),
		fuzzCursor("h1:7:0"),                           // zero position
		fuzzCursor("h2:7:5"),                           // wrong prefix
		fuzzCursor("h1:7"),                             // no separator
		fuzzCursor("h1:7:5:9"),                         // extra field
		fuzzCursor("h1:7:3w5e11264sgsg"),               // position overflows uint64
		fuzzCursor("h1:1y2p0ij32e8e8:5"),               // epoch overflows int64
		fuzzCursor("h1:-1y2p0ij32e8e8:5"),              // the least epoch
		fuzzCursor("h1:+7:05"),                         // not what encodeCursor writes, but parses
		"aDE6Nzo1",                                     // h1:7:5
		"aDE6Nzo1==",                                   // padded
		"aDE6N\nzo1",                                   // newline inside
		"!!!",                                          // not base64
		"",                                             // empty
		fuzzCursor("h1:7:" + string(make([]byte, 80))), // over 64 bytes
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		seq, epoch, err := parseCursor(s)
		r := &Resolver{epoch: epoch}
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("parseCursor(%q): error with no message", s)
			}
			_, derr := r.decodeCursor("after", &s)
			if chatErr, ok := errors.AsType[*chat.Error](derr); !ok || chatErr.Code != chat.CodeBadUserInput {
				t.Fatalf("decodeCursor(%q) = %v, want BAD_USER_INPUT", s, derr)
			}
			return
		}
		if len(s) > fuzzMaxCursor {
			t.Fatalf("parseCursor accepted a %d-byte cursor %q", len(s), s)
		}
		if seq == 0 {
			t.Fatalf("parseCursor(%q) accepted position 0", s)
		}
		again := r.encodeCursor(seq)
		seq2, epoch2, err := parseCursor(again)
		if err != nil || seq2 != seq || epoch2 != epoch {
			t.Fatalf("parseCursor(%q) = (%d, %d), but its re-encoding %q parses to (%d, %d), %v",
				s, seq, epoch, again, seq2, epoch2, err)
		}
		if got, err := r.decodeCursor("after", &s); err != nil || got != seq {
			t.Fatalf("decodeCursor(%q) in epoch %d = %d, %v; want %d", s, epoch, got, err, seq)
		}
		other := &Resolver{epoch: epoch ^ 1}
		_, derr := other.decodeCursor("after", &s)
		if chatErr, ok := errors.AsType[*chat.Error](derr); !ok || chatErr.Code != chat.CodeCursorExpired {
			t.Fatalf("decodeCursor(%q) in epoch %d = %v, want CURSOR_EXPIRED", s, other.epoch, derr)
		}
	})
}

// FuzzCursorRoundTrip checks that every cursor encodeCursor writes parses
// back to its position and epoch, except position 0, which names nothing.
func FuzzCursorRoundTrip(f *testing.F) {
	for _, c := range []struct {
		epoch int64
		seq   uint64
	}{
		{1_763_000_000_123_456_789, 1},
		{1_763_000_000_123_456_789, 42},
		{0, 1},
		{-1, 1 << 40},
		{-1 << 63, ^uint64(0)},
		{1<<63 - 1, ^uint64(0)},
		{7, 0},
	} {
		f.Add(c.epoch, c.seq)
	}
	f.Fuzz(func(t *testing.T, epoch int64, seq uint64) {
		c := (&Resolver{epoch: epoch}).encodeCursor(seq)
		got, gotEpoch, err := parseCursor(c)
		if seq == 0 {
			if err == nil {
				t.Fatalf("cursor %q of position 0 (epoch %d) parsed to (%d, %d)", c, epoch, got, gotEpoch)
			}
			return
		}
		if len(c) > fuzzMaxCursor {
			t.Fatalf("cursor %q of (%d, %d) is %d bytes, more than parseCursor accepts", c, seq, epoch, len(c))
		}
		if err != nil || got != seq || gotEpoch != epoch {
			t.Fatalf("cursor %q of (%d, %d) parsed to (%d, %d), %v", c, seq, epoch, got, gotEpoch, err)
		}
	})
}
