package server

import (
	"runtime"
	"testing"
	"time"
)

// TestParkerWakesMoreThanOneBatch: when more parked sockets
// have input at once than the parker takes in one epoll_wait (128), every
// one of them is woken, not only the first batch: the rest must not wait
// for some later input on another socket.
func TestParkerWakesMoreThanOneBatch(t *testing.T) {
	p := testParker(t)
	const n = 200
	pairs := make([]*parkedPair, n)
	for i := range pairs {
		pairs[i] = newParkedPair(t, p)
		if !pairs[i].r.park() {
			t.Fatalf("park %d: refused", i)
		}
	}
	// Input for all of them, written without letting the parker run in
	// between, so that it finds more than one batch waiting.
	prev := runtime.GOMAXPROCS(1)
	for _, pp := range pairs {
		if _, err := pp.client.Write([]byte("x")); err != nil {
			runtime.GOMAXPROCS(prev)
			t.Fatal(err)
		}
	}
	runtime.GOMAXPROCS(prev)
	deadline := time.After(5 * time.Second)
	for i, pp := range pairs {
		select {
		case <-pp.resumed:
		case <-deadline:
			missing := 0
			for _, q := range pairs[i:] {
				if q.count.Load() == 0 {
					missing++
				}
			}
			t.Fatalf("%d of %d parked sockets with input were never woken", missing, n)
		}
	}
}
