package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// metricsTestZero waits until every open-thing gauge reads 0.
func metricsTestZero(t *testing.T, r *replica, what string) {
	t.Helper()
	names := []string{
		`herald_ws_sockets{protocol="graphql-transport-ws"}`,
		`herald_ws_sockets{protocol="graphql-ws"}`,
		`herald_http_streams{transport="sse"}`,
		`herald_http_streams{transport="sse_single"}`,
		`herald_http_streams{transport="multipart"}`,
		`herald_ws_operations`,
		`herald_shared_executions`,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := metricsTestScrape(t, r)
		bad := ""
		for _, n := range names {
			if v, ok := m[n]; !ok || v != 0 {
				bad += fmt.Sprintf(" %s=%v(present %v)", n, v, ok)
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s:%s", what, bad)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsGaugesComeDown drives sockets, streams and operations
// through the ways they end and checks the gauges come back to 0.
func TestMetricsGaugesComeDown(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxOperations = 2 })
	room := r.room("gauges")
	vars := map[string]any{"r": room}

	t.Run("ws limit refusal and legacy id reuse", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dialTransport("ann")
		c.subscribe("subscribe", "a", postedSub, vars)
		c.subscribe("subscribe", "b", postedSub, vars)
		c.subscribe("subscribe", "c", postedSub, vars) // over MaxOperations
		if f := c.next(); f.Type != "error" || f.ID != "c" {
			t.Fatalf("got %s, want error for c", f.raw)
		}
		c.subscribe("subscribe", "bad", `subscription { nope }`, nil) // validation
		c.next()
		l := r.dialLegacy("bob")
		l.subscribe("start", "x", postedSub, vars)
		l.subscribe("start", "x", postedSub, vars) // replaces x
		waitFor(t, "members", func() bool { return r.members() == 3 })
		metricsTestWait(t, r, "herald_ws_operations", 3)
		_ = c.conn.Close()
		_ = l.conn.Close()
		metricsTestZero(t, r, "closing both sockets")
	})

	t.Run("disconnect user", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dialTransport("carl")
		c.subscribe("subscribe", "a", postedSub, vars)
		s, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: vars,
			header: http.Header{"X-Herald-User": {"carl"}}})
		if s == nil {
			t.Fatalf("SSE: %d %s", status, body)
		}
		token := r.reserve("carl")
		single := r.openSingle(token, "carl")
		r.mustOperate(token, "carl", "op1", postedSub, vars)
		waitFor(t, "members", func() bool { return r.members() == 3 })
		if n := r.server.DisconnectUser("carl"); n != 3 {
			t.Fatalf("DisconnectUser = %d, want 3", n)
		}
		c.expectClose(4403, 5*time.Second)
		s.next()
		single.next()
		metricsTestZero(t, r, "DisconnectUser")
	})

	t.Run("clients go away", func(t *testing.T) {
		r := r.forTest(t)
		s, status, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: vars})
		if s == nil {
			t.Fatalf("SSE: %d %s", status, body)
		}
		token := r.reserve("")
		single := r.openSingle(token, "")
		r.mustOperate(token, "", "op1", postedSub, vars)
		r.mustOperate(token, "", "op2", `{ __typename }`, nil)
		mp, resp, mbody := r.openMultipart(mpRequest{method: http.MethodPost, accept: acceptApollo4, query: postedSub, vars: vars})
		if mp == nil {
			t.Fatalf("multipart: %d %s", resp.StatusCode, mbody)
		}
		waitFor(t, "members", func() bool { return r.members() == 3 })
		r.post(room, "z", "hello")
		s.next()
		_ = s.resp.Body.Close()
		_ = single.resp.Body.Close()
		_ = mp.resp.Body.Close()
		metricsTestZero(t, r, "the HTTP clients went away")
	})
}

// TestMetricsGaugesAfterDrain: a drain ends every socket and stream;
// the gauges come back to 0, and a socket refused during the drain is
// never counted.
func TestMetricsGaugesAfterDrain(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("drain")
	vars := map[string]any{"r": room}
	c := r.dialTransport("ann")
	c.subscribe("subscribe", "a", postedSub, vars)
	l := r.dialLegacy("bob")
	l.subscribe("start", "a", postedSub, vars)
	s, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: vars})
	if s == nil {
		t.Fatalf("SSE: %d %s", status, body)
	}
	token := r.reserve("")
	single := r.openSingle(token, "")
	r.mustOperate(token, "", "op1", postedSub, vars)
	_ = r.reserve("") // reserved, never opened
	mp, resp, mbody := r.openMultipart(mpRequest{method: http.MethodPost, accept: acceptApollo4, query: postedSub, vars: vars})
	if mp == nil {
		t.Fatalf("multipart: %d %s", resp.StatusCode, mbody)
	}
	waitFor(t, "members", func() bool { return r.members() == 5 })
	r.server.StartDrain()
	if _, status, _ := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: vars}); status != http.StatusServiceUnavailable {
		t.Errorf("SSE during drain: %d, want 503", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.server.Drain(ctx, 200*time.Millisecond); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	_ = single
	metricsTestZero(t, r, "the drain")
	m := metricsTestScrape(t, r)
	if got := m[`herald_ws_closes_total{code="1001"}`]; got != 2 {
		t.Errorf(`herald_ws_closes_total{code="1001"} = %v after draining 2 sockets, want 2`, got)
	}
}

// TestMetricsGaugesComeDownWithSocketsOpen: operations that end one by one
// on a socket that stays open bring herald_ws_operations and
// herald_shared_executions back to 0 each time, on both subprotocols; a
// count leaked by an operation's own ending would otherwise be hidden by
// the socket's teardown. Refused subscriptions end on SSE and multipart
// with their clients still reading.
func TestMetricsGaugesComeDownWithSocketsOpen(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("gauges-open")
	// idle fails at its caller's line, which names the step.
	idle := func(t *testing.T, _ string) {
		t.Helper()
		metricsTestWait(t, r, "herald_ws_operations", 0)
		metricsTestWait(t, r, "herald_shared_executions", 0)
	}
	for _, p := range []struct {
		name, start, stop, next string
		dial                    func(string) *wsClient
	}{
		{"graphql-transport-ws", "subscribe", "complete", "next", r.dialTransport},
		{"graphql-ws", "start", "stop", "data", r.dialLegacy},
	} {
		t.Run(p.name, func(t *testing.T) {
			c := p.dial("ann")
			for _, refused := range []struct {
				what string
				vars map[string]any
			}{
				{"a subscription to a room that does not exist", map[string]any{"r": "nosuchroom"}},
				{"a subscription with a bad cursor", map[string]any{"r": room, "after": "bogus"}},
			} {
				c.subscribe(p.start, "refused", postedSub, refused.vars)
				if f := c.next(); f.Type == p.next {
					c.next() // complete
				}
				idle(t, refused.what)
			}

			c.subscribe(p.start, "live", postedSub, map[string]any{"r": room})
			waitFor(t, "the subscriber to join", func() bool { return r.members() == 1 })
			r.post(room, "bob", "one")
			cursor := wspCursor(t, c.next())
			c.send(map[string]any{"id": "live", "type": p.stop})
			idle(t, "a live subscription the client completed")

			c.subscribe(p.start, "resumed", postedSub, map[string]any{"r": room, "after": cursor})
			r.post(room, "bob", "two")
			if f := c.next(); f.Type != p.next {
				t.Fatalf("resumed subscription: %s", f.raw)
			}
			c.send(map[string]any{"id": "resumed", "type": p.stop})
			idle(t, "a resumed subscription the client completed")

			c.subscribe(p.start, "query", `{ __typename }`, nil)
			c.next()
			c.next()
			idle(t, "a query")
			c.conn.Close()
		})
	}
	t.Run("streams", func(t *testing.T) {
		bad := map[string]any{"r": "nosuchroom"}
		s, status, body := r.openSSE(sseRequest{method: "POST", query: postedSub, vars: bad})
		if s == nil {
			t.Fatalf("SSE: %d %s", status, body)
		}
		s.next()
		mp, resp, mbody := r.openMultipart(mpRequest{method: "POST", accept: acceptApollo4, query: postedSub, vars: bad})
		if mp == nil {
			t.Fatalf("multipart: %d %s", resp.StatusCode, mbody)
		}
		metricsTestZero(t, r, "subscriptions refused on SSE and multipart, their clients still reading")
	})
}
