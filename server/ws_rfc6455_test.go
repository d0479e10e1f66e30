package server

// RFC 6455 conformance at the frame level, as a strict client (or the
// Autobahn testsuite) sees the server: every frame the server sends is
// checked by rawWS.frame, and nothing may follow the server's close frame.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// rfcFrame builds a client frame with full control over its
// header: fin, the reserved bits (rsv, already shifted: 0x40, 0x20,
// 0x10), masking and a forced length encoding (lenBytes 0: minimal, 2 or
// 8: that extended length even if not minimal).
func rfcFrame(op byte, fin bool, rsv byte, masked bool, lenBytes int, payload []byte) []byte {
	b0 := op | rsv
	if fin {
		b0 |= 0x80
	}
	var mbit byte
	if masked {
		mbit = 0x80
	}
	f := []byte{b0}
	n := len(payload)
	switch {
	case lenBytes == 8 || (lenBytes == 0 && n > 0xffff):
		f = append(f, mbit|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	case lenBytes == 2 || (lenBytes == 0 && n > 125):
		f = append(f, mbit|126)
		f = binary.BigEndian.AppendUint16(f, uint16(n))
	default:
		f = append(f, mbit|byte(n))
	}
	if !masked {
		return append(f, payload...)
	}
	var key [4]byte
	_, _ = rand.Read(key[:])
	f = append(f, key[:]...)
	for i, b := range payload {
		f = append(f, b^key[i%4])
	}
	return f
}

type rfcGot struct {
	op      byte
	fin     bool
	payload []byte
}

func (g rfcGot) String() string {
	if g.op == rawClose && len(g.payload) >= 2 {
		return fmt.Sprintf("close %d %q", binary.BigEndian.Uint16(g.payload), g.payload[2:])
	}
	return fmt.Sprintf("op %#x fin %v %.120q", g.op, g.fin, g.payload)
}

// rfcDial opens a raw socket and completes connection_init.
func rfcDial(t *testing.T, r *replica, p wspProto) *rawWS {
	t.Helper()
	c := r.dialRaw(p.name, 0)
	c.send(`{"type":"connection_init","payload":{}}`)
	for {
		g, err := rfcRead(c, 5*time.Second)
		if err != nil {
			t.Fatalf("waiting for connection_ack: %v", err)
		}
		if g.op == rawText && bytes.Contains(g.payload, []byte(`"connection_ack"`)) {
			return c
		}
	}
}

// rfcRead reads one frame (strictly checked), within timeout.
func rfcRead(c *rawWS, timeout time.Duration) (rfcGot, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(timeout))
	op, fin, payload, err := c.frame()
	return rfcGot{op, fin, payload}, err
}

// rfcUntilClose reads frames until the server's close frame and
// returns the frames before it (server pings and keepalives skipped) and
// the close frame. It then checks that nothing follows the close frame
// and that the server ends the connection.
func rfcUntilClose(t *testing.T, c *rawWS, timeout time.Duration) (before []rfcGot, closeFrame rfcGot) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		g, err := rfcRead(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for the close frame (after %v): %v", before, err)
		}
		if g.op == rawClose {
			closeFrame = g
			break
		}
		if g.op == rawPing || (g.op == rawText && (bytes.Equal(g.payload, []byte(frameKA)) || bytes.Equal(g.payload, []byte(framePing)))) {
			continue
		}
		before = append(before, g)
	}
	g, err := rfcRead(c, closeGrace+3*time.Second)
	if err == nil {
		t.Fatalf("a frame after the close frame %v: %v", closeFrame, g)
	}
	if isTimeout(err) {
		t.Fatalf("the server kept the connection open after its close frame %v", closeFrame)
	}
	return before, closeFrame
}

func rfcCode(g rfcGot) int {
	if len(g.payload) < 2 {
		return 1005
	}
	return int(binary.BigEndian.Uint16(g.payload))
}

func rfcClosePayload(code int, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(code)), reason...)
}

// TestRFC6455CloseFromClient: a valid close code is echoed; an
// invalid close frame fails the connection with 1002.
func TestRFC6455CloseFromClient(t *testing.T) {
	r := newReplica(t, nil)
	cases := []struct {
		name    string
		payload []byte
		want    int // 1005: an empty close frame
	}{
		{"empty", nil, 1005},
		{"1000", rfcClosePayload(1000, ""), 1000},
		{"1000 with reason", rfcClosePayload(1000, "bye"), 1000},
		{"1001", rfcClosePayload(1001, ""), 1001},
		{"1002", rfcClosePayload(1002, ""), 1002},
		{"1003", rfcClosePayload(1003, ""), 1003},
		{"1007", rfcClosePayload(1007, ""), 1007},
		{"1009", rfcClosePayload(1009, ""), 1009},
		{"1011", rfcClosePayload(1011, ""), 1011},
		{"3000", rfcClosePayload(3000, ""), 3000},
		{"4999", rfcClosePayload(4999, ""), 4999},
		{"reason of 123 bytes", rfcClosePayload(1000, strings.Repeat("r", 123)), 1000},
		{"999", rfcClosePayload(999, ""), 1002},
		{"1004", rfcClosePayload(1004, ""), 1002},
		{"1005", rfcClosePayload(1005, ""), 1002},
		{"1006", rfcClosePayload(1006, ""), 1002},
		{"1015", rfcClosePayload(1015, ""), 1002},
		{"1016", rfcClosePayload(1016, ""), 1002},
		{"2999", rfcClosePayload(2999, ""), 1002},
		{"5000", rfcClosePayload(5000, ""), 1002},
		{"65535", rfcClosePayload(65535, ""), 1002},
		{"invalid UTF-8 reason", rfcClosePayload(1000, "ok\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"), 1002},
	}
	for _, p := range wspProtocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				c := rfcDial(t, r, p)
				if err := c.writeAll(rfcFrame(rawClose, true, 0, true, 0, tc.payload)); err != nil {
					t.Fatal(err)
				}
				before, cl := rfcUntilClose(t, c, 5*time.Second)
				if len(before) > 0 {
					t.Errorf("frames before the close: %v", before)
				}
				if got := rfcCode(cl); got != tc.want {
					t.Errorf("got %v, want close code %d", cl, tc.want)
				}
				if tc.want != 1002 && len(cl.payload) > 2 {
					t.Logf("echo carries reason %q", cl.payload[2:])
				}
			})
		}
	}
}

// TestRFC6455BrokenFrames: frames that break RFC 6455 fail the
// connection with 1002; a text message that is not UTF-8 with 1007.
func TestRFC6455BrokenFrames(t *testing.T) {
	r := newReplica(t, nil)
	ping := []byte(`{"type":"ping"}`)
	cases := []struct {
		name   string
		frames func() []byte
		want   int
	}{
		{"rsv1 text", func() []byte { return rfcFrame(rawText, true, 0x40, true, 0, ping) }, 1002},
		{"rsv2 text", func() []byte { return rfcFrame(rawText, true, 0x20, true, 0, ping) }, 1002},
		{"rsv3 text", func() []byte { return rfcFrame(rawText, true, 0x10, true, 0, ping) }, 1002},
		{"rsv1 pong", func() []byte { return rfcFrame(rawPong, true, 0x40, true, 0, nil) }, 1002},
		{"rsv close", func() []byte {
			return rfcFrame(rawClose, true, 0x10, true, 0, rfcClosePayload(1000, ""))
		}, 1002},
		{"unmasked text", func() []byte { return rfcFrame(rawText, true, 0, false, 0, ping) }, 1002},
		{"unmasked pong", func() []byte { return rfcFrame(rawPong, true, 0, false, 0, []byte("x")) }, 1002},
		{"unmasked close", func() []byte { return rfcFrame(rawClose, true, 0, false, 0, rfcClosePayload(1000, "")) }, 1002},
		{"opcode 0x3", func() []byte { return rfcFrame(0x3, true, 0, true, 0, nil) }, 1002},
		{"opcode 0xb", func() []byte { return rfcFrame(0xb, true, 0, true, 0, nil) }, 1002},
		{"opcode 0xf", func() []byte { return rfcFrame(0xf, true, 0, true, 0, []byte("abc")) }, 1002},
		{"lone continuation", func() []byte { return rfcFrame(rawContinuation, true, 0, true, 0, ping) }, 1002},
		{"text inside fragmented", func() []byte {
			return append(rfcFrame(rawText, false, 0, true, 0, []byte(`{"type":`)),
				rfcFrame(rawText, true, 0, true, 0, []byte(`"ping"}`))...)
		}, 1002},
		{"fragmented pong", func() []byte { return rfcFrame(rawPong, false, 0, true, 0, nil) }, 1002},
		{"fragmented close", func() []byte { return rfcFrame(rawClose, false, 0, true, 0, rfcClosePayload(1000, "")) }, 1002},
		{"pong of 126", func() []byte { return rfcFrame(rawPong, true, 0, true, 0, bytes.Repeat([]byte("p"), 126)) }, 1002},
		{"close of 126", func() []byte {
			return rfcFrame(rawClose, true, 0, true, 0, rfcClosePayload(1000, strings.Repeat("r", 124)))
		}, 1002},
		{"ping 125 in 16-bit length", func() []byte { return rfcFrame(rawPing, true, 0, true, 2, bytes.Repeat([]byte("p"), 125)) }, 1002},
		{"invalid utf8 text", func() []byte {
			return rfcFrame(rawText, true, 0, true, 0, []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"))
		}, 1007},
		{"invalid utf8 fragmented", func() []byte {
			return append(rfcFrame(rawText, false, 0, true, 0, []byte(`{"type":"p`)),
				rfcFrame(rawContinuation, true, 0, true, 0, []byte("\xf4\x90\x80\x80"))...)
		}, 1007},
		{"utf8 surrogate", func() []byte { return rfcFrame(rawText, true, 0, true, 0, []byte("\xed\xa0\x80")) }, 1007},
		{"utf8 truncated", func() []byte { return rfcFrame(rawText, true, 0, true, 0, []byte("\xce")) }, 1007},
	}
	for _, p := range wspProtocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				c := rfcDial(t, r, p)
				if err := c.writeAll(tc.frames()); err != nil {
					t.Fatal(err)
				}
				before, cl := rfcUntilClose(t, c, 5*time.Second)
				if len(before) > 0 {
					t.Logf("frames before the close: %v", before)
				}
				if got := rfcCode(cl); got != tc.want {
					t.Errorf("got %v, want close code %d", cl, tc.want)
				}
			})
		}
	}
}

// TestRFC6455FragmentsAndPings: fragmented messages are put together,
// control frames between fragments are answered, a UTF-8 character split
// between fragments is fine, and a ping's pong is identical.
func TestRFC6455FragmentsAndPings(t *testing.T) {
	r := newReplica(t, nil)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			c := rfcDial(t, r, p)
			var payload125 [125]byte
			_, _ = rand.Read(payload125[:])
			// A ping of 125 bytes on its own, and one between fragments.
			sub := fmt.Sprintf(`{"id":"é€😀","type":%q,"payload":{"query":"{ __typename }"}}`, p.start)
			cut := strings.Index(sub, "€") + 1 // inside the euro sign
			var frames []byte
			frames = append(frames, rfcFrame(rawPing, true, 0, true, 0, payload125[:])...)
			frames = append(frames, rfcFrame(rawText, false, 0, true, 0, []byte(sub[:cut]))...)
			frames = append(frames, rfcFrame(rawPing, true, 0, true, 0, []byte("between"))...)
			frames = append(frames, rfcFrame(rawPong, true, 0, true, 0, []byte("unsolicited"))...)
			frames = append(frames, rfcFrame(rawContinuation, false, 0, true, 0, nil)...)
			frames = append(frames, rfcFrame(rawPing, true, 0, true, 0, nil)...)
			frames = append(frames, rfcFrame(rawContinuation, true, 0, true, 2, []byte(sub[cut:]))...)
			if err := c.writeAll(frames); err != nil {
				t.Fatal(err)
			}
			var pongs [][]byte
			gotResult := false
			deadline := time.Now().Add(5 * time.Second)
			for len(pongs) < 3 || !gotResult {
				g, err := rfcRead(c, time.Until(deadline))
				if err != nil {
					t.Fatalf("pongs %q, result %v: %v", pongs, gotResult, err)
				}
				switch {
				case g.op == rawPong:
					pongs = append(pongs, g.payload)
				case g.op == rawText && bytes.Contains(g.payload, []byte(`"__typename"`)):
					if !bytes.Contains(g.payload, []byte(`"id":"é€😀"`)) {
						t.Errorf("result under another id: %s", g.payload)
					}
					gotResult = true
				case g.op == rawText:
				default:
					t.Fatalf("unexpected %v", g)
				}
			}
			want := [][]byte{payload125[:], []byte("between"), {}}
			for i := range want {
				if !bytes.Equal(pongs[i], want[i]) {
					t.Errorf("pong %d: got %q, want %q", i, pongs[i], want[i])
				}
			}
			// A ping of 125 bytes at an idle socket, answered identically.
			time.Sleep(50 * time.Millisecond)
			if err := c.writeAll(rfcFrame(rawPing, true, 0, true, 0, payload125[:])); err != nil {
				t.Fatal(err)
			}
			for {
				g, err := rfcRead(c, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if g.op == rawPong {
					if !bytes.Equal(g.payload, payload125[:]) {
						t.Errorf("pong %q, want %q", g.payload, payload125[:])
					}
					break
				}
			}
			// Close: echoed, nothing after.
			_ = c.writeAll(rfcFrame(rawClose, true, 0, true, 0, rfcClosePayload(1000, "")))
			_, cl := rfcUntilClose(t, c, 5*time.Second)
			if rfcCode(cl) != 1000 {
				t.Errorf("got %v, want 1000", cl)
			}
		})
	}
}

// TestRFC6455MessageLimit: a message of exactly --ws-max-message-bytes
// is read, one byte more closes with 1009, fragmented or not.
func TestRFC6455MessageLimit(t *testing.T) {
	const limit = 2000
	r := newReplica(t, func(o *Options) { o.MaxMessageBytes = limit })
	msg := func(n int) []byte {
		head := []byte(`{"type":"ping","payload":{"x":"`)
		tail := []byte(`"}}`)
		return append(append(head, bytes.Repeat([]byte("x"), n-len(head)-len(tail))...), tail...)
	}
	for _, p := range []wspProto{wspTransport} {
		for _, frag := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/fragmented=%v", p.name, frag), func(t *testing.T) {
				c := rfcDial(t, r, p)
				send := func(m []byte) {
					var frames []byte
					if frag {
						h := len(m) / 2
						frames = append(rfcFrame(rawText, false, 0, true, 0, m[:h]),
							rfcFrame(rawContinuation, true, 0, true, 0, m[h:])...)
					} else {
						frames = rfcFrame(rawText, true, 0, true, 0, m)
					}
					if err := c.writeAll(frames); err != nil {
						t.Fatal(err)
					}
				}
				send(msg(limit))
				for {
					g, err := rfcRead(c, 5*time.Second)
					if err != nil {
						t.Fatalf("no pong for a message at the limit: %v", err)
					}
					if g.op == rawClose {
						t.Fatalf("closed at the limit: %v", g)
					}
					if g.op == rawText && bytes.Contains(g.payload, []byte(`"pong"`)) {
						break
					}
				}
				send(msg(limit + 1))
				_, cl := rfcUntilClose(t, c, 5*time.Second)
				if rfcCode(cl) != 1009 {
					t.Errorf("got %v, want 1009", cl)
				}
			})
		}
	}
}
