package main

import (
	"strings"
	"testing"
)

// A result is the server's word, not the load generator's: one whose text
// only looks like one of its events must fail the run, never pass it as
// clean nor crash the load generator (results are read on its
// connections' reader goroutines, where a panic kills the process before
// any report is written).

// TestImpossibleEventsFailTheRun: a server that delivers, besides every
// event, one result marked "lg|" that is no event of the run fails it:
// text that does not parse is foreign; a sequence number above the run's
// 10 events (one far above would allocate gigabytes, or panic, if it were
// tracked) is misrouted.
func TestImpossibleEventsFailTheRun(t *testing.T) {
	tests := []struct {
		name, text, failure string
		foreign, misrouted  int64
	}{
		{"sequence not a number", "lg|0|not-a-sequence|1", "delivery: 1 results that are no event or probe", 1, 0},
		{"a field missing", "lg|0|1", "delivery: 1 results that are no event or probe", 1, 0},
		{"sequence above the events published", "lg|0|11|1", "delivery: 0 lost, 0 duplicated, 0 reordered, 1 misrouted", 0, 1},
		{"sequence of 18 digits", "lg|0|999999999999999999|1", "delivery: 0 lost, 0 duplicated, 0 reordered, 1 misrouted", 0, 1},
		{"probe round not a number", "probe|0|x", "delivery: 1 results that are no event or probe", 1, 0},
		{"probe with a third field", "probe|0|1|1", "delivery: 1 results that are no event or probe", 1, 0},
		{"probe of another room", "probe|1|1", "delivery: 0 lost, 0 duplicated, 0 reordered, 1 misrouted", 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runAgainstFake(t, &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
				toAll(subs, text)
				if seq == 1 && strings.HasPrefix(text, "lg|0|") { // after room 0's first event, to a subscription of room 0
					subs[0].send(tt.text)
				}
			}}, nil)
			wantFailure(t, rep, tt.failure)
			if d := rep.Delivery; d.Foreign != tt.foreign || d.Misrouted != tt.misrouted || d.Lost != 0 || d.Received != d.Expected {
				t.Errorf("foreign %d, misrouted %d, lost %d, received %d of %d; want foreign %d, misrouted %d and every event received once",
					d.Foreign, d.Misrouted, d.Lost, d.Received, d.Expected, tt.foreign, tt.misrouted)
			}
		})
	}
}
