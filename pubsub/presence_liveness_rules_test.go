package pubsub

import (
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// putGhostReplica writes, through p, the keys of a replica "ghost" that is
// not running: its liveness key and its member gus on topic room.
func putGhostReplica(t *testing.T, p *Presence) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	if _, err := p.replicas.Put(ctx, "ghost", []byte("alive")); err != nil {
		t.Fatalf("write the ghost's liveness key: %v", err)
	}
	if _, err := p.members.Put(ctx, "room.ghost", []byte(`["gus"]`)); err != nil {
		t.Fatalf("write the ghost's members: %v", err)
	}
}

// TestPresenceDeletedLivenessKeyTakesReplicaOut: a replica whose liveness
// key is deleted (a clean stop deletes it; a limit marker purges it) is
// out of every follower's set at once, with its members, though its
// member keys are still in the bucket: not only after the sweep of silent
// replicas, TTL plus a Heartbeat (16 s here) later.
func TestPresenceDeletedLivenessKeyTakesReplicaOut(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "b", TTL: 12 * time.Second, Coalesce: 20 * time.Millisecond})
	p.Enter("room", "bob")
	putGhostReplica(t, p)
	seen := watchPresence(t, p, "room")
	seen.until(t, 5*time.Second, "bob", "gus")
	if err := p.replicas.Delete(testCtx(t, 5*time.Second), "ghost"); err != nil {
		t.Fatal(err)
	}
	if d := seen.until(t, 25*time.Second, "bob"); d > 4*time.Second {
		t.Fatalf("a replica whose liveness key was deleted left after %s; the delete must take it out at once (TTL %s)", d, p.opts.TTL)
	}
}

// TestPresenceStartIgnoresDeletedReplicas: a replica starting reads the
// liveness bucket's deletes and limit markers as replicas gone: a replica
// that stopped (its key deleted) is not taken as alive by one that starts
// after it, even though its member keys are still there.
func TestPresenceStartIgnoresDeletedReplicas(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	b := openPresence(t, l, PresenceOptions{Replica: "b", Coalesce: 20 * time.Millisecond})
	b.Enter("room", "bob")
	putGhostReplica(t, b)
	if err := b.replicas.Delete(testCtx(t, 5*time.Second), "ghost"); err != nil {
		t.Fatal(err)
	}
	watchPresence(t, b, "room").until(t, 5*time.Second, "bob") // b's key is written
	c := openPresence(t, l, PresenceOptions{Replica: "c"})
	if first := watchPresence(t, c, "room").firstReport(t, 5*time.Second); !slices.Equal(first, []string{"bob"}) {
		t.Fatalf("a replica started after ghost's liveness key was deleted first reports %q, want [bob]: a deleted key is no replica alive", first)
	}
}

// TestPresenceSilentReplicaLeavesWithinBound: with no limit marker, a
// silent replica is dropped once not heard from for TTL plus a Heartbeat,
// checked every Heartbeat: with TTL 3s, its members leave within about
// 5 s of its last heartbeat, not several TTLs later. The test allows up
// to three TTLs, for a loaded machine.
func TestPresenceSilentReplicaLeavesWithinBound(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	const ttl = 3 * time.Second
	p := openPresence(t, l, PresenceOptions{Replica: "b", TTL: ttl, Coalesce: 20 * time.Millisecond})
	p.Enter("room", "bob")
	ctx := testCtx(t, 5*time.Second)
	beat := nats.NewMsg("$KV." + p.opts.Bucket + "_REPLICAS.ghost")
	beat.Header.Set("Nats-TTL", "never") // no limit marker will say it expired
	beat.Data = []byte("alive")
	start := time.Now() // the follower hears the ghost after this
	if _, err := p.js.PublishMsg(ctx, beat); err != nil {
		t.Fatalf("write the ghost's heartbeat: %v", err)
	}
	if _, err := p.members.Put(ctx, "room.ghost", []byte(`["gus"]`)); err != nil {
		t.Fatalf("write the ghost's members: %v", err)
	}
	seen := watchPresence(t, p, "room")
	seen.until(t, 5*time.Second, "bob", "gus")
	seen.until(t, 20*time.Second, "bob")
	if d, limit := time.Since(start), 3*ttl; d > limit {
		t.Fatalf("a silent replica left %s after its last heartbeat; TTL %s plus two heartbeats of %s allow about %s (limit %s)",
			d, ttl, p.opts.Heartbeat, ttl+2*p.opts.Heartbeat, limit)
	}
}

// TestPresenceCloseDeletesItsLivenessKey: Close deletes the replica's
// liveness key, so that it is at once no replica alive (Log.replicasAlive,
// which guards a change of the log's limits, and every follower), not a
// TTL later.
func TestPresenceCloseDeletesItsLivenessKey(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, la, PresenceOptions{Replica: "a"})
	openPresence(t, lb, PresenceOptions{Replica: "b"})
	alive, err := lb.replicasAlive(testCtx(t, 5*time.Second))
	if err != nil || !slices.Equal(alive, []string{"a", "b"}) {
		t.Fatalf("replicas alive = %q, %v; want [a b]", alive, err)
	}
	if err := a.Close(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	alive, err = lb.replicasAlive(testCtx(t, 5*time.Second))
	if err != nil || !slices.Equal(alive, []string{"b"}) {
		t.Fatalf("replicas alive just after a's Close = %q, %v; want [b]: Close must delete its liveness key", alive, err)
	}
}

// TestPresenceCloseDeletesItsMemberKeys: Close deletes the replica's
// member keys (heads and pages), not only its liveness key: otherwise
// they stay in the bucket until KeyTTL (1 h), and count again for any
// follower that takes the replica as alive (its liveness delete failed,
// or was not yet seen).
func TestPresenceCloseDeletesItsMemberKeys(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, la, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	b := openPresence(t, lb, PresenceOptions{Replica: "b"})
	a.Enter("room", "alice")
	a.Enter("hall", "alice")
	watchPresence(t, b, "room").until(t, 5*time.Second, "alice")
	watchPresence(t, b, "hall").until(t, 5*time.Second, "alice")
	if err := a.Close(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"room.a", "hall.a"} {
		if e, err := b.members.Get(testCtx(t, 5*time.Second), key); err == nil {
			t.Errorf("key %s still holds %s after a's Close; Close must delete its member keys", key, e.Value())
		}
	}
}

// TestPresenceRecreateRewatchesPromptly: when this replica finds the
// buckets lost and re-creates them, its follower watches the new liveness
// bucket at once (recreate wakes it), and its topic watches follow within
// a Heartbeat and the rewatch jitter: a member entering through it is
// shown by its own watch within about a second here, not only after the
// follower's TTL of silence (10 s) on the old bucket.
func TestPresenceRecreateRewatchesPromptly(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, l, PresenceOptions{Replica: "a", TTL: 10 * time.Second, Heartbeat: 500 * time.Millisecond, Coalesce: 20 * time.Millisecond})
	a.Enter("room", "carol")
	seen := watchPresence(t, a, "room")
	seen.until(t, 5*time.Second, "carol")
	for _, bucket := range []string{a.opts.Bucket, a.opts.Bucket + "_REPLICAS"} {
		if err := rawJS(t, url).DeleteKeyValue(testCtx(t, 5*time.Second), bucket); err != nil {
			t.Fatal(err)
		}
	}
	a.Enter("room", "alice") // its write fails: a re-creates the buckets
	d := seen.until(t, 25*time.Second, "alice", "carol")
	if limit := 6 * time.Second; d > limit {
		t.Fatalf("after a re-created the lost buckets, its own members showed after %s; want within %s (a Heartbeat of %s plus the rewatch jitter), not a TTL of %s later",
			d, limit, a.opts.Heartbeat, a.opts.TTL)
	}
}
