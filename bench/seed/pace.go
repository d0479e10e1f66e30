package main

import (
	"fmt"
	"time"
)

// pacer spaces requests of perReq messages each so that messages go out at
// rate per second from start: request k (from 0) is due at
// start + k·perReq/rate. It is open-loop: a request that could not be sent
// on time (every request in flight) is sent as soon as it can, so the
// schedule is caught up with rather than shifted; the shortfall shows in
// the achieved rate and in the late count.
type pacer struct {
	start  time.Time
	perReq int
	rate   float64 // messages per second
	end    time.Time
}

func newPacer(start time.Time, rate float64, perReq int, duration time.Duration) (pacer, error) {
	if rate <= 0 || perReq < 1 || duration <= 0 {
		return pacer{}, fmt.Errorf("rate %v, batch %d and duration %s must be positive", rate, perReq, duration)
	}
	return pacer{start: start, perReq: perReq, rate: rate, end: start.Add(duration)}, nil
}

// due is when request k should be sent.
func (p pacer) due(k int) time.Time {
	return p.start.Add(time.Duration(float64(k) * float64(p.perReq) / p.rate * float64(time.Second)))
}

// requests is how many requests the window holds: those due before its end.
func (p pacer) requests() int {
	window := p.end.Sub(p.start).Seconds()
	n := int(window * p.rate / float64(p.perReq))
	// Requests 0..n-1 are due at k·perReq/rate < window; request n is due
	// at or after the end unless rounding put it just before.
	for p.due(n).Before(p.end) {
		n++
	}
	for n > 0 && !p.due(n-1).Before(p.end) {
		n--
	}
	return n
}

// wait is how long to sleep before request k at now (0 if it is due).
func (p pacer) wait(k int, now time.Time) time.Duration {
	return max(p.due(k).Sub(now), 0)
}
