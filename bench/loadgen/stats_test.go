package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 255, 256, 257, 511, 512, 1000, 123456, 1e9, 1e12, 1 << 62, 1<<63 - 1} {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf not monotonic at %d", v)
		}
		prev = i
		if i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		lo, hi := bucketBounds(i)
		if v < lo || v > hi {
			t.Fatalf("%d not in bucket %d [%d, %d]", v, i, lo, hi)
		}
		if v >= histExact && float64(hi-lo) > float64(lo)/histSub {
			t.Fatalf("bucket %d [%d, %d] wider than 1/%d", i, lo, hi, histSub)
		}
	}
}

func TestQuantiles(t *testing.T) {
	ms := time.Millisecond
	seq := func(n int, unit time.Duration) []time.Duration {
		var out []time.Duration
		for i := 1; i <= n; i++ {
			out = append(out, time.Duration(i)*unit)
		}
		return out
	}
	tests := []struct {
		name          string
		values        []time.Duration
		p50, p90, p99 time.Duration
		max           time.Duration
	}{
		{"one value", []time.Duration{7 * ms}, 7 * ms, 7 * ms, 7 * ms, 7 * ms},
		{"1..100 ms", seq(100, ms), 50 * ms, 90 * ms, 99 * ms, 100 * ms},
		{"1..1000 µs", seq(1000, time.Microsecond), 500 * time.Microsecond, 900 * time.Microsecond, 990 * time.Microsecond, time.Millisecond},
		{"outlier", append(slices.Repeat([]time.Duration{time.Millisecond}, 999), 2*time.Second), ms, ms, ms, 2 * time.Second},
		{"small exact ns", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 5, 9, 10, 10},
		{"negative clamps to 0", []time.Duration{-5, 0, 0, 0}, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			vs := slices.Clone(tt.values)
			rand.Shuffle(len(vs), func(i, j int) { vs[i], vs[j] = vs[j], vs[i] })
			for _, v := range vs {
				h.record(v)
			}
			check := func(what string, got, want time.Duration) {
				t.Helper()
				tol := want / 100 // buckets are < 0.8 % wide
				if d := got - want; d < -tol || d > tol {
					t.Errorf("%s = %v, want %v ± 1%%", what, got, want)
				}
			}
			check("p50", h.quantile(0.5), tt.p50)
			check("p90", h.quantile(0.9), tt.p90)
			check("p99", h.quantile(0.99), tt.p99)
			check("p100", h.quantile(1), tt.max)
			if got := time.Duration(h.max.Load()); got != tt.max {
				t.Errorf("max = %v, want %v exactly", got, tt.max)
			}
			if r := h.report(); r.Count != uint64(len(vs)) {
				t.Errorf("count = %d, want %d", r.Count, len(vs))
			}
		})
	}
	var empty histogram
	if empty.quantile(0.5) != 0 || empty.report() != (LatencyReport{}) {
		t.Error("empty histogram should report zeros")
	}
}

func TestSeqTracker(t *testing.T) {
	tests := []struct {
		name                       string
		seqs                       []int
		acked                      int // seqs 1..acked acknowledged
		unackedSeqs                []int
		received, lost, dup, reord int
		unacked                    int
	}{
		{name: "perfect", seqs: []int{1, 2, 3, 4, 5}, acked: 5, received: 5},
		{name: "empty", seqs: nil, acked: 3, lost: 3},
		{name: "nothing published", seqs: nil, acked: 0},
		{name: "gap", seqs: []int{1, 2, 4, 5}, acked: 5, received: 4, lost: 1},
		{name: "tail lost", seqs: []int{1, 2, 3}, acked: 5, received: 3, lost: 2},
		{name: "duplicate", seqs: []int{1, 2, 2, 3}, acked: 3, received: 3, dup: 1},
		{name: "duplicate after later", seqs: []int{1, 2, 3, 2}, acked: 3, received: 3, dup: 1},
		{name: "swap", seqs: []int{1, 3, 2, 4}, acked: 4, received: 4, reord: 1},
		{name: "late first", seqs: []int{2, 3, 4, 1}, acked: 4, received: 4, reord: 1},
		{name: "reversed", seqs: []int{4, 3, 2, 1}, acked: 4, received: 4, reord: 3},
		{name: "everything", seqs: []int{1, 3, 3, 2, 6}, acked: 6, received: 4, lost: 2, dup: 1, reord: 1},
		{name: "beyond 64 bits", seqs: []int{1, 200, 64, 63, 65, 200}, acked: 200, received: 5, lost: 195, dup: 1, reord: 3},
		{name: "unacked delivered", seqs: []int{1, 2, 3}, acked: 3, unackedSeqs: []int{2}, received: 3, unacked: 1},
		{name: "unacked not delivered is not lost", seqs: []int{1, 3}, acked: 3, unackedSeqs: []int{2}, received: 2},
		{name: "beyond acked range", seqs: []int{1, 2, 3, 4}, acked: 3, received: 4, unacked: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr seqTracker
			for _, s := range tt.seqs {
				tr.observe(s)
			}
			acked := make([]bool, tt.acked+1)
			for s := 1; s <= tt.acked; s++ {
				acked[s] = true
			}
			for _, s := range tt.unackedSeqs {
				acked[s] = false
			}
			lost, unacked := tr.finish(acked)
			if tr.received != tt.received || lost != tt.lost || tr.dup != tt.dup || tr.reordered != tt.reord || unacked != tt.unacked {
				t.Errorf("received %d lost %d dup %d reordered %d unacked %d; want %d %d %d %d %d",
					tr.received, lost, tr.dup, tr.reordered, unacked, tt.received, tt.lost, tt.dup, tt.reord, tt.unacked)
			}
		})
	}
	var tr seqTracker
	if tr.observe(0) != obsInvalid || tr.observe(-3) != obsInvalid || tr.invalid != 2 {
		t.Error("non-positive sequence numbers should be invalid")
	}
}

func TestParseFields(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		a, b int
		c    int64
		ok   bool
	}{
		{`3|17|1700000000123456789"}}`, 3, 3, 17, 1700000000123456789, true},
		{`0|1"`, 2, 0, 1, 0, true},
		{`3|17"`, 3, 0, 0, 0, false},
		{`3|17|5|6"`, 3, 0, 0, 0, false},
		{`3|x|5"`, 3, 0, 0, 0, false},
		{`3||5"`, 3, 0, 0, 0, false},
		{`3|17|5`, 3, 0, 0, 0, false},
		{`1|2|99999999999999999999"`, 3, 0, 0, 0, false},
	}
	for _, tt := range tests {
		a, b, c, ok := parseFields([]byte(tt.in), tt.n)
		if ok != tt.ok || a != tt.a || b != tt.b || c != tt.c {
			t.Errorf("parseFields(%q, %d) = %d %d %d %v; want %d %d %d %v", tt.in, tt.n, a, b, c, ok, tt.a, tt.b, tt.c, tt.ok)
		}
	}
}

func TestParseSources(t *testing.T) {
	ips, err := parseSources("127.0.0.1-127.0.0.8")
	if err != nil || len(ips) != 8 || ips[0].String() != "127.0.0.1" || ips[7].String() != "127.0.0.8" {
		t.Fatalf("range: %v %v", ips, err)
	}
	ips, err = parseSources("127.0.0.2, 127.0.0.3")
	if err != nil || len(ips) != 2 || ips[1].String() != "127.0.0.3" {
		t.Fatalf("list: %v %v", ips, err)
	}
	for _, bad := range []string{"127.0.0.9-127.0.0.1", "nope", "1.2.3.4-x"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if r, err := parseRate("500/s"); err != nil || r != 500 {
		t.Errorf("rate: %v %v", r, err)
	}
}

// TestSeqTrackerCountsImpossibleSequenceNumbers: a sequence number below 1
// or above the tracker's limit (the run's event count; without one,
// seqLimitUnknown) is counted invalid, once, without growing the bitset:
// it comes from the server, and 10^18 would panic making it.
func TestSeqTrackerCountsImpossibleSequenceNumbers(t *testing.T) {
	tests := []struct {
		name     string
		tr       seqTracker
		seqs     []int
		received int
		invalid  int
	}{
		{"no limit, 10^18", seqTracker{}, []int{1, 1_000_000_000_000_000_000}, 1, 1},
		{"no limit, just above seqLimitUnknown", seqTracker{}, []int{1, seqLimitUnknown + 1}, 1, 1},
		{"no limit, seqLimitUnknown itself", seqTracker{}, []int{1, seqLimitUnknown}, 2, 0},
		{"limit 4, 5 and 4", newSeqTracker(4), []int{1, 5, 4}, 2, 1},
		{"limit 4, 0 and -1", newSeqTracker(4), []int{0, -1, 2}, 1, 2},
		{"limit 4, 2^62", newSeqTracker(4), []int{1 << 62, 1}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := tt.tr
			for _, s := range tt.seqs {
				tr.observe(s)
			}
			limit := tr.limit
			if limit <= 0 {
				limit = seqLimitUnknown
			}
			if tr.received != tt.received || tr.invalid != tt.invalid || tr.dup != 0 || len(tr.seen) > limit/64+1 {
				t.Errorf("received %d invalid %d dup %d, bitset %d words; want %d, %d, 0, at most %d",
					tr.received, tr.invalid, tr.dup, len(tr.seen), tt.received, tt.invalid, limit/64+1)
			}
			acked := make([]bool, tr.maxSeq+1)
			for s := 1; s < len(acked); s++ {
				acked[s] = tr.has(s)
			}
			if lost, unacked := tr.finish(acked); lost != 0 || unacked != 0 {
				t.Errorf("finish: lost %d unacked %d, want 0, 0 (every valid one acknowledged)", lost, unacked)
			}
		})
	}
}
