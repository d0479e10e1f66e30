package server

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// Frames that gorilla lets through or misnames, which Herald must fail
// with the close code RFC 6455 (and the Autobahn testsuite) expect.

// rfcFrameOfLength builds a client frame header announcing length in the
// 64-bit form, whatever it is, followed by a mask key and a few payload
// bytes: enough for the server to judge the header, far less than it
// announces.
func rfcFrameOfLength(op byte, fin bool, length uint64) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0, 0x80 | 127}
	f = binary.BigEndian.AppendUint64(f, length)
	var key [4]byte
	_, _ = rand.Read(key[:])
	f = append(f, key[:]...)
	return append(f, 1, 2, 3, 4)
}

// TestRFC6455CloseOfOneByte: a close frame whose body is 1 byte breaks RFC
// 6455 section 5.5.1 (a body begins with a 2-byte code), so the connection
// fails with 1002 (Autobahn 7.3.2) rather than the close being echoed as
// a clean, empty one; however it reaches the reader: alone, on an idle
// (parked) socket, or behind a message or a ping in the same write.
func TestRFC6455CloseOfOneByte(t *testing.T) {
	r := newReplica(t, nil)
	closeOfOne := rfcFrame(rawClose, true, 0, true, 0, []byte{0x03})
	none := func(wspProto) []byte { return nil }
	cases := []struct {
		name   string
		idle   bool // let the socket park before the frames arrive
		before func(wspProto) []byte
	}{
		{"alone", false, none},
		{"on an idle socket", true, none},
		{"behind a message", false, func(p wspProto) []byte {
			return rfcFrame(rawText, true, 0, true, 0, fmt.Appendf(nil, `{"id":"none","type":%q}`, p.stop))
		}},
		{"behind a ping", false, func(wspProto) []byte { return rfcFrame(rawPing, true, 0, true, 0, []byte("p")) }},
	}
	for _, p := range wspProtocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				c := rfcDial(t, r, p)
				if tc.idle {
					time.Sleep(20 * time.Millisecond)
				}
				if err := c.writeAll(append(tc.before(p), closeOfOne...)); err != nil {
					t.Fatal(err)
				}
				_, cl := rfcUntilClose(t, c, 5*time.Second)
				if got := rfcCode(cl); got != 1002 {
					t.Errorf("got %v (payload % x), want close code 1002", cl, cl.payload)
				}
			})
		}
	}
}

// TestRFC6455FrameLengths: a 64-bit payload length with its most
// significant bit set breaks RFC 6455 section 5.2, a framing error (1002),
// in the first frame of a message or in a continuation; gorilla reports it
// as over the read limit. A legal length over --ws-max-message-bytes is
// still 1009, announced in either.
func TestRFC6455FrameLengths(t *testing.T) {
	r := newReplica(t, nil)
	first := rfcFrame(rawText, false, 0, true, 0, []byte(`{"type":`))
	cases := []struct {
		name   string
		frames []byte
		want   int
	}{
		{"top bit set", rfcFrameOfLength(rawText, true, 1<<63|5), 1002},
		{"top bit set, binary", rfcFrameOfLength(0x2 /* binary */, true, 1<<63|5), 1002},
		{"top bit set in a continuation", append(first, rfcFrameOfLength(rawContinuation, true, 1<<63|5)...), 1002},
		{"all bits set", rfcFrameOfLength(rawText, true, 1<<64-1), 1002},
		{"over the limit", rfcFrameOfLength(rawText, true, 1<<62), 1009},
		{"largest legal length", rfcFrameOfLength(rawText, true, 1<<63-1), 1009},
		{"over the limit in a continuation", append(first, rfcFrameOfLength(rawContinuation, true, 1<<40)...), 1009},
	}
	for _, p := range wspProtocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				c := rfcDial(t, r, p)
				if err := c.writeAll(tc.frames); err != nil {
					t.Fatal(err)
				}
				_, cl := rfcUntilClose(t, c, 5*time.Second)
				if got := rfcCode(cl); got != tc.want {
					t.Errorf("got %v, want close code %d", cl, tc.want)
				}
			})
		}
	}
}
