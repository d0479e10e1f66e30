package server

import (
	"fmt"
	"testing"
	"time"
)

// An HTTP stream's response headers (and its preamble: ":" for SSE, the
// first delimiter for multipart) are the only sign a client gets that its
// subscription is open: EventSource fires "open", graphql-sse's client
// says it is connected. Herald sent them before the subscription's
// resolver had run, so before anything watched the room: a message posted
// once the stream was open, while the replica was still loading the room
// (one it did not hold: the usual case behind a load balancer), was in the
// room's state when the watcher registered, and never delivered. The
// headers follow the join now, as over a WebSocket the next message is
// read only after it.

const streamOpenRounds = 6

// missedAfterOpen opens a stream on b for a room a holds and b does not,
// posts through a once the stream is open, and reports whether the post
// was delivered within a few seconds.
func missedAfterOpen(t *testing.T, open func(b *replica, room string) (next func(time.Duration) (string, bool))) (missed int) {
	a, b := newReplicaPair(t, nil)
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; i < streamOpenRounds && time.Now().Before(deadline); i++ {
		room := a.room(fmt.Sprintf("open-%d", i))
		a.post(room, "alice", "before") // a holds the room
		next := open(b, room)           // returns once the headers and preamble are in
		a.post(room, "alice", "after")
		text, ok := next(2 * time.Second)
		if !ok || text != "after" {
			missed++
			t.Logf("round %d: the post made once the stream was open was not delivered (got %q, %v)", i, text, ok)
		}
		// The stream itself works: a post made once its subscription
		// has joined arrives.
		waitFor(t, "the subscription to join", func() bool { return b.members() == i+1 })
		a.post(room, "alice", "control")
		for {
			text, ok := next(5 * time.Second)
			if !ok {
				t.Fatalf("round %d: the control post did not arrive either", i)
			}
			if text == "control" {
				break
			}
		}
	}
	return missed
}

func TestSSEOpensOnceSubscribed(t *testing.T) {
	missed := missedAfterOpen(t, func(b *replica, room string) func(time.Duration) (string, bool) {
		c, status, body := b.openSSE(sseRequest{method: "POST", query: postedSub, vars: map[string]any{"r": room}})
		if c == nil {
			t.Fatalf("status %d: %s", status, body)
		}
		// The preamble (a comment) is the first thing the stream carries.
		select {
		case ev := <-c.events:
			if !ev.comment {
				t.Fatalf("first event %+v, want the preamble", ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no preamble")
		}
		return func(d time.Duration) (string, bool) {
			timer := time.NewTimer(d)
			defer timer.Stop()
			for {
				select {
				case ev, ok := <-c.events:
					if !ok {
						return "", false
					}
					if ev.comment {
						continue
					}
					return ev.postedText(t), true
				case <-timer.C:
					return "", false
				}
			}
		}
	})
	if missed > 0 {
		t.Fatalf("%d of %d SSE subscriptions missed a message posted after their stream had opened", missed, streamOpenRounds)
	}
}

func TestMultipartOpensOnceSubscribed(t *testing.T) {
	missed := missedAfterOpen(t, func(b *replica, room string) func(time.Duration) (string, bool) {
		c, resp, body := b.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}})
		if c == nil {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		return func(d time.Duration) (string, bool) {
			timer := time.NewTimer(d)
			defer timer.Stop()
			for {
				select {
				case p, ok := <-c.parts:
					if !ok {
						return "", false
					}
					if p.heartbeat {
						continue
					}
					return p.postedText(t), true
				case <-timer.C:
					return "", false
				}
			}
		}
	})
	if missed > 0 {
		t.Fatalf("%d of %d multipart subscriptions missed a message posted after their stream had opened", missed, streamOpenRounds)
	}
}
