package pubsub

import (
	"testing"
	"time"
)

// TestPresenceKeysRewrittenAtFirstHeartbeatOnRecreatedBuckets: the
// presence buckets lost (deleted here from outside, as a NATS restart
// loses them) and created anew by someone else, a replica whose heartbeat
// simply succeeds on the new liveness bucket must write its member keys
// again at once: from that heartbeat on watchers take it as alive, and
// without its keys its members are missing from every watch until its
// liveness follower notices the new bucket (up to a TTL later). The
// heartbeat's revision, not above the last one it got, says the bucket is
// new.
func TestPresenceKeysRewrittenAtFirstHeartbeatOnRecreatedBuckets(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	// A follower that notices the new bucket only after a TTL of silence:
	// TTL long, Heartbeat short.
	opts := PresenceOptions{TTL: 10 * time.Second, Heartbeat: 250 * time.Millisecond, Coalesce: 20 * time.Millisecond}
	opts.Replica = "a"
	a := openPresence(t, la, opts)
	opts.Replica = "b"
	b := openPresence(t, lb, opts)
	b.Enter("room", "bob")
	seen := watchPresence(t, a, "room")
	seen.until(t, 5*time.Second, "bob")
	time.Sleep(time.Second) // a few heartbeats: the liveness bucket's revision grows

	js := rawJS(t, url)
	for _, bucket := range []string{a.opts.Bucket, replicasBucket(a.opts.Bucket)} {
		if err := js.DeleteKeyValue(testCtx(t, 5*time.Second), bucket); err != nil {
			t.Fatalf("delete the bucket %s: %v", bucket, err)
		}
	}
	if _, _, err := createPresenceBuckets(testCtx(t, 5*time.Second), js, a.opts); err != nil {
		t.Fatalf("re-create the buckets: %v", err)
	}
	kv, err := js.KeyValue(testCtx(t, 5*time.Second), a.opts.Bucket)
	if err != nil {
		t.Fatalf("open the re-created members bucket: %v", err)
	}
	recreated := time.Now()
	// b's heartbeats (every 250ms) succeed on the new bucket at once; its
	// key must follow within a few of them (4s allows a loaded machine's
	// stalls), not a TTL (10s) later.
	within := 4 * time.Second
	for {
		if _, err := kv.Get(testCtx(t, time.Second), "room.b"); err == nil {
			t.Logf("room.b written %s after the buckets were re-created", time.Since(recreated).Round(time.Millisecond))
			break
		}
		if time.Since(recreated) > within {
			// How long it does take, for the record.
			for time.Since(recreated) < 2*opts.TTL {
				if _, err := kv.Get(testCtx(t, time.Second), "room.b"); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Fatalf("b's member key room.b not written again %s after the buckets were re-created (b heartbeating every %s); written after %s",
				within, opts.Heartbeat, time.Since(recreated).Round(time.Millisecond))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
