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
}

func newKeeper(cfg wsConfig) *keeper {
	return &keeper{
		// A tenth of the deadline each enforces, within bounds: the init
		// timeout within a quarter second, keepalive within a second.
		initTick:  clampTick(cfg.initTimeout/10, 250*time.Millisecond),
		aliveTick: clampTick(min(cfg.pingInterval, cfg.pongTimeout)/10, time.Second),
		pending:   make(map[*wsConn]struct{}),
		live:      make(map[*wsConn]struct{}),
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

// run checks the sockets until ctx is done.
func (k *keeper) run(ctx context.Context) {
	t := time.NewTicker(min(k.initTick, k.aliveTick))
	defer t.Stop()
	var batch []*wsConn
	nextAlive := time.Now().Add(k.aliveTick)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			batch = k.snapshot(batch[:0], k.pending)
			if !now.Before(nextAlive) {
				batch = k.snapshot(batch, k.live)
				nextAlive = now.Add(k.aliveTick)
			}
			for _, c := range batch {
				c.checkTimers(now)
			}
			clear(batch)
		}
	}
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
