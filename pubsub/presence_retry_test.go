package pubsub

import (
	"context"
	"testing"
	"time"
)

// TestPresenceFailedDeleteIsRetriedPromptly shows that a delete that fails
// with an error that does not mean a lost bucket (a request timing out: a
// slow or electing cluster, a lost reply) is retried at the next
// heartbeat. The topic stayed dirty, but nothing woke the writer until
// another set changed or the refresh every KeyTTL/3 (20 minutes by
// default): the member who left stayed present on every other replica.
func TestPresenceFailedDeleteIsRetriedPromptly(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, la, PresenceOptions{Replica: "a"})
	b := openPresence(t, lb, PresenceOptions{Replica: "b"})

	seen := watchPresence(t, b, "room")
	seen.until(t, 5*time.Second)
	a.Enter("room", "alice")
	seen.until(t, 5*time.Second, "alice")

	// The next delete times out (the request or its reply lost).
	a.mu.Lock()
	real := a.members
	a.members = deleteFails{real, context.DeadlineExceeded}
	a.mu.Unlock()
	a.Leave("room", "alice")
	time.Sleep(time.Second) // the round runs and its delete fails
	// NATS answers again.
	a.mu.Lock()
	a.members = real
	a.mu.Unlock()

	// Several heartbeats (2s) later, alice must be gone.
	seen.until(t, 8*time.Second)
}

// TestPresenceKeysRewrittenWhenAnotherReplicaRecreatesBuckets shows that
// after a NATS restart loses the in-memory buckets, every replica writes
// its keys again, not only the one that re-created them. The others'
// heartbeats then succeeded on the new bucket, so they never re-created
// anything nor rewrote their member keys: their members were missing from
// every watch for up to KeyTTL/3, though still subscribed. A replica whose
// follow of the liveness bucket has to watch again now rewrites its keys.
func TestPresenceKeysRewrittenWhenAnotherReplicaRecreatesBuckets(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, la, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	b := openPresence(t, lb, PresenceOptions{Replica: "b", Coalesce: 20 * time.Millisecond})
	a.Enter("room", "alice")
	b.Enter("room", "carol")
	watchPresence(t, a, "room").until(t, 5*time.Second, "alice", "carol")

	for _, bucket := range []string{a.opts.Bucket, a.opts.Bucket + "_REPLICAS"} {
		if err := rawJS(t, url).DeleteKeyValue(testCtx(t, 5*time.Second), bucket); err != nil {
			t.Fatal(err)
		}
	}
	a.Enter("room", "bob") // a's write fails: a re-creates the buckets and writes again
	js := rawJS(t, url)
	waitFor(t, 10*time.Second, "a to re-create the bucket", func() bool {
		_, err := js.KeyValue(testCtx(t, time.Second), a.opts.Bucket)
		return err == nil
	})
	// carol is still subscribed through b, which is alive and heartbeating.
	watchPresence(t, a, "room").until(t, 15*time.Second, "alice", "bob", "carol")
}

// TestPresenceUnansweredPutIsRetriedPromptly: the case of
// TestPresenceAbandonedPutsAreReleased with the writer running. A round
// whose puts go unanswered (a bucket leader that lost its quorum) gives
// up on them after WriteTimeout and keeps the topic dirty; the next
// heartbeat after the bucket answers again writes it. It waited for
// another set to change or the refresh (KeyTTL/3).
func TestPresenceUnansweredPutIsRetriedPromptly(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a", WriteTimeout: 300 * time.Millisecond})
	js := rawJS(t, url)
	ctx := testCtx(t, 30*time.Second)

	// The members bucket stops answering: gone, with a silent subscriber
	// keeping interest on its subjects.
	unsilence := silenceBucket(ctx, t, js, url, p.opts.Bucket)
	p.Enter("room", "alice")
	time.Sleep(time.Second) // the round's put goes unanswered and is given up on

	// The bucket answers again.
	kv, _, err := createPresenceBuckets(ctx, js, p.opts)
	if err != nil {
		t.Fatal(err)
	}
	unsilence()
	deadline := time.Now().Add(6 * time.Second) // three heartbeats
	for {
		if _, err := kv.Get(ctx, "room.a"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("6s after the bucket answered again, room.a (alice) is still not written")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
