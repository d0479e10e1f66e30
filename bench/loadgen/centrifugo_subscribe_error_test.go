package main

import (
	"testing"
	"time"
)

// TestCentrifugoFirstSubscriptionRefused: an error reply to
// the first subscribe command (id 2) ends the first subscription, as one to
// the second ends the second (TestCentrifugoFrame), so that waitLive does
// not probe it until the setup timeout.
func TestCentrifugoFirstSubscriptionRefused(t *testing.T) {
	r, c := newCentrifugoTestRun()
	r.centrifugoFrame(c, []byte(`{"id":2,"error":{"code":103,"message":"permission denied"}}`), time.Now())
	if !c.subs[0].dead.Load() || c.subs[1].dead.Load() || r.errs["sub-error"] != 1 {
		t.Errorf("dead %v, %v; errors %v: want the first subscription ended, the second not, one sub-error",
			c.subs[0].dead.Load(), c.subs[1].dead.Load(), r.errs)
	}
}
