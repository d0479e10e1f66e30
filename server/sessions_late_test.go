package server

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// drainRecorder is a session that records what the drain asked of it.
type drainRecorder struct {
	wentAway, dropped atomic.Int32
}

func (c *drainRecorder) openedAt() time.Time { return time.Time{} }
func (c *drainRecorder) goAway()             { c.wentAway.Add(1) }
func (c *drainRecorder) drop()               { c.dropped.Add(1) }
func (c *drainRecorder) ended() bool         { return false }
func (c *drainRecorder) user() string        { return "" }
func (c *drainRecorder) disconnect()         {}

// TestLateSessionsJoinTheDrain: a connection admitted before
// a drain began but opened (tracked) after it took its list of open
// sessions (an upgrade still authenticating, a stream claiming its
// reservation) is told to go away at once, and one opened after the
// drain's deadline dropped the others is dropped too (sessions.track).
// Otherwise it would stay open through the whole drain window, then
// outlive the drop that ends every other connection.
func TestLateSessionsJoinTheDrain(t *testing.T) {
	t.Run("opened during the drain goes away", func(t *testing.T) {
		s := newSessions(0)
		if s.admit() != admitted {
			t.Fatal("not admitted")
		}
		if open := s.startDrain(); len(open) != 0 {
			t.Fatalf("startDrain listed %d sessions, want none open yet", len(open))
		}
		c := &drainRecorder{}
		s.track(c, true)
		if c.wentAway.Load() != 1 || c.dropped.Load() != 0 {
			t.Errorf("a session opened while draining: goAway %d, drop %d; want goAway 1, drop 0", c.wentAway.Load(), c.dropped.Load())
		}
	})
	t.Run("opened after the drop is dropped", func(t *testing.T) {
		s := newSessions(0)
		s.dropGrace = 20 * time.Millisecond
		if s.admit() != admitted {
			t.Fatal("not admitted")
		}
		s.startDrain()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if dropped, unfinished := s.waitServed(ctx); dropped != 0 || unfinished != 1 {
			t.Fatalf("waitServed = %d dropped, %d unfinished; want 0, 1", dropped, unfinished)
		}
		c := &drainRecorder{}
		s.track(c, true)
		if c.dropped.Load() != 1 {
			t.Errorf("a session opened after the drain's deadline: drop %d, want 1", c.dropped.Load())
		}
	})
}
