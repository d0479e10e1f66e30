package server

import (
	"net"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestRFC6455HalfCloseGetsCloseFrame: a client sends a message the
// server must fail the connection for (a binary message: 4400; a text
// message that is not UTF-8: 1007) and then half-closes its side of the
// TCP connection, still reading. The server has chosen its close frame
// before it reads the end of input, and should send it (RFC 6455 section
// 7.1.7: send a Close frame before closing the connection), as it does
// for the close frames the reader chooses (awaitCloseFrame).
func TestRFC6455HalfCloseGetsCloseFrame(t *testing.T) {
	r := newReplica(t, nil)
	cases := []struct {
		name  string
		frame []byte
		want  int
	}{
		{"binary", rfcFrame(0x2, true, 0, true, 0, []byte("bin")), closeBadRequest},
		{"invalid utf8", rfcFrame(rawText, true, 0, true, 0, []byte("\xff\xfe")), closeInvalidPayload},
	}
	for _, p := range wspProtocols {
		for _, tc := range cases {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				missing := 0
				const rounds = 100
				for i := range rounds {
					c := rfcDial(t, r, p)
					if err := c.writeAll(tc.frame); err != nil {
						t.Fatal(err)
					}
					_ = c.conn.(*net.TCPConn).CloseWrite()
					got := false
					for {
						g, err := rfcRead(c, 5*time.Second)
						if err != nil {
							if isTimeout(err) {
								t.Fatalf("round %d: connection kept open", i)
							}
							break
						}
						if g.op == rawClose {
							if rfcCode(g) != tc.want {
								t.Fatalf("round %d: %v, want %d", i, g, tc.want)
							}
							got = true
						}
					}
					if !got {
						missing++
					}
					_ = c.conn.Close()
				}
				if missing > 0 {
					t.Errorf("%d of %d connections ended without the server's close frame (%d)", missing, rounds, tc.want)
				}
			})
		}
	}
}

// TestRFC6455HalfCloseWhileStreaming: the deterministic form of
// TestRFC6455HalfCloseGetsCloseFrame. Events are on their way to a
// client that reads slowly when it sends a binary message (4400: an
// orderly close, after what is queued) and half-closes. The server reads
// the end of its input at once and tears the socket down under the writer
// still writing the queued events: the client gets neither the rest of
// them nor the close frame, only a cut connection.
func TestRFC6455HalfCloseWhileStreaming(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.QueueBytes = 64 << 20 }, withSmallSendBuffers)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			room := bigRoom(r, "halfclose-"+p.name)
			c := r.dialRaw(p.name, 4096)
			c.start(p, streamQuery, map[string]any{"r": room})
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })
			// Ten events of about 31 KB each, not read yet.
			if err := postEvents(r, room, 10, nil, nil); err != nil {
				t.Fatal(err)
			}
			if err := c.writeAll(rfcFrame(0x2, true, 0, true, 0, []byte("bin"))); err != nil {
				t.Fatal(err)
			}
			_ = c.conn.(*net.TCPConn).CloseWrite()
			time.Sleep(200 * time.Millisecond) // the server reads the end of input meanwhile
			events := 0
			for {
				g, err := rfcRead(c, 5*time.Second)
				if err != nil {
					t.Fatalf("after %d events: %v; want the rest of the events and a close frame with %d",
						events, err, closeBadRequest)
				}
				if g.op == rawClose {
					if rfcCode(g) != closeBadRequest {
						t.Fatalf("got %v, want %d", g, closeBadRequest)
					}
					break
				}
				if g.op == rawText {
					events++
				}
			}
			t.Logf("%d events, then the close frame", events)
		})
	}
}
