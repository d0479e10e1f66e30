package server

import (
	"context"
	"sync"
	"time"
)

// keeper is the one timer of every socket: it enforces the init timeout and
// keepalive for all of them, so an idle socket costs no timer or goroutine
// of its own for these. Sockets still waiting for connection_init are few
// and need a fine-grained deadline; acknowledged ones are many and only
// need keepalive, so they are looked at less often.
type keeper struct {
	initTick  time.Duration // how often pending sockets are checked
	aliveTick time.Duration // how often acknowledged sockets are checked

	mu      sync.Mutex
	pending map[*wsConn]struct{} // no connection_ack yet
	live    map[*wsConn]struct{}
	streams map[*parkedStream]struct{} // HTTP streams served without their request's goroutine
}

func newKeeper(cfg wsConfig) *keeper {
	return &keeper{
		// A tenth of the deadline each enforces, within bounds: the init
		// timeout within a quarter second, keepalive within a second.
		initTick:  clampTick(cfg.initTimeout/10, 250*time.Millisecond),
		aliveTick: clampTick(min(cfg.pingInterval, cfg.pongTimeout)/10, time.Second),
		pending:   make(map[*wsConn]struct{}),
		live:      make(map[*wsConn]struct{}),
		streams:   make(map[*parkedStream]struct{}),
	}
}

func clampTick(d, most time.Duration) time.Duration {
	return min(max(d, 5*time.Millisecond), most)
}

func (k *keeper) add(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending[c] = struct{}{}
}

// acked moves c from the init deadline to keepalive.
func (k *keeper) acked(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.pending[c]; ok {
		delete(k.pending, c)
		k.live[c] = struct{}{}
	}
}

func (k *keeper) remove(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.pending, c)
	delete(k.live, c)
}

func (k *keeper) addStream(ps *parkedStream) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.streams[ps] = struct{}{}
}

func (k *keeper) removeStream(ps *parkedStream) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.streams, ps)
}

// run checks the sockets (and parked streams, as often as acknowledged
// sockets) until ctx is done.
func (k *keeper) run(ctx context.Context) {
	// The schedule starts before the ticker, so that the tick due at
	// start+aliveTick, which fires no earlier, finds it due.
	due := aliveSchedule{every: k.aliveTick, next: time.Now().Add(k.aliveTick)}
	t := time.NewTicker(min(k.initTick, k.aliveTick))
	defer t.Stop()
	var batch []*wsConn
	var streams []*parkedStream
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			batch = k.snapshot(batch[:0], k.pending)
			streams = streams[:0]
			if due.reached(now) {
				batch = k.snapshot(batch, k.live)
				streams = k.snapshotStreams(streams)
			}
			for _, c := range batch {
				c.checkTimers(now)
			}
			for _, ps := range streams {
				ps.checkTimers(now)
			}
			clear(batch)
			clear(streams)
		}
	}
}

// aliveSchedule says on which ticks the acknowledged sockets are due: once
// per every, on a fixed schedule. Scheduling from the tick that found
// them due instead would let a tick's lateness push every later check
// back by a whole init tick (a second's check becoming 1.25 s apart),
// and a token's expiry then closes its socket later than a second after.
type aliveSchedule struct {
	every time.Duration
	next  time.Time
}

// reached reports whether the tick at now is due, and if so schedules
// the next one; after a stall longer than every it starts afresh from now.
func (s *aliveSchedule) reached(now time.Time) bool {
	if now.Before(s.next) {
		return false
	}
	s.next = s.next.Add(s.every)
	if !s.next.After(now) {
		s.next = now.Add(s.every)
	}
	return true
}

// snapshotStreams appends the parked streams, as snapshot does sockets.
func (k *keeper) snapshotStreams(batch []*parkedStream) []*parkedStream {
	k.mu.Lock()
	defer k.mu.Unlock()
	for ps := range k.streams {
		batch = append(batch, ps)
	}
	return batch
}

// snapshot appends the sockets of set, so they are checked without the
// lock held.
func (k *keeper) snapshot(batch []*wsConn, set map[*wsConn]struct{}) []*wsConn {
	k.mu.Lock()
	defer k.mu.Unlock()
	for c := range set {
		batch = append(batch, c)
	}
	return batch
}
