package main

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Latency histogram: log-linear buckets (HDR style). Values below 256 ns
// are exact; above, each power of two is split into 128 buckets, so any
// reported percentile is within 1/128 (< 0.8 %) of the true value. The
// counters are atomic so every reader goroutine records into one shared
// histogram without locks.
const (
	histExact   = 256 // values [0, 256) have a bucket each
	histSubBits = 7   // 128 sub-buckets per power of two above that
	histSub     = 1 << histSubBits
	histBuckets = histExact + (64-8)*histSub
)

type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; overflows only after ~584 years of latency
	max    atomic.Int64
	min    atomic.Int64 // valid when n > 0; stored as value+1 so 0 means unset
}

func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v < histExact {
		return int(v)
	}
	k := bits.Len64(uint64(v)) - 1 // v in [2^k, 2^(k+1)), k >= 8
	shift := k - histSubBits
	return histExact + (k-8)*histSub + int(uint64(v)>>shift) - histSub
}

// bucketBounds returns the smallest and largest value of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < histExact {
		return int64(i), int64(i)
	}
	j := i - histExact
	k := j/histSub + 8
	shift := k - histSubBits
	lo = int64(histSub+j%histSub) << shift
	return lo, lo + int64(1)<<shift - 1
}

// record adds one latency (negative values, i.e. clock trouble, count as 0).
func (h *histogram) record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(uint64(v))
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if (m != 0 && v+1 >= m) || h.min.CompareAndSwap(m, v+1) {
			break
		}
	}
}

// quantile returns the value at quantile q (0..1): the midpoint of the
// bucket holding the ceil(q*n)-th smallest value, clamped to [min, max].
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo, hi := bucketBounds(i)
			v := lo + (hi-lo)/2
			if mx := h.max.Load(); v > mx {
				v = mx
			}
			if mn := h.min.Load() - 1; v < mn {
				v = mn
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max.Load())
}

// LatencyReport is the latency section of the report, in milliseconds.
type LatencyReport struct {
	Count  uint64  `json:"count"`
	MinMs  float64 `json:"min_ms"`
	MeanMs float64 `json:"mean_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (h *histogram) report() LatencyReport {
	n := h.n.Load()
	if n == 0 {
		return LatencyReport{}
	}
	return LatencyReport{
		Count:  n,
		MinMs:  ms(time.Duration(h.min.Load() - 1)),
		MeanMs: ms(time.Duration(h.sum.Load() / n)),
		P50Ms:  ms(h.quantile(0.50)),
		P90Ms:  ms(h.quantile(0.90)),
		P99Ms:  ms(h.quantile(0.99)),
		P999Ms: ms(h.quantile(0.999)),
		MaxMs:  ms(time.Duration(h.max.Load())),
	}
}

// seqTracker follows one subscription's per-room sequence numbers (1, 2,
// 3, ... in publish order). It is used by one goroutine at a time.
//
//   - duplicate: a sequence number seen before;
//   - reordered: a new sequence number lower than the highest seen so far
//     (it arrived after a later one);
//   - lost (at the end): a sequence number the publisher had acknowledged
//     but that never arrived;
//   - invalid: a sequence number below 1 or above limit, which no publish
//     of the run can have made (a corrupted text, or someone else posting
//     into the room). It is counted without growing the bitset: the
//     sequence number comes from the server, and one in the billions would
//     otherwise allocate gigabytes, or panic on the reader goroutine.
type seqTracker struct {
	seen      []uint64 // bitset, bit s = seq s received
	maxSeq    int
	limit     int // highest valid seq: the run's event count; 0: seqLimitUnknown
	received  int // distinct sequence numbers received
	dup       int
	reordered int
	invalid   int // seq < 1 or > limit
}

// seqLimitUnknown bounds a tracker told no limit (128 KiB of bitset).
const seqLimitUnknown = 1 << 20

// newSeqTracker tracks the sequence numbers of a run that publishes events
// events, the most any one room can get.
func newSeqTracker(events int) seqTracker { return seqTracker{limit: events} }

type observation uint8

const (
	obsNew observation = iota
	obsDuplicate
	obsReordered
	obsInvalid
)

func (t *seqTracker) observe(seq int) observation {
	limit := t.limit
	if limit <= 0 {
		limit = seqLimitUnknown
	}
	if seq < 1 || seq > limit {
		t.invalid++
		return obsInvalid
	}
	w, b := seq/64, uint(seq%64)
	if w >= len(t.seen) {
		grown := make([]uint64, max(w+1, 2*len(t.seen)))
		copy(grown, t.seen)
		t.seen = grown
	}
	if t.seen[w]&(1<<b) != 0 {
		t.dup++
		return obsDuplicate
	}
	t.seen[w] |= 1 << b
	t.received++
	if seq < t.maxSeq {
		t.reordered++
		return obsReordered
	}
	t.maxSeq = seq
	return obsNew
}

func (t *seqTracker) has(seq int) bool {
	w, b := seq/64, uint(seq%64)
	return seq >= 1 && w < len(t.seen) && t.seen[w]&(1<<b) != 0
}

// finish compares what arrived with what the publisher acknowledged
// (acked[s] for seq s; index 0 unused) and returns how many acknowledged
// events were lost and how many received ones were never acknowledged
// (e.g. a publish that timed out but was stored). It loops up to the
// highest sequence number observed, which observe bounds by limit.
func (t *seqTracker) finish(acked []bool) (lost, unacked int) {
	for s := 1; s < len(acked); s++ {
		if acked[s] && !t.has(s) {
			lost++
		}
	}
	for s := 1; s <= t.maxSeq; s++ {
		if t.has(s) && (s >= len(acked) || !acked[s]) {
			unacked++
		}
	}
	return lost, unacked
}
