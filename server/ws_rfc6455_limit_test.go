package server

import (
	"bytes"
	"testing"
	"time"
)

// TestRFC6455OverLimitWhileSending: a client sends one message far
// over --ws-max-message-bytes and only then reads; it should find the
// server's 1009 close frame, not a reset connection.
func TestRFC6455OverLimitWhileSending(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.MaxMessageBytes = 4096 })
	for i := range 5 {
		c := rfcDial(t, r, wspTransport)
		big := rfcFrame(rawText, true, 0, true, 0, bytes.Repeat([]byte("x"), 4<<20))
		werr := c.writeAll(big)
		g, err := rfcRead(c, 5*time.Second)
		if err != nil {
			t.Fatalf("round %d: write: %v; read: %v; want the 1009 close frame", i, werr, err)
		}
		if g.op != rawClose || rfcCode(g) != 1009 {
			t.Fatalf("round %d: got %v, want 1009", i, g)
		}
	}
}
