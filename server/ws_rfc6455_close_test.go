package server

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestRFC6455DataAndCloseTogether: a subscribe and a close frame in
// one write reach an idle (parked) socket together; the close is echoed,
// nothing follows it, and the subscription is released.
func TestRFC6455DataAndCloseTogether(t *testing.T) {
	r := newReplica(t, nil)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			room := r.room("together-" + p.name)
			for i := range 20 {
				c := rfcDial(t, r, p)
				time.Sleep(5 * time.Millisecond) // let it park
				sub := fmt.Sprintf(`{"id":"s","type":%q,"payload":{"query":"subscription($r: ID!) { messagePosted(roomId: $r) { text } }","variables":{"r":%q}}}`, p.start, room)
				frames := rfcFrame(rawText, true, 0, true, 0, []byte(sub))
				if i%2 == 1 { // the close between the fragments of a message
					frames = rfcFrame(rawText, false, 0, true, 0, []byte(sub[:10]))
				}
				frames = append(frames, rfcFrame(rawClose, true, 0, true, 0, rfcClosePayload(1000, "done"))...)
				if err := c.writeAll(frames); err != nil {
					t.Fatal(err)
				}
				if i%3 == 2 {
					_ = c.conn.(*net.TCPConn).CloseWrite()
				}
				_, cl := rfcUntilClose(t, c, 5*time.Second)
				if rfcCode(cl) != 1000 {
					t.Fatalf("round %d: got %v, want 1000", i, cl)
				}
			}
			waitFor(t, "the subscriptions released", func() bool { return r.members() == 0 })
		})
	}
}

// TestRFC6455ServerCloseWhileStreaming: the server closes (4400 for
// a binary message) while large events stream and the client pings;
// every pong is identical to its ping, frames are whole, and nothing
// follows the close frame.
func TestRFC6455ServerCloseWhileStreaming(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.QueueBytes = 64 << 20 }, withSmallSendBuffers)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			room := bigRoom(r, "srvclose-"+p.name)
			for round := range 4 {
				c := r.dialRaw(p.name, 4096)
				c.start(p, streamQuery, map[string]any{"r": room})
				waitFor(t, "the subscription", func() bool { return r.members() == 1 })
				bg := newBackground(t)
				bg.wg.Go(func() { _ = postEvents(r, room, 1000, bg.stop, nil) })
				events := 0
				closed := false
				var pongs []string
				sent := 0
				deadline := time.Now().Add(20 * time.Second)
				for !closed {
					g, err := rfcRead(c, time.Until(deadline))
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
					switch g.op {
					case rawText:
						events++
						if events == 2 {
							// pings, then a binary message: 4400 while streaming
							var frames []byte
							for i := range 20 {
								frames = append(frames, appendClientFrame(nil, rawPing, fmt.Appendf(nil, "%s%06d", pingMark, i))...)
								sent++
							}
							frames = append(frames, appendClientFrame(nil, 0x2, []byte("bin"))...)
							for i := 20; i < 40; i++ {
								frames = append(frames, appendClientFrame(nil, rawPing, fmt.Appendf(nil, "%s%06d", pingMark, i))...)
							}
							if err := c.writeAll(frames); err != nil {
								t.Fatal(err)
							}
						}
					case rawPong:
						if want := fmt.Sprintf("%s%06d", pingMark, len(pongs)); string(g.payload) != want {
							t.Fatalf("pong %q, want %q", g.payload, want)
						}
						pongs = append(pongs, string(g.payload))
					case rawClose:
						closed = true
						if rfcCode(g) != closeBadRequest {
							t.Fatalf("close %v", g)
						}
					case rawPing:
					default:
						t.Fatalf("unexpected %v", g)
					}
				}
				bg.end()
				// Nothing after the close frame; answer it and see the end.
				_ = c.write(rawClose, rfcClosePayload(closeBadRequest, ""))
				g, err := rfcRead(c, closeGrace+3*time.Second)
				if err == nil {
					t.Fatalf("round %d: a frame after the close frame: %v", round, g)
				}
				if isTimeout(err) {
					t.Fatalf("round %d: connection kept open", round)
				}
				if len(pongs) < 20 {
					t.Logf("round %d: %d pongs before the close (sent %d)", round, len(pongs), sent)
				}
				waitFor(t, "released", func() bool { return r.members() == 0 })
			}
		})
	}
}

// TestRFC6455NothingAnsweredAfterClientClose: what follows a client's
// close frame in the same write (a ping, a message, a second close) is
// not answered: the echo is the server's last frame (Autobahn 7.1.2-7.1.4).
func TestRFC6455NothingAnsweredAfterClientClose(t *testing.T) {
	r := newReplica(t, nil)
	after := map[string][]byte{
		"ping":   rfcFrame(rawPing, true, 0, true, 0, []byte("late")),
		"text":   rfcFrame(rawText, true, 0, true, 0, []byte(`{"type":"ping"}`)),
		"close":  rfcFrame(rawClose, true, 0, true, 0, rfcClosePayload(1001, "")),
		"broken": rfcFrame(0x3, true, 0, true, 0, nil),
	}
	for _, p := range wspProtocols {
		for name, f := range after {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				c := rfcDial(t, r, p)
				frames := append(rfcFrame(rawClose, true, 0, true, 0, rfcClosePayload(1000, "")), f...)
				if err := c.writeAll(frames); err != nil {
					t.Fatal(err)
				}
				before, cl := rfcUntilClose(t, c, 5*time.Second)
				if len(before) > 0 || rfcCode(cl) != 1000 {
					t.Fatalf("got %v then %v, want only the echo of 1000", before, cl)
				}
			})
		}
	}
}
