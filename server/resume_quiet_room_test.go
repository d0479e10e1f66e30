package server

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// TestQuietResumeGoesLive: a messagePosted subscriber resuming from its
// last event's cursor in a quiet room has nothing to replay: the room had
// nothing since, or only changes messagePosted does not deliver (a
// reaction, an edit). Its private replay (an execution and a room watcher
// of its own) is retired as soon as the resolver says so
// (eventmeta.CaughtUp), not at the room's next post, which in a quiet
// room may never come: after a deploy every reconnecting client held two.
// The subscriber still gets the next posts, once each.
func TestQuietResumeGoesLive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		since func(r *replica, m chat.Message) error // what the room had after the cursor
	}{
		{"nothing since", func(*replica, chat.Message) error { return nil }},
		{"a reaction since", func(r *replica, m chat.Message) error {
			_, err := r.chat.React(context.Background(), chat.Actor{ID: "poster"}, m.ID, "👍")
			return err
		}},
		{"an edit since", func(r *replica, m chat.Message) error {
			_, err := r.chat.EditMessage(context.Background(), chat.Actor{ID: "poster"}, m.ID, m.Version, "m0 edited")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, nil)
			room := r.room("quiet")
			m0 := r.post(room, "poster", "m0")
			cursor := graphCursor(t, r, m0) // what the subscriber's last event carried
			if err := tc.since(r, m0); err != nil {
				t.Fatal(err)
			}
			c := r.dialTransport("resumer")
			c.subscribe("subscribe", "r", postedSub, map[string]any{"r": room, "after": cursor})
			waitFor(t, "the resumed subscription", func() bool { return r.members() >= 1 })
			// The live execution is attached before the replay: until the
			// replay is, the registry holds one execution already.
			waitFor(t, "the replay to be attached", func() bool { return replayAttached(r, "r") })
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
		})
	}
}

// replayAttached reports whether the resumed operation id on one of r's
// sockets has had its private replay attached (it may be retired since).
// Call it once the operation is a member of an execution: join sets its
// handoff before attach takes the registry lock.
func replayAttached(r *replica, id string) bool {
	for _, c := range r.openWSConns() {
		c.mu.Lock()
		op := c.ops[id]
		c.mu.Unlock()
		if op == nil || op.handoff == nil {
			continue
		}
		reg := r.server.ws.execs
		reg.mu.Lock()
		attached := op.handoff.private != nil
		reg.mu.Unlock()
		if attached {
			return true
		}
	}
	return false
}
