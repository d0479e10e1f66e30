package server

import (
	"context"
	"sync"
	"time"
)

// keeper is the one timer of every socket: each tick it checks init
// deadlines and keepalive for all of them, so an idle socket costs no timer
// or goroutine of its own for these.
type keeper struct {
	tick time.Duration

	mu    sync.Mutex
	conns map[*wsConn]struct{}
}

func newKeeper(tick time.Duration) *keeper {
	return &keeper{tick: tick, conns: make(map[*wsConn]struct{})}
}

func (k *keeper) add(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.conns[c] = struct{}{}
}

func (k *keeper) remove(c *wsConn) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.conns, c)
}

// run checks every socket each tick until ctx is done.
func (k *keeper) run(ctx context.Context) {
	t := time.NewTicker(k.tick)
	defer t.Stop()
	var batch []*wsConn
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			k.mu.Lock()
			batch = batch[:0]
			for c := range k.conns {
				batch = append(batch, c)
			}
			k.mu.Unlock()
			for _, c := range batch {
				c.checkTimers(now)
			}
			clear(batch)
		}
	}
}

// keeperTick is how often the keeper looks: a tenth of the shortest
// deadline it enforces, within [5ms, 250ms].
func keeperTick(cfg wsConfig) time.Duration {
	return min(max(min(cfg.initTimeout, cfg.pingInterval, cfg.pongTimeout)/10, 5*time.Millisecond), 250*time.Millisecond)
}
