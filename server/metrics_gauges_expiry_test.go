package server

import (
	"net/http"
	"testing"
	"time"
)

// TestMetricsGaugesComeDownAtTokenExpiry: sockets and streams ended by their
// credentials' expiry bring every open-thing gauge back to 0.
func TestMetricsGaugesComeDownAtTokenExpiry(t *testing.T) {
	r, sign := jwtReplica(t)
	room := r.room("mu-expiry")
	vars := map[string]any{"r": room}
	// Long enough for the set-up below on a loaded machine under -race;
	// the sleep below waits for the expiry itself, not a fixed time.
	const lifetime = 8 * time.Second
	expires := time.Now().Add(lifetime)
	token := sign("alice", lifetime)
	bearer := http.Header{"Authorization": {"Bearer " + token}}

	c := r.dial(subprotocolTransportWS)
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	c.expectType("connection_ack")
	c.subscribe("subscribe", "1", postedSub, vars)
	l := r.dial(subprotocolLegacy)
	l.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	l.expectType("connection_ack")
	l.subscribe("start", "1", postedSub, vars)

	s, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: postedSub, vars: vars, header: bearer})
	if s == nil {
		t.Fatalf("SSE: %d %s", status, body)
	}
	mp, resp, mbody := r.openMultipart(mpRequest{method: http.MethodPost, accept: acceptApollo4, query: postedSub, vars: vars, header: bearer})
	if mp == nil {
		t.Fatalf("multipart: %d %s", resp.StatusCode, mbody)
	}
	waitFor(t, "members", func() bool { return r.members() == 4 })
	metricsTestWait(t, r, "herald_ws_operations", 2)
	time.Sleep(time.Until(expires) + time.Second)
	metricsTestZero(t, r, "the credentials expired")
	_ = s
	_ = mp
}
