package server

import (
	"runtime"
	"testing"
)

// TestIdleSocketStack guards what an idle socket costs in goroutine stack:
// one goroutine per socket, parked waiting for input on the 2 KiB stack it
// started with. A reader parked inside gorilla's ReadMessage needs 4 KiB,
// and an idle server never shrinks it; at 19,000 sockets that is the
// difference between meeting the idle-memory target and not.
func TestIdleSocketStack(t *testing.T) {
	if !shallowWait {
		t.Skip("no shallow wait on this platform; the reader reads on its own stack")
	}
	if raceEnabled {
		t.Skip("the race detector enlarges stack frames; make test also runs this without -race")
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
	_, before := settledStack(t)
	open()
	_, after := settledStack(t)
	perSocket := float64(after-before) / sockets
	t.Logf("goroutines %d, stack in use %d → %d bytes: %.0f bytes per idle socket", runtime.NumGoroutine(), before, after, perSocket)
	// 2 KiB for the reader plus slack for the shared execution and the
	// runtime; a reader with a 4 KiB stack fails this.
	if perSocket > 3072 {
		t.Fatalf("%.0f bytes of goroutine stack per idle socket; want at most 3 KiB (one goroutine on its starting 2 KiB stack)", perSocket)
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
