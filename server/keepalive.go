package server

import (
	"context"
	"math"
	"sync"
	"time"
)

// keeper is the one timer of every socket: it enforces the init timeout and
// keepalive for all of them, so an idle socket costs no timer or goroutine
// of its own for these. Sockets still waiting for connection_init are few
// and need a fine-grained deadline; acknowledged ones are many and only
// need keepalive, so they are looked at less often, and only when due.
type keeper struct {
	initTick  time.Duration // how often pending sockets are checked
	aliveTick time.Duration // how often acknowledged sockets are checked
	start     time.Time     // the start of the keeper's clock (see at)

	mu      sync.Mutex
	pending map[*wsConn]struct{} // no connection_ack yet
	live    liveSockets
	streams map[*parkedStream]struct{} // HTTP streams served without their request's goroutine
}

// liveSockets holds the acknowledged sockets, each in a slot with the
// instant (on the keeper's clock, keeper.at) it is next due: the earliest
// of its next ping, its keepalive deadline and its credentials' expiry. A
// tick reads the dues, one contiguous array, and looks at a socket only
// when it is due: with a 15 s ping interval, once in 15 s rather than once
// a second, which spares the cache misses of touching every idle socket
// each second. A slot's socket records the slot (wsConn.slot); freed
// slots are reused.
type liveSockets struct {
	conns []*wsConn
	due   []int64 // by slot; math.MaxInt64 while being checked or free
	free  []int32
}

// checking marks a slot taken out for a check; see liveSockets.collect.
const checking = math.MaxInt64

func newKeeper(cfg wsConfig) *keeper {
	return &keeper{
		// A tenth of the deadline each enforces, within bounds: the init
		// timeout within a quarter second, keepalive within a second.
		initTick:  clampTick(cfg.initTimeout/10, 250*time.Millisecond),
		aliveTick: clampTick(min(cfg.pingInterval, cfg.pongTimeout)/10, time.Second),
		start:     time.Now(),
		pending:   make(map[*wsConn]struct{}),
		streams:   make(map[*parkedStream]struct{}),
	}
}

func clampTick(d, most time.Duration) time.Duration {
	return min(max(d, 5*time.Millisecond), most)
}

// at is now on the keeper's clock: nanoseconds since the keeper started,
// on the monotonic clock. Due instants are kept on it, not on the wall
// clock, which NTP, an operator or a resumed VM may step: a step forward
// would make every keepalive due at once (and every socket look silent),
// a step back would hold them all back for as long as it stepped.
func (k *keeper) at(now time.Time) int64 { return int64(now.Sub(k.start)) }

// dueAt is when c is next due, on the keeper's clock. Its machine's due
// instant (wsConn.nextDue) is on the machine's clock, which started with
// the socket and is apart from the keeper's by any step of the wall clock
// in between; what is left until it is the same on both.
func (k *keeper) dueAt(c *wsConn, now time.Time) int64 {
	return k.at(now) + (c.nextDue() - c.machine.at(now))
}

func (k *keeper) add(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending[c] = struct{}{}
}

// acked moves c from the init deadline to keepalive, due at the next
// check (which finds when it is next due).
func (k *keeper) acked(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.pending[c]; ok {
		delete(k.pending, c)
		k.live.add(c)
	}
}

// wake makes c due at the next check: its deadlines moved earlier (a
// refreshed token that expires sooner).
func (k *keeper) wake(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.live.holds(c) {
		k.live.due[c.slot] = 0
	}
}

func (k *keeper) remove(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.pending, c)
	k.live.remove(c)
}

func (l *liveSockets) add(c *wsConn) {
	if n := len(l.free); n > 0 {
		c.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.conns[c.slot], l.due[c.slot] = c, 0
		return
	}
	c.slot = int32(len(l.conns))
	l.conns = append(l.conns, c)
	l.due = append(l.due, 0)
}

// holds reports whether c is in its slot.
func (l *liveSockets) holds(c *wsConn) bool {
	return c.slot >= 0 && int(c.slot) < len(l.conns) && l.conns[c.slot] == c
}

func (l *liveSockets) remove(c *wsConn) {
	if !l.holds(c) {
		return
	}
	l.conns[c.slot], l.due[c.slot] = nil, checking
	l.free = append(l.free, c.slot)
	c.slot = -1
}

// collect appends the sockets due at now and marks them as being
// checked, so that a wake while they are checked (due 0) survives
// reschedule.
func (l *liveSockets) collect(batch []*wsConn, now int64) []*wsConn {
	for i, due := range l.due {
		if due <= now {
			batch = append(batch, l.conns[i])
			l.due[i] = checking
		}
	}
	return batch
}

// reschedule makes c, just checked, due at next, unless it was woken or
// removed meanwhile.
func (l *liveSockets) reschedule(c *wsConn, next int64) {
	if l.holds(c) {
		l.due[c.slot] = min(l.due[c.slot], next)
	}
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
	var batch, alive []*wsConn
	var next []int64
	var streams []*parkedStream
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			batch = k.snapshot(batch[:0], k.pending)
			for _, c := range batch {
				c.checkTimers(now)
			}
			if due.reached(now) {
				alive = k.collectDue(alive[:0], now)
				next = next[:0]
				for _, c := range alive {
					c.checkTimers(now)
					next = append(next, k.dueAt(c, now))
				}
				k.reschedule(alive, next)
				streams = k.snapshotStreams(streams[:0])
				for _, ps := range streams {
					ps.checkTimers(now)
				}
			}
			clear(batch)
			clear(alive)
			clear(streams)
		}
	}
}

// collectDue appends the acknowledged sockets due at now.
func (k *keeper) collectDue(batch []*wsConn, now time.Time) []*wsConn {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.live.collect(batch, k.at(now))
}

// reschedule makes each of checked due at the instant next gives it.
func (k *keeper) reschedule(checked []*wsConn, next []int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, c := range checked {
		k.live.reschedule(c, next[i])
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
