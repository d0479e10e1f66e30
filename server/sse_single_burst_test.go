package server

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSingleStreamQueryBurstIsNotSlow: a burst of as many queries
// as a stream may start at once (--ws-subscribe-burst, 50), on a
// single-connection stream whose client reads promptly, with the default
// --ws-queue, gets every result and complete and no SLOW_CONSUMER. A
// complete counts as one of the queue's messages, as on a socket
// (outQueue.push), but the queue is emptied at every wake-up, so it only
// holds what arrives during one write, and completes add at most one per
// operation, which the operation limits bound far below --ws-queue.
func TestSingleStreamQueryBurstIsNotSlow(t *testing.T) {
	r := newReplica(t, nil)
	token := r.reserve("ann")
	c := r.openSingle(token, "ann")
	before := testutil.ToFloat64(r.server.ws.metrics.slowCloses)
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			statuses[i], _ = r.operation(token, "ann", fmt.Sprint("q", i), `{ __typename }`, nil)
		})
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusAccepted {
			t.Fatalf("query %d: %d", i, s)
		}
	}
	next, complete := map[string]bool{}, map[string]bool{}
	for len(complete) < n {
		ev := c.nextSingle()
		switch ev.event {
		case "next":
			if string(ev.payload) != `{"data":{"__typename":"Query"}}` {
				t.Fatalf("%s: %s", ev.id, ev.payload)
			}
			next[ev.id] = true
		case "complete":
			if !next[ev.id] {
				t.Fatalf("%s completed without its result", ev.id)
			}
			complete[ev.id] = true
		}
	}
	if got := testutil.ToFloat64(r.server.ws.metrics.slowCloses) - before; got != 0 {
		t.Fatalf("%v slow consumer closes", got)
	}
}
