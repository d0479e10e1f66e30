package pubsub

import (
	"slices"
	"testing"
	"time"
)

// TestLiveReportsOneMoreDrop: after TakeLost reported an
// overflowing key, a single further drop in the same slow-consumer episode
// (which nats.go does not announce again) is still reported: one entry lost
// is as much a gap as twenty.
func TestLiveReportsOneMoreDrop(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	lv := newLive(t, l, LiveOptions{Buffer: 4}, keyA, keyOther)
	publishBulk(t, l, "herald-p0."+keyA+".msg", 50)
	if all, keys := waitLost(t, lv, 5*time.Second); all || !slices.Equal(keys, []string{keyA}) {
		t.Fatalf("TakeLost after overflow = %v, %v; want false, [%s]", all, keys, keyA)
	}
	lv.mu.Lock()
	sub := lv.keys[keyA].sub
	lv.mu.Unlock()
	// On a loaded machine the first bulk may still be dropping when its
	// loss is first reported: wait until its drops have settled, and take
	// what they reported, so that the one more drop below is the only one.
	settled, last, deadline := 0, -1, time.Now().Add(10*time.Second)
	for settled < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the first bulk's drops did not settle within 10s (at %d)", last)
		}
		time.Sleep(100 * time.Millisecond)
		d, _ := sub.Dropped()
		if d == last {
			settled++
		} else {
			settled, last = 0, d
		}
	}
	lv.TakeLost()
	before, _ := sub.Dropped()
	// Let checkSuspects run a few times while nothing is delivered: the
	// episode goes on, so the key must stay a suspect.
	time.Sleep(3 * suspectCheckInterval)
	publishBulk(t, l, "herald-p0."+keyA+".msg_one", 1)
	waitFor(t, 5*time.Second, "the one more drop", func() bool {
		d, _ := sub.Dropped()
		return d == before+1
	})
	if all, keys := waitLost(t, lv, 5*time.Second); all || !slices.Equal(keys, []string{keyA}) {
		t.Fatalf("TakeLost after one more drop = %v, %v; want false, [%s]", all, keys, keyA)
	}
}
