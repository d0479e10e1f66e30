package pubsub

import (
	"errors"
	"testing"
	"time"
)

// TestPresenceWatchSignalsRefusedWhenCloseEndsLifeMidway: a Close that
// ends the Presence's life while a WatchSignals has passed its first check
// of it (it is subscribing, about to register the watch under p.mu) makes
// that WatchSignals fail with ErrPresenceClosed, as documented, rather
// than return a watch that a Close already past closeSignalWatches would
// leave subscribed, calling its function after Close, for the life of the
// connection. The test holds p.mu to stop the call there, and ends life
// under it itself, as Close does.
func TestPresenceWatchSignalsRefusedWhenCloseEndsLifeMidway(t *testing.T) {
	l := openEmbedded(t, Options{})
	p := openPresence(t, l, PresenceOptions{Replica: "r1"})
	before := l.nc.NumSubscriptions()
	p.mu.Lock()
	type result struct {
		sw  *SignalWatch
		err error
	}
	done := make(chan result, 1)
	go func() {
		sw, err := p.WatchSignals("room1", func(string) {})
		done <- result{sw, err}
	}()
	// Its subscription is made after its first check of life: from then
	// on, only the check under p.mu can refuse it.
	waitFor(t, 10*time.Second, "WatchSignals to subscribe", func() bool { return l.nc.NumSubscriptions() > before })
	p.endLife()
	p.mu.Unlock()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchSignals did not return")
	}
	if r.err == nil {
		r.sw.Close()
		t.Fatal("WatchSignals returned a watch though Close ended the Presence's life before it registered it; want ErrPresenceClosed")
	}
	if !errors.Is(r.err, ErrPresenceClosed) {
		t.Fatalf("WatchSignals: %v, want ErrPresenceClosed", r.err)
	}
}
