package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsExposedFromStart: /metrics parses with Prometheus's own text
// parser, and every outcome of herald_sse_relayed_requests_total and every
// close code of herald_ws_closes_total README lists is there at 0 before
// the first relayed request or close. A counter series that appears only
// at its first increment is never seen to increase by rate() or
// increase(), so the first relay error or slow consumer after each start
// of a replica would page nobody.
func TestMetricsExposedFromStart(t *testing.T) {
	r := newReplica(t, nil)
	status, body := r.get("/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	if _, err := parser.TextToMetricFamilies(strings.NewReader(body)); err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	m := metricsTestScrape(t, r)
	for _, outcome := range []string{"ok", "no_holder", "canceled", "too_large", "error"} {
		name := `herald_sse_relayed_requests_total{outcome="` + outcome + `"}`
		if v, ok := m[name]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v) before any relayed request; want 0", name, v, ok)
		}
	}
	for _, code := range []string{"1000", "1001", "1002", "1007", "1009", "1011", "1013",
		"4400", "4401", "4403", "4408", "4409", "4429", "4500"} {
		name := `herald_ws_closes_total{code="` + code + `"}`
		if v, ok := m[name]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v) before any socket closed; want 0", name, v, ok)
		}
	}
}

// TestDeliveryLatencyLeavesReplaysOut: herald_delivery_latency_seconds is
// how late live events reach their subscribers. A client resuming from a
// cursor is sent events stored long ago; observing each at its age in the
// log would fill the histogram's top buckets on every reconnect after an
// outage, while every live event went out at once. The replayed events
// still count as deliveries; the live ones after them are observed.
func TestDeliveryLatencyLeavesReplaysOut(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("replay-latency")
	c := r.dialTransport("ann")
	c.subscribe("subscribe", "s", postedSub, map[string]any{"r": room})
	waitFor(t, "member", func() bool { return r.members() == 1 })
	r.post(room, "bob", "one")
	cursor := wspCursor(t, c.next())
	c.send(map[string]any{"id": "s", "type": "complete"})
	metricsTestWait(t, r, "herald_ws_operations", 0)
	const missed = 3
	for i := range missed {
		r.post(room, "bob", "missed "+string(rune('a'+i)))
	}
	// The missed events age in the log past the histogram's 1 s bucket
	// while the client is away (an outage, a laptop lid).
	time.Sleep(1500 * time.Millisecond)

	before := metricsTestScrape(t, r)
	d := r.dialTransport("ann")
	d.subscribe("subscribe", "r", postedSub, map[string]any{"r": room, "after": cursor})
	for range missed {
		if f := d.next(); f.Type != "next" {
			t.Fatalf("replay: %s", f.raw)
		}
	}
	// The first live event ends the replay (its handoff to the shared
	// execution), and may be written by either; the next by the shared,
	// unless the replay also read it from the log before its subscriber
	// joined the shared execution (a loaded machine): live events are
	// posted until one is observed, 2 to 6 of them. A live event can take
	// over 1 s on a loaded machine: the client sees that too, and it may
	// be observed as slow.
	observed := func() float64 {
		return metricsTestScrape(t, r)["herald_delivery_latency_seconds_count"] - before["herald_delivery_latency_seconds_count"]
	}
	slowLive, live := 0, 0
	for ; live < 2 || live < 6 && observed() == 0; live++ {
		text := "live " + string(rune('a'+live))
		sent := time.Now()
		r.post(room, "bob", text)
		if f := d.next(); f.Type != "next" || !strings.Contains(string(f.Payload), text) {
			t.Fatalf("live event %q: %s", text, f.raw)
		}
		if time.Since(sent) > time.Second {
			slowLive++
		}
	}
	metricsTestWait(t, r, "herald_deliveries_total", before["herald_deliveries_total"]+float64(missed+live))
	after := metricsTestScrape(t, r)
	delta := func(name string) float64 { return after[name] - before[name] }
	if n := delta("herald_delivery_latency_seconds_count"); n < 1 || n > float64(live) {
		t.Errorf("herald_delivery_latency_seconds observed %v deliveries for %d replayed and %d live; want the live ones only", n, missed, live)
	}
	if slow := delta(`herald_delivery_latency_seconds_bucket{le="+Inf"}`) - delta(`herald_delivery_latency_seconds_bucket{le="1"}`); slow > float64(slowLive) {
		t.Errorf("%v deliveries observed slower than 1 s (sum %.2f s), %d live ones seen that slow: replayed events measured at their age in the log",
			slow, delta("herald_delivery_latency_seconds_sum"), slowLive)
	}
}
