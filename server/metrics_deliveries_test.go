package server

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricsTestScrape reads /metrics of r and returns its samples by their
// full name (with labels, as exposed).
func metricsTestScrape(t *testing.T, r *replica) map[string]float64 {
	t.Helper()
	status, body := r.get("/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

// metricsTestWait waits until the sample name reads want.
func metricsTestWait(t *testing.T, r *replica, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := metricsTestScrape(t, r)[name]
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v), want %v", name, got, ok, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestQueryAnswersAreNotDeliveries: herald_deliveries_total is
// "Subscription results written to sockets and event streams" (its HELP)
// and a query answered on an SSE stream is not counted in it; the same
// query answered over a WebSocket must not be counted either.
func TestQueryAnswersAreNotDeliveries(t *testing.T) {
	r := newReplica(t, nil)
	const q = `{ __typename }`

	// Over SSE (distinct connections mode): a query's result on an event stream.
	c, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: q})
	if c == nil {
		t.Fatalf("SSE query: %d %s", status, body)
	}
	if ev := c.next(); ev.event != "next" {
		t.Fatalf("SSE: got %+v, want next", ev)
	}
	if ev := c.next(); ev.event != "complete" {
		t.Fatalf("SSE: got %+v, want complete", ev)
	}
	c.expectEnd(5 * time.Second)
	metricsTestWait(t, r, `herald_http_streams{transport="sse"}`, 0)
	afterSSE := metricsTestScrape(t, r)["herald_deliveries_total"]
	if afterSSE != 0 {
		t.Fatalf("herald_deliveries_total = %v after a query over SSE, want 0", afterSSE)
	}

	// Over graphql-transport-ws and legacy graphql-ws.
	ws := r.dialTransport("alice")
	for i := range 3 {
		id := fmt.Sprint("q", i)
		ws.subscribe("subscribe", id, q, nil)
		if f := ws.next(); f.Type != "next" || f.ID != id {
			t.Fatalf("got %s, want next for %s", f.raw, id)
		}
		if f := ws.next(); f.Type != "complete" || f.ID != id {
			t.Fatalf("got %s, want complete for %s", f.raw, id)
		}
	}
	legacy := r.dialLegacy("bob")
	legacy.subscribe("start", "l1", q, nil)
	if f := legacy.next(); f.Type != "data" {
		t.Fatalf("got %s, want data", f.raw)
	}
	if f := legacy.next(); f.Type != "complete" {
		t.Fatalf("got %s, want complete", f.raw)
	}
	m := metricsTestScrape(t, r)
	if got := m["herald_deliveries_total"]; got != 0 {
		t.Errorf("herald_deliveries_total = %v after 4 queries answered over WebSockets (0 over SSE); "+
			"HELP says it counts subscription results, so want 0", got)
	}
	if got := m["herald_ws_operations"]; got != 0 {
		t.Errorf("herald_ws_operations = %v once every query has completed, want 0", got)
	}

	// A subscription's event on the same socket is a delivery.
	room := r.room("general")
	ws.subscribe("subscribe", "s", `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
	waitFor(t, "subscription", func() bool { return r.members() == 1 })
	r.post(room, "bob", "hi")
	if f := ws.next(); f.Type != "next" || f.ID != "s" {
		t.Fatalf("got %s, want next for s", f.raw)
	}
	metricsTestWait(t, r, "herald_deliveries_total", 1)
	metricsTestWait(t, r, "herald_delivery_latency_seconds_count", 1)
}
