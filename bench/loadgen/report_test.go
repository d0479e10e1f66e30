package main

import (
	"slices"
	"testing"
	"time"
)

// TestTallyDeliveries adds up what each subscription saw against what
// was acknowledged, lists only the subscriptions with an anomaly, and
// fails a zero-loss run on them, on foreign results and on a failed
// publish.
func TestTallyDeliveries(t *testing.T) {
	observed := func(room, misrouted int, seqs ...int) *sub {
		s := &sub{room: room, misrouted: misrouted}
		for _, seq := range seqs {
			s.tr.observe(seq)
		}
		return s
	}
	r := &run{
		rooms: []*roomState{
			{acked: []bool{false, true, true, true}}, // 1, 2, 3 acknowledged
			{acked: []bool{false, true, false}},      // 2's publish failed
		},
		conns: []*conn{
			{idx: 0, proto: protoTransport, subs: []*sub{
				observed(0, 0, 1, 2, 3), // everything, in order
				observed(1, 0, 1, 2),    // 2 was stored though its publish failed
			}},
			nil, // a connection that failed
			{idx: 2, proto: protoLegacy, subs: []*sub{
				observed(0, 1, 1, 3, 3, 2), // 3 twice, 2 after 3, and one of another room
				observed(0, 0, 1, 0),       // 2 and 3 lost, and a sequence number 0
			}},
		},
	}
	r.foreign.Store(7)
	rep := &Report{Delivery: &DeliveryReport{}, Publish: &PublishReport{Sent: 6, Failed: 1}}
	r.tallyDeliveries(rep)

	want := DeliveryReport{Lost: 2, Duplicated: 1, Reordered: 1, Misrouted: 2, Unacked: 1, Foreign: 7}
	if *rep.Delivery != want {
		t.Errorf("delivery: %+v, want %+v", *rep.Delivery, want)
	}
	wantSubs := []SubscriberReport{
		{Conn: 0, Sub: 1, Protocol: protoTransport, Room: 1, Received: 2, Unacked: 1},
		{Conn: 2, Sub: 0, Protocol: protoLegacy, Room: 0, Received: 3, Duplicated: 1, Reordered: 1, Misrouted: 1},
		{Conn: 2, Sub: 1, Protocol: protoLegacy, Room: 0, Received: 1, Lost: 2},
	}
	if !slices.Equal(rep.Subscribers, wantSubs) {
		t.Errorf("subscribers:\n%+v\nwant\n%+v", rep.Subscribers, wantSubs)
	}

	rep.requireZeroLoss()
	wantFailures := []string{"delivery: 2 lost, 1 duplicated, 1 reordered, 2 misrouted",
		"delivery: 7 results that are no event or probe of the load generator (foreign)", "publish: 1 of 6 failed"}
	if !slices.Equal(rep.Failures, wantFailures) {
		t.Errorf("failures: %q, want %q", rep.Failures, wantFailures)
	}
}

// TestServerReport derives the server's costs from its samples between
// the phases, and leaves out what a failed sample cannot tell.
func TestServerReport(t *testing.T) {
	if sr := serverReport(0, serverSamples{}, 4, nil); sr != nil {
		t.Errorf("no server PID: %+v, want none", sr)
	}
	at := func(rssKB int64, cpu time.Duration) procSample { return procSample{ok: true, rssKB: rssKB, cpu: cpu} }
	s := serverSamples{
		before:       at(1000, 1*time.Second),
		afterConnect: at(3000, 2*time.Second),
		publishStart: at(3000, 2*time.Second),
		publishEnd:   at(3500, 5*time.Second),
		afterRun:     at(3200, 6*time.Second),
	}
	got := serverReport(42, s, 4, &DeliveryReport{Received: 1500})
	want := ServerReport{PID: 42, RSSBeforeKB: 1000, RSSAfterConnectKB: 3000, RSSAfterRunKB: 3200,
		RSSPerConnKB: 500, PublishCPUSec: 3, CPUSecPer1000Delivered: 2, CPUSecTotalRun: 5}
	if got == nil || *got != want {
		t.Errorf("server report: %+v, want %+v", got, want)
	}

	s.publishEnd = procSample{} // the server could not be read after the drain
	got = serverReport(42, s, 4, &DeliveryReport{Received: 1500})
	want.PublishCPUSec, want.CPUSecPer1000Delivered = 0, 0
	if got == nil || *got != want {
		t.Errorf("without the sample after the drain: %+v, want %+v", got, want)
	}
}
