package server

import (
	"testing"
	"time"
)

// TestKeeperTicks pins what docs/ARCHITECTURE.md promises of
// the keeper's ticks (keepalive.go): sockets awaiting connection_init are
// checked every init tick, a tenth of the init timeout and at most 250 ms;
// acknowledged ones on each alive tick, a tenth of the shorter of the ping
// interval and the pong timeout and at most 1 s, so that "an expiry is
// enforced within a second" and a silent client is closed within a tenth of
// its allowance: not every 10 s, nor sized on the longer of the two
// keepalive durations.
func TestKeeperTicks(t *testing.T) {
	for _, tc := range []struct {
		cfg             wsConfig
		initMost, alive time.Duration
	}{
		{wsConfig{initTimeout: 3 * time.Second, pingInterval: 15 * time.Second, pongTimeout: 10 * time.Second}, 250 * time.Millisecond, time.Second},
		{wsConfig{initTimeout: 30 * time.Second, pingInterval: 60 * time.Second, pongTimeout: 30 * time.Second}, 250 * time.Millisecond, time.Second},
		// A short pong timeout after a long ping interval: the keepalive
		// allowance is judged within a tenth of the pong timeout.
		{wsConfig{initTimeout: time.Second, pingInterval: 20 * time.Second, pongTimeout: 500 * time.Millisecond}, 100 * time.Millisecond, 50 * time.Millisecond},
		{wsConfig{initTimeout: 200 * time.Millisecond, pingInterval: 300 * time.Millisecond, pongTimeout: 2 * time.Second}, 20 * time.Millisecond, 30 * time.Millisecond},
	} {
		k := newKeeper(tc.cfg)
		if k.initTick > tc.initMost || k.initTick < 5*time.Millisecond {
			t.Errorf("init %v ping %v pong %v: init tick %v, want at most %v (a tenth of the init timeout, ≤ 250 ms)", tc.cfg.initTimeout, tc.cfg.pingInterval, tc.cfg.pongTimeout, k.initTick, tc.initMost)
		}
		if k.aliveTick > tc.alive || k.aliveTick < 5*time.Millisecond {
			t.Errorf("init %v ping %v pong %v: alive tick %v, want at most %v (a tenth of the shorter keepalive duration, ≤ 1 s)", tc.cfg.initTimeout, tc.cfg.pingInterval, tc.cfg.pongTimeout, k.aliveTick, tc.alive)
		}
	}
}
