package main

import (
	"testing"
	"time"
)

// TestLatencyReport: every field of the latency report is the
// statistic it is named for (min, mean, p50 ... max), and a negative
// latency (clock trouble) counts as 0 in the mean as well as in the
// percentiles.
func TestLatencyReport(t *testing.T) {
	var h histogram
	for i := 1000; i >= 1; i-- { // 1..1000 ms, in reverse
		h.record(time.Duration(i) * time.Millisecond)
	}
	r := h.report()
	near := func(what string, got, want float64) {
		t.Helper()
		if d := got - want; d < -want/100 || d > want/100 {
			t.Errorf("%s = %v ms, want %v ± 1%%", what, got, want)
		}
	}
	if r.Count != 1000 || r.MinMs != 1 || r.MaxMs != 1000 || r.MeanMs != 500.5 {
		t.Errorf("count %d min %v mean %v max %v; want 1000, 1, 500.5, 1000 exactly", r.Count, r.MinMs, r.MeanMs, r.MaxMs)
	}
	near("p50", r.P50Ms, 500)
	near("p90", r.P90Ms, 900)
	near("p99", r.P99Ms, 990)
	near("p99.9", r.P999Ms, 999)

	var neg histogram
	neg.record(-5 * time.Millisecond)
	neg.record(2 * time.Millisecond)
	if r := neg.report(); r.MinMs != 0 || r.MeanMs != 1 || r.MaxMs != 2 {
		t.Errorf("-5 ms and 2 ms: min %v mean %v max %v; want 0, 1, 2 (the negative one counted as 0)", r.MinMs, r.MeanMs, r.MaxMs)
	}
}

// TestPercentilesWithinMinMax: a percentile is never above
// the largest latency recorded nor below the smallest: the bucket's
// midpoint is clamped to [min, max]. With every latency the same (and not
// on a bucket boundary), every percentile is exactly that latency.
func TestPercentilesWithinMinMax(t *testing.T) {
	for _, v := range []time.Duration{1000, 1001, 1003, 7*time.Millisecond + 3, 7*time.Millisecond + 30000} {
		var h histogram
		for range 10 {
			h.record(v)
		}
		for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
			if got := h.quantile(q); got != v {
				t.Errorf("every latency %d ns: quantile(%v) = %d ns, want exactly %d", int64(v), q, int64(got), int64(v))
			}
		}
	}
}

// TestSeqTrackerAdjacentSwap: two adjacent sequence numbers
// delivered the wrong way round are one reordering, and a last event lost
// after a reordering is still lost.
func TestSeqTrackerAdjacentSwap(t *testing.T) {
	var tr seqTracker
	for _, s := range []int{2, 1, 3} {
		tr.observe(s)
	}
	lost, unacked := tr.finish([]bool{false, true, true, true, true})
	if tr.reordered != 1 || tr.received != 3 || lost != 1 || unacked != 0 {
		t.Errorf("2, 1, 3 of 1..4: reordered %d received %d lost %d unacked %d; want 1, 3, 1, 0", tr.reordered, tr.received, lost, unacked)
	}
}
