package server

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// TestDrainedStreamWritesWhatWasQueued: a parked multipart stream told to
// go away by a drain while events are queued for it (its client reads
// slowly) writes them before SHUTTING_DOWN, as a socket writes its queue
// before 1001: a client that does not resume (graphql-sse's, Apollo's
// without the README's cursor link) would lose them otherwise.
func TestDrainedStreamWritesWhatWasQueued(t *testing.T) {
	tweak := func(o *Options) { o.QueueBytes = 64 << 20 }
	a := newReplicaOver(t, pubsub.Options{}, chat.Options{}, tweak, withSmallSendBuffers)
	room := a.room("drain")
	c, resp, body := a.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room}, dial: tinyReceiveBuffer, paused: true})
	if c == nil {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	waitFor(t, "the subscription", func() bool { return a.members() == 1 })
	const n = 100
	for i := range n {
		a.post(room, "a", slowText(i))
	}
	time.Sleep(300 * time.Millisecond) // the events reach the stream: written, blocked or queued
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- a.server.Drain(ctx, 0) }()
	time.Sleep(300 * time.Millisecond) // goAway has reached the stream
	c.resume()
	got := 0
	for {
		p := c.next()
		if string(p.payload) == "null" {
			if code := p.transportCode(t); code != codeShuttingDown {
				t.Fatalf("code %q, want %s", code, codeShuttingDown)
			}
			break
		}
		text, _ := p.posted(t)
		if text != slowText(got) {
			t.Fatalf("part %d out of order", got)
		}
		got++
	}
	c.expectEnd(5 * time.Second)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if got != n {
		t.Fatalf("the drained stream wrote %d of the %d events queued before SHUTTING_DOWN", got, n)
	}
}
