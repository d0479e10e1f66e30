package server

import (
	"runtime"
	"testing"
)

// TestIdleSocketStack guards what an idle socket costs in goroutines and
// their stacks: nothing. A subscribed socket with no input is parked with
// the replica's parker, and no goroutine waits for it; one goroutine per
// socket, even on the 2 KiB stack it started with, costs about 4 KiB of
// resident memory per socket once the collector's goal counts it, which at
// 19,000 sockets is the difference between meeting the idle-memory target
// and not.
func TestIdleSocketStack(t *testing.T) {
	if !parksSockets {
		t.Skip("no parker on this platform; each socket keeps a reader goroutine")
	}
	r := newReplica(t, nil)
	room := r.room("idle")
	const sockets = 400
	clients := make([]*wsClient, 0, sockets)
	open := func() {
		for range sockets {
			c := r.dialTransport("")
			c.subscribe("subscribe", "1", `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
			clients = append(clients, c)
		}
		waitFor(t, "every subscription live", func() bool { return r.members() == sockets })
	}
	goroutinesBefore, before := settledStack(t)
	open()
	goroutinesAfter, after := settledStack(t)
	perSocket := float64(after-before) / sockets
	goroutinesPerSocket := float64(goroutinesAfter-goroutinesBefore) / sockets
	t.Logf("goroutines %d → %d, stack in use %d → %d bytes: %.2f goroutines and %.0f bytes per idle socket",
		goroutinesBefore, goroutinesAfter, before, after, goroutinesPerSocket, perSocket)
	// The room's shared execution and the runtime account for a few.
	if goroutinesPerSocket > 0.05 {
		t.Fatalf("%.2f goroutines per idle socket; want none (the socket parked)", goroutinesPerSocket)
	}
	// The race detector enlarges stack frames: the goroutine count says
	// enough there.
	if !raceEnabled && perSocket > 512 {
		t.Fatalf("%.0f bytes of goroutine stack per idle socket; want under 512 (no goroutine per socket)", perSocket)
	}
	// The sockets still work after the measurement.
	r.post(room, "u1", "still here")
	for _, c := range clients[:3] {
		c.expectType("next")
	}
}

// stackInUse collects (freeing the stacks of goroutines that have ended
// and shrinking those of parked ones that use under a quarter of theirs)
// and returns the bytes of goroutine stacks in use.
func stackInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}

// settledStack waits, up to 10 s, until goroutines have stopped coming
// and going (two readings in a row agree), and returns the goroutine
// count and the stack in use then. A measurement taken while an earlier
// test's servers are still winding down would count their freed stacks
// against what is being measured.
func settledStack(t *testing.T) (goroutines int, stack int64) {
	t.Helper()
	goroutines, stack = runtime.NumGoroutine(), stackInUse()
	waitFor(t, "goroutines to settle", func() bool {
		g, s := runtime.NumGoroutine(), stackInUse()
		settled := g == goroutines && s == stack
		goroutines, stack = g, s
		return settled
	})
	return goroutines, stack
}
