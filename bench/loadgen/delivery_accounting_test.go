package main

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// nextFrame is a graphql-transport-ws next frame carrying text.
func nextFrame(text string) []byte {
	return fmt.Appendf(nil, `{"id":"1","type":"next","payload":{"data":{"messagePosted":{"text":%q}}}}`, text)
}

// TestResultCountsEveryDistinctDelivery: result() counts a
// delivery that arrived out of order as received (it is one; only its
// order is wrong), not a duplicate, and records the time of the last
// delivery, from which the run's deliveries/s, the benchmarks' headline
// number, is computed.
func TestResultCountsEveryDistinctDelivery(t *testing.T) {
	r := newRun(Config{DrainTimeout: time.Second})
	s := &sub{room: 0}
	c := &conn{idx: 0, proto: protoTransport, subs: []*sub{s}, done: make(chan struct{})}
	started := time.Now().Add(-time.Second)
	sent := started.UnixNano()
	for _, seq := range []int{1, 3, 2, 3} { // 2 after 3, then 3 again
		r.result(c, s, nextFrame(fmt.Sprintf("lg|0|%d|%d", seq, sent)), time.Now())
	}
	if got := r.delivered.Load(); got != 3 {
		t.Errorf("delivered %d, want 3 (1, 3, and 2 out of order; the second 3 is a duplicate)", got)
	}
	if s.tr.reordered != 1 || s.tr.dup != 1 {
		t.Errorf("reordered %d dup %d, want 1, 1", s.tr.reordered, s.tr.dup)
	}
	dr := r.deliveryReport(started, 3, true)
	if dr.Received != 3 || dr.WindowSec <= 0 || dr.PerSecond <= 0 {
		t.Errorf("delivery report %+v: want 3 received over a window > 0 at a rate > 0", *dr)
	}
}

// TestDrainNeverCompleteAfterAFailedPublish: with a failed
// publish the expected count is not trusted (an event stored although its
// post failed could make it up), so the drain waits its whole timeout and
// is reported incomplete, even when the count is reached.
func TestDrainNeverCompleteAfterAFailedPublish(t *testing.T) {
	r := newRun(Config{DrainTimeout: 100 * time.Millisecond})
	r.delivered.Store(10)
	if r.drain(context.Background(), 10, false) {
		t.Errorf("drain(inexact) = complete, want incomplete")
	}
	if !r.drain(context.Background(), 10, true) {
		t.Errorf("control: drain(exact) with every delivery = incomplete, want complete")
	}
	t0 := time.Now()
	rep := &Report{Publish: &PublishReport{Sent: 10, Acked: 9, Failed: 1}}
	if r.drainDeliveries(context.Background(), rep, 10) {
		t.Errorf("drainDeliveries with a failed publish = complete, want incomplete")
	}
	if d := time.Since(t0); d < 90*time.Millisecond {
		t.Errorf("drainDeliveries with a failed publish returned after %v, before its drain timeout", d)
	}
}
