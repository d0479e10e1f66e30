package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInterruptedRunFails: a run whose context ends before it
// is done (Ctrl-C, or a caller's deadline) has not measured what it was
// asked to and fails, even when what it saw so far was clean.
func TestInterruptedRunFails(t *testing.T) {
	f := &fakeServer{}
	url := f.start(t)
	started := filepath.Join(t.TempDir(), "started")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onStarted(started, cancel) // 200 ms into a 20 s idle period
	t0 := time.Now()
	rep, err := Run(ctx, Config{URL: url, Protocol: "transport", Connections: 2, Rooms: 1, Inflight: 1, RequireZeroLoss: true,
		SetupTimeout: 10 * time.Second, Idle: 20 * time.Second, StartedFile: started})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(t0) > 15*time.Second {
		t.Fatalf("the run was not interrupted (took %v)", time.Since(t0))
	}
	if rep.Pass || !hasFailure(rep, "interrupted") {
		t.Errorf("interrupted 200 ms into a 20 s idle period: pass %v, failures %q; want a failure \"interrupted: ...\"", rep.Pass, rep.Failures)
	}
}

// TestStreamEndedByTheServerIsDropped: an HTTP stream the
// server ends (its response just stops) counts as a connection the server
// ended, which fails the run; one the load generator closed does not.
func TestStreamEndedByTheServerIsDropped(t *testing.T) {
	for _, closing := range []bool{false, true} {
		r, c := newTestRun(transportSSE)
		a, b := net.Pipe()
		defer b.Close()
		c.stream = a
		c.closing.Store(closing)
		r.readStream(c, strings.NewReader(sseNext), "")
		want := int64(1)
		if closing {
			want = 0
		}
		if got := r.dropped.Load(); got != want {
			t.Errorf("closing %v: dropped %d, want %d", closing, got, want)
		}
	}
}

// TestProbeOfAnotherRoomIsNotLiveness: a probe of another
// room, delivered to a subscription (a server routing wrongly), does not
// make that subscription live.
func TestProbeOfAnotherRoomIsNotLiveness(t *testing.T) {
	r, c := newTestRun(transportWS)
	s := c.subs[0]
	r.result(c, s, nextFrame("probe|1|1"), time.Now())
	if s.probe.Load() {
		t.Errorf("a probe of room 1 made a subscription to room 0 live")
	}
	r.result(c, s, nextFrame("probe|0|1"), time.Now())
	if !s.probe.Load() {
		t.Errorf("control: a probe of its own room should make it live")
	}
}

// TestSelfCPUPer1000: the load generator's own CPU per 1,000
// deliveries is its CPU while publishing over the deliveries, × 1,000.
func TestSelfCPUPer1000(t *testing.T) {
	r := defaultedRun(t, Config{Connections: 1, Events: 1})
	rep := r.newReport()
	rep.Delivery = &DeliveryReport{Expected: 4000, Received: 4000, DrainComplete: true}
	rep.Publish = &PublishReport{Sent: 1, Acked: 1}
	rep.Self.CPUSecPublish = 2
	r.finishReport(context.Background(), rep, serverSamples{}, time.Now(), selfCPU())
	if got := rep.Self.CPUSecPer1000Delivered; got != 0.5 {
		t.Errorf("self CPU per 1000 deliveries %v, want 0.5 (2 s over 4,000)", got)
	}
}
