package main

import (
	"fmt"
	"strings"
)

// S4's latency split (issue 14's p99 target): what of the
// publish-to-delivery time the publish itself takes, on Herald and on the
// baseline, from the load generator's timing of each post's HTTP request.

// publishP50 and publishP99 are a run's post round trips; -1 if it made
// none.
func (r *result) publishP50() float64 {
	if r.Publish == nil {
		return -1
	}
	return r.Publish.HTTP.P50
}

func (r *result) publishP99() float64 {
	if r.Publish == nil {
		return -1
	}
	return r.Publish.HTTP.P99
}

// offered is the deliveries per second a one-room run's posts asked for:
// the posts taken per second times the subscribers; -1 if unknown.
func (r *result) offered() float64 {
	if r.Publish == nil || r.Publish.RatePerSec <= 0 || r.Setup.Established <= 0 {
		return -1
	}
	return r.Publish.RatePerSec * float64(r.Setup.Established)
}

// backlogNote says, under S1's table, what its latency columns measure:
// with one room and one post in flight, a server takes the next post as
// soon as it has taken the last, and a server that takes posts faster
// than the load generator (on the same two cores) reads their
// deliveries leaves the difference waiting in the sockets' buffers.
func backlogNote(w func(string, ...any), id string, results map[string]*result) {
	if id != "S1" {
		return
	}
	var parts []string
	for _, srv := range serversOf(id) {
		r := results[id+"-"+srv]
		if r == nil || r.offered() <= 0 || r.deliveries() <= 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.0f posts/s, %.0f deliveries/s offered, %.0f read, p50 %.0f ms",
			label(srv), r.Publish.RatePerSec, r.offered(), r.deliveries(), r.p50()))
	}
	if len(parts) == 0 {
		return
	}
	w("S1's latency columns measure the load generator's backlog as much as the server: with one post in\n")
	w("flight, a server takes the next post once it has taken the last, and what it takes faster than the\n")
	w("load generator, on the same two cores, reads waits in the sockets' buffers. In the median runs:\n")
	w("%s.\n\n", strings.Join(parts, "; "))
}

// latencyNote says, under S4's table, how much of each server's
// publish-to-delivery p99 its publish alone took.
func latencyNote(w func(string, ...any), id string, results map[string]*result) {
	if id != "S4" {
		return
	}
	h, bl := results["S4-herald"], results["S4-baseline"]
	if h == nil || bl == nil || h.publishP99() < 0 || bl.publishP99() < 0 {
		return
	}
	w("Where the time goes, in the median-p99 runs: the post's own HTTP round trip (Herald: the mutation,\n")
	w("which appends the event to the durable log and waits for it to be applied; the baseline: handing\n")
	w("it to the broadcaster) took p50 %.1f and p99 %.1f ms on Herald against %.1f and %.1f ms on the baseline;\n",
		h.publishP50(), h.publishP99(), bl.publishP50(), bl.publishP99())
	w("publish to delivery, p50 %.1f and p99 %.1f ms against %.1f and %.1f ms.\n\n", h.p50(), h.p99(), bl.p50(), bl.p99())
}
