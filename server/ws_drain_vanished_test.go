package server

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestVanishedClientOfLeavingSocketNotCountedAsClosed: a socket is told to
// go away while a mutation runs on it, so its 1001 close waits for the
// answer. Its client then vanishes (the TCP connection ends without a close
// frame). The socket is torn down and sends no close frame: the mutation's
// end (endSingle) still chooses the 1001 close, but it must not count in
// herald_ws_closes_total ("sockets closed by the server, by close code"),
// as no such close was sent.
func TestVanishedClientOfLeavingSocketNotCountedAsClosed(t *testing.T) {
	schema := newGatedSchema(t, 2)
	r := serveSchema(t, schema)
	s := r.server
	closes := s.ws.metrics.closeCounter(closeGoingAway)
	before := testutil.ToFloat64(closes)

	c := r.dialTransport("u")
	c.subscribe("subscribe", "m", "mutation gate { bump }", nil)
	receive(t, schema.entered, 5*time.Second, "the mutation to run")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(ctx, 0) }()
	waitFor(t, "the socket to be told to go away", func() bool { return leavingSockets(s) == 1 })

	_ = c.conn.NetConn().Close() // the client vanishes: no close frame
	select {
	case err := <-drained:
		if err != nil {
			t.Fatalf("Drain = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain did not return within 10s of the client's disconnect")
	}
	if got := testutil.ToFloat64(closes) - before; got != 0 {
		t.Errorf("herald_ws_closes_total{code=%q} rose by %v for a socket whose client vanished and to which no close frame was sent, want 0",
			strconv.Itoa(closeGoingAway), got)
	}
}
