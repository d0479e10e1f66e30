package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestRFC6455AllWritersStayBetweenFrames: large events written in
// parts (direct writes and the writer), the keeper's keepalives (legacy:
// ka plus a WebSocket ping; transport: ping) every few milliseconds and
// pongs to the client's pings all reach one socket at once; every frame
// stays whole, pongs stay identical and in order, and the client's close
// is echoed with nothing after it.
func TestRFC6455AllWritersStayBetweenFrames(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.QueueBytes = 64 << 20
		o.PingInterval = 10 * time.Millisecond
		o.PongTimeout = 10 * time.Second
	}, withSmallSendBuffers)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			room := bigRoom(r, "paths-"+p.name)
			c := r.dialRaw(p.name, 4096)
			c.start(p, streamQuery, map[string]any{"r": room})
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })
			bg := newBackground(t)
			posted := make(chan error, 1) // why the poster stopped, if it did
			bg.wg.Go(func() {
				i := 0
				posted <- postEvents(r, room, 60, bg.stop, func() error {
					err := c.pings(i, 5)
					i += 5
					return err
				})
			})
			events, pongs, serverPings := 0, 0, 0
			deadline := time.Now().Add(40 * time.Second)
			for events < 60 {
				g, err := rfcRead(c, time.Until(deadline))
				if err != nil {
					poster := "still posting"
					select {
					case perr := <-posted:
						poster = fmt.Sprintf("the poster ended with %v", perr)
					default:
					}
					t.Fatalf("after %d events, %d pongs, %d server pings (%s): %v", events, pongs, serverPings, poster, err)
				}
				switch g.op {
				case rawText:
					if _, ka := eventText(t, p, rawMessage{rawText, g.payload}); !ka {
						events++
					}
				case rawPong:
					if want := fmt.Sprintf("%s%06d", pingMark, pongs); string(g.payload) != want {
						t.Fatalf("pong %q, want %q", g.payload, want)
					}
					pongs++
				case rawPing:
					serverPings++
					_ = c.write(rawPong, g.payload)
				default:
					t.Fatalf("unexpected %v", g)
				}
			}
			bg.end()
			t.Logf("%d events, %d pongs, %d server pings", events, pongs, serverPings)
			_ = c.write(rawClose, rfcClosePayload(1000, ""))
			for {
				g, err := rfcRead(c, 5*time.Second)
				if err != nil {
					t.Fatalf("waiting for the echo: %v", err)
				}
				if g.op == rawClose {
					if rfcCode(g) != 1000 {
						t.Fatalf("echo %v", g)
					}
					break
				}
				if g.op == rawPong {
					if want := fmt.Sprintf("%s%06d", pingMark, pongs); string(g.payload) != want {
						t.Fatalf("pong %q, want %q", g.payload, want)
					}
					pongs++
				}
			}
			if g, err := rfcRead(c, closeGrace+3*time.Second); err == nil || isTimeout(err) {
				t.Fatalf("after the echo: %v %v", g, err)
			}
		})
	}
}
