package server

import (
	"testing"
)

// TestQuietResumeGoesLive: a subscriber resuming from the newest cursor
// of a quiet room has nothing to replay. Its private replay (an execution
// and a room watcher of its own) is retired as soon as the resolver says
// so (eventmeta.CaughtUp), not at the room's next event, which in a quiet
// room may never come: after a deploy every reconnecting client held two.
// The subscriber still gets the next post, once.
func TestQuietResumeGoesLive(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("quiet")
	cursor := graphCursor(t, r, r.post(room, "poster", "m0"))
	c := r.dialTransport("resumer")
	c.subscribe("subscribe", "r", postedSub, map[string]any{"r": room, "after": cursor})
	waitFor(t, "the resumed subscription", func() bool { return r.members() >= 1 })
	waitFor(t, "the replay with nothing to replay to retire, leaving only the live execution",
		func() bool { return r.server.ws.execs.count() == 1 })
	r.post(room, "poster", "m1")
	r.post(room, "poster", "m2")
	got := readEvents(t, c, "r", 2)
	if got[0].text != "m1" || got[1].text != "m2" {
		t.Fatalf("got %q, %q; want m1, m2", got[0].text, got[1].text)
	}
	if n := r.server.ws.execs.count(); n != 1 {
		t.Errorf("%d executions after the posts, want 1", n)
	}
}
