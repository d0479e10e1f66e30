package server

import (
	"context"
	"slices"
	"sync"
	"time"
)

// session is one long-lived client connection, whatever its transport (a
// WebSocket, an HTTP event stream), as admission and drain see it.
type session interface {
	// openedAt is when the session was admitted; drain closes the oldest
	// first.
	openedAt() time.Time
	// goAway ends the session, telling its client to reconnect (to another
	// replica) and resume, once the queries and mutations it runs have been
	// answered (it starts no new one meanwhile); a subscription's resolver
	// still starting on it is abandoned, as when the session's connection
	// goes. It never blocks.
	goAway()
	// drop cuts the TCP connection at once: the drain's deadline passed.
	drop()
	// ended reports whether the session has finished and released
	// everything it held.
	ended() bool
	// user is who the session acts as; "" when anonymous.
	user() string
	// disconnect ends the session with a FORBIDDEN error (4403 on a
	// WebSocket): an administrator disconnected its user. It never blocks.
	disconnect()
}

// sessions admits, tracks and drains the long-lived connections of every
// transport, so that --max-connections and drain apply to all of them
// alike: a replica holding its limit in WebSockets refuses an event stream
// too, and a drain spreads the closes of both over one window.
type sessions struct {
	maxConnections int // 0: no limit

	// dropGrace is how long the sessions whose connections were dropped
	// get to finish before the drain gives up on them (dropGrace).
	dropGrace time.Duration

	mu       sync.Mutex
	open     map[session]struct{}
	admitted int           // sessions admitted and not yet finished
	idle     chan struct{} // closed when admitted reaches 0; made by finished
	draining bool          // no new sessions; new ones are refused with 503
	dropping bool          // the drain's deadline passed: connections are dropped
}

// dropGrace is how long a drain waits for the sessions whose connections
// it dropped. Dropping ends a session promptly unless something it waits
// for ignores it: a resolver that does not heed its context (a socket's
// reader runs a subscription's resolver, its teardown waits for its
// queries'), an authenticator still checking an upgrade's credentials.
// (A stream's write under way is made to fail: a parked stream's
// connection is closed, another's write deadline set to now.) The drain
// does not wait for those, so that the process's stop stays bounded.
const dropGrace = time.Second

func newSessions(maxConnections int) *sessions {
	return &sessions{maxConnections: maxConnections, dropGrace: dropGrace, open: make(map[session]struct{})}
}

// admission is admit's verdict.
type admission int

const (
	admitted admission = iota
	refusedDraining
	refusedFull
)

// admit counts a session about to be served, unless draining or full. An
// admitted session must be let go with done once it has finished.
func (s *sessions) admit() admission {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return refusedDraining
	case s.maxConnections > 0 && s.admitted >= s.maxConnections:
		return refusedFull
	}
	s.admitted++
	return admitted
}

// done lets an admitted session go.
func (s *sessions) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.admitted--
	if s.admitted == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

// finished returns a channel closed once no admitted session is left.
func (s *sessions) finished() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admitted == 0 {
		none := make(chan struct{})
		close(none)
		return none
	}
	if s.idle == nil {
		s.idle = make(chan struct{})
	}
	return s.idle
}

// track adds c to (on) or removes it from the open sessions. A session
// that was admitted before the drain began but starts being served after
// it is ended at once: it missed the drain's list.
func (s *sessions) track(c session, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.open, c)
		return
	}
	s.open[c] = struct{}{}
	switch {
	case s.dropping:
		c.drop()
	case s.draining:
		c.goAway()
	}
}

// disconnectUser ends every open session of user and returns how many.
func (s *sessions) disconnectUser(user string) int {
	var theirs []session
	s.mu.Lock()
	for c := range s.open {
		if c.user() == user {
			theirs = append(theirs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range theirs {
		c.disconnect()
	}
	return len(theirs)
}

// isDraining reports whether startDrain has been called.
func (s *sessions) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// startDrain refuses new sessions from now on and returns the open ones,
// oldest first.
func (s *sessions) startDrain() []session {
	s.mu.Lock()
	s.draining = true
	open := make([]session, 0, len(s.open))
	for c := range s.open {
		open = append(open, c)
	}
	s.mu.Unlock()
	slices.SortFunc(open, func(a, b session) int { return a.openedAt().Compare(b.openedAt()) })
	return open
}

// drain refuses new sessions, ends the open ones spread evenly over
// window, and waits for them to finish, bounded by ctx. When ctx ends
// first, the sessions not yet ended are ended at once, the connections of
// all that have not finished are dropped, and drain waits at most
// s.dropGrace more (see waitServed).
//
// The ends are paced by one timer in the calling goroutine: session i of n
// is ended at drainOffset(i, n, window) after the start, so clients do not
// all reconnect elsewhere at once.
func (s *sessions) drain(ctx context.Context, window time.Duration) (dropped, unfinished int) {
	open := s.startDrain()
	start := time.Now()
	timer := time.NewTimer(window)
	defer timer.Stop()
	for i, c := range open {
		if wait := time.Until(start.Add(drainOffset(i, len(open), window))); wait > 0 && ctx.Err() == nil {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if !c.ended() {
			c.goAway()
		}
	}
	return s.waitServed(ctx)
}

// drainOffset is when session i of n is ended during a drain over window:
// i*window/n, so the n ends are spread evenly and the first is at once.
// It does not overflow for any window and n a process can hold.
func drainOffset(i, n int, window time.Duration) time.Duration {
	if n <= 0 || i <= 0 || window <= 0 {
		return 0
	}
	step, rest := window/time.Duration(n), window%time.Duration(n)
	return step*time.Duration(i) + rest*time.Duration(i)/time.Duration(n)
}

// waitServed waits until every admitted session has finished. When ctx
// ends first, it drops the connections of those still open, which ends
// them promptly, and returns how many it dropped. It waits at most
// s.dropGrace for the sessions to finish after that, and returns how many
// had not (dropped or not: an upgrade still being authenticated is
// admitted but not open), so that a session stuck on something that
// ignores the drop cannot hold the process's stop without bound.
func (s *sessions) waitServed(ctx context.Context) (dropped, unfinished int) {
	finished := s.finished()
	select {
	case <-finished:
		return 0, 0
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.dropping = true
	for c := range s.open {
		c.drop()
		dropped++
	}
	s.mu.Unlock()
	grace := time.NewTimer(s.dropGrace)
	defer grace.Stop()
	select {
	case <-finished:
		return dropped, 0
	case <-grace.C:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return dropped, s.admitted
}

// count is the number of open sessions.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}
