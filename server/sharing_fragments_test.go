package server

import "testing"

// TestNoViewerDirectiveNeverSharesAcrossIdentities: with
// Options.ViewerDirective empty ("never share across identities"), two
// users' identical subscriptions run two executions, while one user's two
// share one. Guards against viewerDependent returning false for an empty directive
// (shared.go), which would hand one viewer's results to every other.
func TestNoViewerDirectiveNeverSharesAcrossIdentities(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.ViewerDirective = "" })
	room := r.room("general")
	plain := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	for _, user := range []string{"alice", "alice", "bob"} {
		c := r.dialTransport(user)
		c.subscribe("subscribe", "s", plain, map[string]any{"r": room})
	}
	waitFor(t, "the subscriptions to join", func() bool { return r.members() == 3 })
	if n := r.server.ws.execs.count(); n != 2 {
		t.Fatalf("%d executions for alice, alice and bob without a viewer directive, want 2 (one per identity)", n)
	}
}

// TestViewerFieldInFragmentsIsPerIdentity: a viewer-dependent
// field selected through an inline fragment or a named fragment makes the
// subscription per identity, as when it is selected directly. Guards against
// selects (shared.go) skipping inline fragments or fragment spreads: bob
// would be sent alice's viewerHasReacted.
func TestViewerFieldInFragmentsIsPerIdentity(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	for name, q := range map[string]string{
		"inline fragment": `subscription($r: ID!) { messagePosted(roomId: $r) { text ... on Message { reactions { emoji viewerHasReacted } } } }`,
		"named fragment": `subscription($r: ID!) { messagePosted(roomId: $r) { text ...F } }
fragment F on Message { reactions { emoji viewerHasReacted } }`,
	} {
		t.Run(name, func(t *testing.T) {
			r := r.forTest(t)
			waitFor(t, "earlier subscriptions to end", func() bool { return r.members() == 0 })
			for _, user := range []string{"alice", "bob"} {
				c := r.dialTransport(user)
				c.subscribe("subscribe", "s", q, map[string]any{"r": room})
			}
			waitFor(t, "the subscriptions to join", func() bool { return r.members() == 2 })
			if n := r.server.ws.execs.count(); n != 2 {
				t.Fatalf("%d executions for alice and bob selecting viewerHasReacted through a fragment, want 2", n)
			}
		})
	}
}
