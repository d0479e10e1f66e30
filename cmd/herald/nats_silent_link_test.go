package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestNATSLinkGoingSilent: the link to NATS goes silent (no reset) for a
// few seconds, shorter than the keepalive needs to notice (see
// pubsub.Log's connection options). A mutation meanwhile fails within
// --apply-timeout with a code that says its outcome is unknown, never a
// success or a hang; /readyz fails while silent; and once the link carries
// again the subscriber gets whatever was stored exactly once, in order.
func TestNATSLinkGoingSilent(t *testing.T) {
	addr, proxy, applyTimeout := behindHoleProxy(t, newExternalNATS(t))
	room := createRoom(t, addr, "alice", "hole")
	sub := subscribeMessages(t, addr, room)
	cursors := map[string]bool{}
	postMessage(t, addr, "bob", room, "before")
	sub.expectPosted("before", cursors)

	proxy.pause()
	postOnDeadLink(t, addr, "bob", room, "during", "", applyTimeout)
	waitReadyz(t, addr, http.StatusServiceUnavailable, 6*time.Second)
	// Usually back before the keepalive gives up (10 s at the earliest);
	// on a loaded machine it may not be, and nats.go reconnects once the
	// link carries again: the checks below hold either way.
	proxy.resume()
	waitReadyz(t, addr, http.StatusOK, 10*time.Second)

	// The held post may have reached NATS late, and then it is stored
	// (OUTCOME_UNKNOWN said it may be). The subscriber gets it once, then
	// the next one.
	var count struct{ Room struct{ MessageCount int } }
	postMessage(t, addr, "bob", room, "after")
	gql(t, addr, "", `query($r: ID!) { room(id: $r) { messageCount } }`, map[string]any{"r": room}, &count)
	switch count.Room.MessageCount {
	case 3:
		sub.expectPosted("during", cursors)
	case 2:
	default:
		t.Fatalf("messageCount = %d, want 2 or 3", count.Room.MessageCount)
	}
	sub.expectPosted("after", cursors)
}

// TestNATSLinkLosingItsState: a middlebox loses the state of Herald's NATS
// connection: from then on it carries nothing, and nobody hears a reset;
// new connections work. Another replica, directly on NATS, posts
// meanwhile. Herald notices (the keepalive: 10 to 15 s), reconnects, and
// its subscriber gets every post once, in order; a mutation on the dead
// link fails within --apply-timeout, and its retry with the same
// idempotency key stores it once.
func TestNATSLinkLosingItsState(t *testing.T) {
	nats := newExternalNATS(t)
	cfgB := testConfig(t, t.TempDir())
	cfgB.MutationRate = 0
	cfgB.NATSURLs = []string{nats.url()}
	b := startTestApp(t, cfgB)
	addr, proxy, applyTimeout := behindHoleProxy(t, nats)

	room := createRoom(t, b.Addr(), "alice", "cut")
	sub := subscribeMessages(t, addr, room)
	cursors := map[string]bool{}
	postMessage(t, b.Addr(), "bob", room, "before")
	sub.expectPosted("before", cursors)

	proxy.cutSilently()
	const n = 5
	for i := range n {
		postMessage(t, b.Addr(), "bob", room, fmt.Sprintf("during %d", i))
	}
	postOnDeadLink(t, addr, "carol", room, "via A", "k1", applyTimeout)

	// The keepalive (5 s × 2 pings out) notices within 15 s; reconnect
	// is then immediate (new connections work).
	waitReadyz(t, addr, http.StatusServiceUnavailable, 5*time.Second)
	waitReadyz(t, addr, http.StatusOK, 25*time.Second)
	postMessage(t, b.Addr(), "bob", room, "last")
	for i := range n {
		sub.expectPosted(fmt.Sprintf("during %d", i), cursors)
	}
	sub.expectPosted("last", cursors)

	var count struct{ Room struct{ MessageCount int } }
	gql(t, addr, "", `query($r: ID!) { room(id: $r) { messageCount } }`, map[string]any{"r": room}, &count)
	if count.Room.MessageCount != n+2 {
		t.Errorf("messageCount on A = %d, want %d", count.Room.MessageCount, n+2)
	}
	// Retrying the unknown-outcome post with its key stores it once.
	r2 := gql(t, addr, "carol", `mutation($r: ID!) { postMessage(roomId: $r, text: "via A", idempotencyKey: "k1") { id room { messageCount } } }`, map[string]any{"r": room}, nil)
	if len(r2.Errors) > 0 {
		t.Fatalf("retry after the link came back: %+v", r2.Errors)
	}
	sub.expectPosted("via A", cursors)
}

// behindHoleProxy starts Herald with its NATS link through a holeProxy to
// nats, and mutations bounded by a 2 s --apply-timeout.
func behindHoleProxy(t *testing.T, nats *externalNATS) (addr string, proxy *holeProxy, applyTimeout time.Duration) {
	t.Helper()
	proxy = newHoleProxy(t, nats.srv.Addr().String())
	cfg := testConfig(t, t.TempDir())
	cfg.MutationRate = 0
	cfg.NATSURLs = []string{proxy.url()}
	cfg.ApplyTimeout = 2 * time.Second
	return startTestApp(t, cfg).Addr(), proxy, cfg.ApplyTimeout
}

// postOnDeadLink posts text as user (with key, unless "") over a link to NATS that carries
// nothing: the answer comes within applyTimeout (and a second's slack) and
// says its outcome is unknown, or that the log is unavailable; never a
// success or a hang.
func postOnDeadLink(t *testing.T, addr, user, room, text, key string, applyTimeout time.Duration) {
	t.Helper()
	vars := map[string]any{"r": room, "t": text}
	if key != "" {
		vars["k"] = key // an empty key is BAD_USER_INPUT: "" posts without one
	}
	start := time.Now()
	r := gql(t, addr, user, `mutation($r: ID!, $t: String!, $k: String) { postMessage(roomId: $r, text: $t, idempotencyKey: $k) { id } }`, vars, nil)
	if took := time.Since(start); took > applyTimeout+time.Second {
		t.Errorf("a mutation on a dead link took %s, want within --apply-timeout %s", took, applyTimeout)
	}
	if c := r.code(); c != "OUTCOME_UNKNOWN" && c != "UNAVAILABLE" {
		t.Errorf("a mutation on a dead link answered code %q (%+v), want OUTCOME_UNKNOWN or UNAVAILABLE", c, r.Errors)
	}
}
