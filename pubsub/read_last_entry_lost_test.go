package pubsub

import (
	"testing"
	"time"
)

// TestReadKeyFailsOnLastEntryLost: the lost-in-transit check of
// drain must catch a single lost delivery too: the connection is cut just
// before the frame of the key's last entry, so exactly one delivery never
// arrives and no later one reveals the gap. ReadKey must pass every entry or
// fail, never return success one short.
func TestReadKeyFailsOnLastEntryLost(t *testing.T) {
	url := startNATS(t, true)
	l, current := logThroughTwoProxies(t, url)
	const key, total = "room1", 6
	appendChain(t, l, key, "posts", 0, "1", "2", "3", "4", "5", "6")

	proxy := current()
	proxy.arm(total) // entries 1-5 get through; the 6th is cut off
	var got []uint64
	_, err := l.ReadKey(testCtx(t, 20*time.Second), key, 0, func(e Entry) error {
		got = append(got, e.Seq)
		return nil
	})
	if proxy.cuts.Load() != 1 {
		t.Fatalf("the proxy did not cut the connection")
	}
	if err == nil && len(got) != total {
		t.Errorf("ReadKey returned no error after passing %d of the key's %d entries (seqs %v): the last one, lost with the connection, is silently missing",
			len(got), total, got)
	}
}
