package chat

import (
	"cmp"
	"container/heap"
	"container/list"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// heldRoom is a room this replica holds: loaded from the room's own
// entries, then kept current from its live entries.
type heldRoom struct {
	id    string
	ready chan struct{} // closed once the first load ended
	// loadErr is why the first load failed; written before ready is closed.
	loadErr error

	mu sync.Mutex
	st *roomState // nil until loaded
	// early holds live entries that arrived while the room was loading.
	early   []pubsub.Entry
	applied chan struct{} // closed and replaced after every applied event
	evicted bool          // set under the cache's lock and mu: apply nothing more
	// reloading is set while the room is read afresh (see reloadRoom):
	// live entries wait in early, as while loading.
	reloading bool
	// liveLast is the newest live entry handed to the room (applied, put in
	// early or skipped): a check re-read finding entries in the log past it
	// leaves them to the live chain for a while (see resyncRoom).
	liveLast uint64
	// access is the members of a private room and since when (see
	// roomState.access), for Access to read without mu; nil until loaded
	// and for a public room.
	access atomic.Pointer[map[string]uint64]

	// propose serialises this replica's commands on the room: each judges
	// the room as the previous one left it.
	propose sync.Mutex
	// resync serialises the room's re-reads (the re-syncer's, a command's,
	// a resume's), so that a reload never races another re-read.
	resync sync.Mutex

	// Guarded by the cache's lock.
	refs int           // local users: subscriptions, commands and queries in flight
	elem *list.Element // position in the eviction order while refs is 0
}

// roomCache is the set of rooms held, with an eviction order of the ones
// nobody uses.
type roomCache struct {
	mu    sync.Mutex
	held  map[string]*heldRoom
	idle  *list.List   // rooms with refs 0, least recently used first
	bytes atomic.Int64 // estimated, over every held room
	// stopping: Run is waiting for the loads under way (Service.loading),
	// so none may start. Guarded by mu, under which loads are counted.
	stopping bool
}

func newRoomCache() roomCache {
	return roomCache{held: make(map[string]*heldRoom), idle: list.New()}
}

func (c *roomCache) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

func (c *roomCache) get(id string) *heldRoom {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.held[id]
}

// withRoom runs read with the room's state, loading the room if needed.
func (s *Service) withRoom(ctx context.Context, roomID string, read func(*roomState)) error {
	h, err := s.acquire(ctx, roomID, waitBrief)
	if err != nil {
		return err
	}
	defer s.release(h)
	h.mu.Lock()
	defer h.mu.Unlock()
	read(h.st)
	return nil
}

// loadWait is how a caller of acquire waits for a room that is loading.
type loadWait bool

const (
	// waitBrief is a command's or a query's wait: at most the apply
	// timeout, and none while the event log is known to be unreachable
	// (UNAVAILABLE at once, as a command's append fails), since its client
	// is told to retry.
	waitBrief loadWait = false
	// waitLoad is a subscription's wait: as long as the load goes on
	// (Options.LoadTimeout), so that a subscriber is not failed while a
	// NATS cluster elects a partition's leader.
	waitLoad loadWait = true
)

// acquire returns the held room, loading it first if this replica does not
// hold it; wait is how long a caller waits for a load, its own or another
// caller's. The room is not evicted until release.
func (s *Service) acquire(ctx context.Context, roomID string, wait loadWait) (*heldRoom, error) {
	meta, ok, err := s.LookupRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(CodeNotFound, "room %q does not exist", roomID)
	}
	s.rooms.mu.Lock()
	h := s.rooms.held[roomID]
	if wait == waitBrief && (h == nil || !h.loaded()) {
		// Asked of the log outside rooms.mu, which every use of a room
		// takes. A load started now could only fail, and log it.
		s.rooms.mu.Unlock()
		if !s.log.Available() {
			return nil, errorf(CodeUnavailable, "room %s cannot be loaded now (the event log is unavailable); retry later", roomID)
		}
		s.rooms.mu.Lock()
		h = s.rooms.held[roomID]
	}
	load := h == nil
	if load && s.rooms.stopping {
		s.rooms.mu.Unlock()
		return nil, errorf(CodeUnavailable, "room %s cannot be loaded now: the service is stopping", roomID)
	}
	if load {
		h = &heldRoom{id: roomID, ready: make(chan struct{}), applied: make(chan struct{})}
		// Live entries are subscribed to before the room is read, so that
		// every entry stored after the read is delivered live.
		if err := s.live.Add(roomID); err != nil {
			s.rooms.mu.Unlock()
			s.opts.Logger.Warn("subscribing to a room's live entries failed", "room", roomID, "err", err)
			return nil, errorf(CodeUnavailable, "room %s cannot be loaded now; retry later", roomID)
		}
		s.rooms.held[roomID] = h
	}
	h.refs++
	if load {
		// The loader's own use, so the room is not evicted mid-load; load
		// ends it before it wakes the waiters.
		h.refs++
	}
	if h.elem != nil {
		s.rooms.idle.Remove(h.elem)
		h.elem = nil
	}
	if load {
		// Counted under rooms.mu, before Run, stopping, may wait for it
		// (a WaitGroup may not be added to from zero while waited for).
		s.loading.Add(1)
	}
	s.rooms.mu.Unlock()

	if load {
		// Loading serves every waiter, not only the caller that started
		// it, and outlasts a caller that gives up while others wait (see
		// load).
		go func() {
			defer s.loading.Done()
			s.load(h, meta)
		}()
	}
	if err := s.awaitLoad(ctx, h, wait); err != nil {
		s.release(h)
		return nil, err
	}
	return h, nil
}

// awaitLoad waits, as wait says, until h is loaded, and returns why it
// cannot be used if it is not.
func (s *Service) awaitLoad(ctx context.Context, h *heldRoom, wait loadWait) error {
	if !h.loaded() {
		// Only now a timer: a room held already (every query of it, every
		// command) costs none.
		var bound <-chan time.Time
		if wait == waitBrief {
			t := time.NewTimer(s.opts.ApplyTimeout)
			defer t.Stop()
			bound = t.C
		}
		select {
		case <-h.ready:
		case <-bound:
			return errorf(CodeUnavailable, "room %s is still loading; retry shortly", h.id)
		case <-ctx.Done():
			return errorf(CodeUnavailable, "room %s is still loading; retry shortly", h.id)
		}
	}
	if h.loadErr != nil {
		return h.loadErr
	}
	return nil
}

// loaded reports whether h's first load has ended (h.loadErr says how).
func (h *heldRoom) loaded() bool {
	select {
	case <-h.ready:
		return true
	default:
		return false
	}
}

// release ends one use of a held room; a room nobody uses becomes
// evictable.
func (s *Service) release(h *heldRoom) {
	s.rooms.mu.Lock()
	h.refs--
	if h.refs == 0 && s.rooms.held[h.id] == h {
		h.elem = s.rooms.idle.PushBack(h)
	}
	s.rooms.mu.Unlock()
	s.evictOverBudget()
}

// load reads the room from its entries, then applies what arrived live
// meanwhile, and wakes whoever waits for the room. A read that fails (say,
// while a NATS cluster elects the partition's leader) is tried again until
// LoadTimeout has passed, as long as someone waits for the room: a load
// that has failed and that nobody waits for any more (its callers gave up,
// as a query does after the apply timeout) ends, since it would serve only
// a caller yet to come, who starts a load of its own. Only the first
// failure is a warning, and the end of a load that failed for good: a read
// tried again every second while NATS is away has nothing new to say, and
// a client's query of many rooms would otherwise log one warning a second
// for each.
//
// load ends the loader's use of the room (see acquire) and does its
// bookkeeping before it closes ready: a waiter that wakes then holds the
// room's last use, so its release leaves the room idle and evicts it over
// the budget at once, and Stats already counts the load. Were the loader's
// use ended after ready, a room used by one query would stay held until the
// loader goroutine next ran, over the budget.
func (s *Service) load(h *heldRoom, meta Room) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.life, s.opts.LoadTimeout)
	defer cancel()
	var st *roomState
	known := newEventStrings(meta.ID)
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		var err error
		st, err = s.readRoom(ctx, meta, known)
		if err == nil {
			break
		}
		if attempt == 1 && s.life.Err() == nil { // not because the service stops
			s.opts.Logger.Warn("loading a room failed", "room", h.id, "err", err)
		} else {
			s.opts.Logger.Debug("loading a room failed again", "room", h.id, "attempt", attempt, "err", err)
		}
		if s.failLoad(h, true) {
			s.opts.Logger.Debug("stopped loading a room nobody waits for any more", "room", h.id, "attempts", attempt)
			return
		}
		if ctx.Err() != nil || !sleep(ctx, backoff) {
			if s.life.Err() == nil { // not because the service stops
				s.opts.Logger.Warn("gave up loading a room", "room", h.id, "attempts", attempt,
					"after", time.Since(start).Round(time.Millisecond), "err", err)
			}
			s.failLoad(h, false)
			return
		}
		backoff = min(2*backoff, time.Second)
	}
	h.mu.Lock()
	h.st = st
	h.publishAccessLocked()
	s.rooms.bytes.Add(st.bytes)
	early := h.early
	h.early = nil
	for _, e := range early {
		s.applyLiveLocked(h, e)
	}
	h.mu.Unlock()
	s.loadsN.Add(1)
	if s.opts.OnRoomLoad != nil {
		s.opts.OnRoomLoad(time.Since(start))
	}
	// In a NATS cluster, interest in the room's live entries reaches the
	// stream's leader a moment after the subscription: read the room once
	// more then, so an entry stored in that moment is not missed.
	s.resyncer.scheduleCheck(h.id, time.Now().Add(time.Second))
	s.release(h)
	close(h.ready)
}

// failLoad ends a load that failed: the room is no longer held (its next
// use loads it afresh), and whoever waits for it gets UNAVAILABLE. With
// unwaited, only a load nobody waits for any more (the loader's own use is
// the room's last) is ended; failLoad reports whether it ended it. That is
// decided under rooms.mu, where a caller finding the room counts its use,
// so no caller waits for a load that has ended without it.
func (s *Service) failLoad(h *heldRoom, unwaited bool) bool {
	s.rooms.mu.Lock()
	if unwaited && h.refs > 1 {
		s.rooms.mu.Unlock()
		return false
	}
	if s.rooms.held[h.id] == h {
		delete(s.rooms.held, h.id)
		s.live.Remove(h.id)
	}
	s.rooms.mu.Unlock()
	h.loadErr = errorf(CodeUnavailable, "room %s cannot be loaded now (the event log is unavailable); retry later", h.id)
	if s.life.Err() != nil {
		h.loadErr = errorf(CodeUnavailable, "room %s cannot be loaded now: the service is stopping", h.id)
	}
	s.release(h)
	close(h.ready)
	return true
}

// readRoom reads a room from the start of its entries into a new state,
// once, within the apply timeout.
func (s *Service) readRoom(ctx context.Context, meta Room, known *eventStrings) (*roomState, error) {
	st := newRoomState(meta, s.opts.History)
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	_, err := s.log.ReadKey(ctx, meta.ID, 0, func(e pubsub.Entry) error {
		s.foldLogged(st, e, known)
		return nil
	})
	return st, err
}

// foldLogged applies an entry read from the log, in the log's order: the
// log is authoritative, so a chain broken by retention is not a gap. known
// is for the entries of one room read one after the other.
func (s *Service) foldLogged(st *roomState, e pubsub.Entry, known *eventStrings) {
	if e.Seq <= st.last {
		return
	}
	ev, bad := decodeRoomEventWith(e.Key, e.Rest, e.Data, known)
	if bad != nil {
		st.last = e.Seq
		s.opts.Logger.Warn("skipped a malformed room entry", "room", e.Key, "seq", e.Seq, "err", bad)
		return
	}
	// The changes of a message that aged out of the room's history stay
	// on a subject of their own: a load meets them as a matter of course.
	unretained := ev.Type != MessagePosted && !isMemberEvent(ev.Type) && st.byID[ev.MessageID] == nil
	if err := st.apply(e.Seq, entryTime(e, ev), ev); err != nil {
		if unretained {
			s.opts.Logger.Debug("skipped a room event about a message the room no longer retains", "room", e.Key, "seq", e.Seq, "err", err)
			return
		}
		s.opts.Logger.Warn("skipped a room event the rules refuse", "room", e.Key, "seq", e.Seq, "err", err)
	}
}

func entryTime(e pubsub.Entry, ev Event) time.Time {
	if ev.At != 0 {
		return time.Unix(0, ev.At).UTC()
	}
	return e.Time
}

// dispatch re-syncs rooms that may have missed live entries, until ctx
// ends.
func (s *Service) dispatch(ctx context.Context) {
	lost := s.live.Lost()
	for {
		select {
		case <-ctx.Done():
			return
		case <-lost:
			s.handleLost()
		}
	}
}

// handleLive applies a live entry to the room it belongs to. The Live calls
// it on its own goroutine, one entry after another, so an event reaches its
// room's subscribers without waiting for a goroutine of this Service to be
// woken; Run closes the Live, and so waits for it, before it returns.
func (s *Service) handleLive(e pubsub.Entry) {
	if s.liveFilter != nil && !s.liveFilter(e) {
		return
	}
	s.applyLive(e)
}

func (s *Service) applyLive(e pubsub.Entry) {
	h := s.rooms.get(e.Key)
	if h == nil {
		return // evicted since; nothing to keep current
	}
	h.mu.Lock()
	h.liveLast = max(h.liveLast, e.Seq)
	if h.st == nil || h.reloading {
		h.early = append(h.early, e)
	} else {
		s.applyLiveLocked(h, e)
	}
	h.mu.Unlock()
	s.evictOverBudget()
}

// applyLiveLocked applies a live entry if it follows the room's last event;
// otherwise the room missed something and is re-synced from the log.
// Callers hold h.mu.
func (s *Service) applyLiveLocked(h *heldRoom, e pubsub.Entry) {
	if h.evicted {
		return
	}
	if e.Seq <= h.st.last {
		// Usually an entry a read of the log applied first. But a room
		// that applied a live entry the log does not hold (anyone who may
		// publish on the live subjects can forge one) is ahead of the log
		// and skips every stored entry this way, so have the log confirm
		// the room's position (see resyncRoom).
		s.resyncer.scheduleCheck(h.id, time.Now().Add(confirmDelay))
		return
	}
	ev, bad := decodeRoomEventWith(e.Key, e.Rest, e.Data, &h.st.liveStrings)
	if bad != nil || ev.Prev != h.st.last {
		// A gap (or an entry only the log's order can place): the re-sync
		// reads everything after the room's last event, this one included.
		s.resyncer.schedule(h.id, time.Now())
		return
	}
	s.applyEventLocked(h, e.Seq, entryTime(e, ev), ev)
}

// applyEventLocked folds an event into a held room, tells its subscribers
// and wakes whoever waits for it. Subscribers are told under h.mu, so they
// see the room's events in order whichever goroutine applies them.
func (s *Service) applyEventLocked(h *heldRoom, seq uint64, at time.Time, ev Event) {
	before := h.st.bytes
	err := h.st.apply(seq, at, ev)
	s.rooms.bytes.Add(h.st.bytes - before)
	s.appliedN.Add(1)
	if err == nil && isMemberEvent(ev.Type) {
		// Before the change goes out: whoever it reaches sees the room's
		// members as the event left them.
		h.publishAccessLocked()
	}
	if err != nil {
		s.opts.Logger.Warn("skipped a room event the rules refuse", "room", h.id, "seq", seq, "err", err)
	} else if topic := RoomTopic(h.id); s.hub.watched(topic) {
		if c, ok := h.st.change(seq, at, ev); ok {
			s.hub.publish(topic, c)
		}
	}
	close(h.applied)
	h.applied = make(chan struct{})
}

// errAhead stops a re-read whose first entry is not the room's last.
var errAhead = errors.New("the log does not hold the room's last applied entry")

// errLiveBehind stops a check re-read (see resyncRoom) that found entries
// in the log this replica's live chain has not handed to the room yet: the
// resyncer checks again confirmDelay later.
var errLiveBehind = errors.New("the room's live entries are behind the log; checking again later")

// checkable marks the context of a check re-read that may still leave the
// room to its live chain (see resyncer.run).
type checkable struct{}

// probing marks the context of a probe (see resyncer.scheduleProbe).
type probing struct{}

// probePace spaces the probes of a partition's held rooms after it
// elected a leader, so that thousands of rooms do not ask the log at once.
const probePace = 2 * time.Millisecond

// resyncRoom reads a held room's entries from its last applied one on. The
// log must hold that one first: otherwise the room is ahead of the log (it
// applied a live entry the log never stored, or entries were removed
// behind Herald's back) and would skip, or be refused, everything the log
// stores up to its position, so it is reloaded from the log instead
// (reloadRoom). The one entry more per re-read is what keeps a live entry
// the log does not hold from breaking a room for good, at no cost on the
// live path.
//
// A re-read set off by a gap the live chain saw, by lost live entries, or
// by a command's or a subscription's need repairs the room as above. A
// check (the one after a load, the one confirming a position, see
// scheduleCheck) runs while nothing is known to be missing: a live chain
// that merely lags (its entries queued, in order, behind a slow handler)
// while the room goes on by more than its history would make it find the
// room's last entry discarded, or a gap after it, and end the watchers for
// changes that are on their way. So a check that finds either at a log
// entry the live chain has not handed to the room yet, or finds the room
// moved meanwhile, leaves the room to its live chain (which sees a real gap
// itself, by Prev, and repairs) and is retried (errLiveBehind), at most
// maxCheckDeferrals times in a row, after which it repairs: entries the
// live chain never delivers (a subscription's interest reaching a
// cluster's leader late) are not left missing. A log holding nothing from
// the room's position on, the room not having moved meanwhile, says the
// room is ahead, whatever its live chain: a lag puts the log past the
// room, never behind it.
//
// A probe (see scheduleProbe) first asks the log for the room's last entry
// (one request, no consumer) and repairs only if the room is behind it.
func (s *Service) resyncRoom(ctx context.Context, roomID string) error {
	h := s.rooms.get(roomID)
	if h == nil {
		return nil
	}
	select {
	case <-h.ready:
	default:
		return errors.New("still loading") // retried later
	}
	if h.loadErr != nil {
		return nil
	}
	if probe, _ := ctx.Value(probing{}).(bool); probe {
		behind, err := s.behindLog(ctx, h)
		if err != nil || !behind {
			return err
		}
		s.opts.Logger.Debug("a held room is behind the event log after its partition elected a leader; re-syncing it", "room", roomID)
	}
	h.resync.Lock()
	defer h.resync.Unlock()
	h.mu.Lock()
	from := h.st.last
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	check, _ := ctx.Value(checkable{}).(bool)
	// A room with nothing applied has no position to confirm.
	confirmed := from == 0
	applied := 0
	var past uint64 // the log's first entry after the room's position, when it does not hold that
	known := newEventStrings(roomID)
	_, err := s.log.ReadKey(ctx, roomID, from, func(e pubsub.Entry) error {
		if !confirmed {
			if e.Seq != from {
				past = e.Seq
				return errAhead
			}
			confirmed = true
			return nil
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		ok, err := s.applyReadLocked(h, e, known, applied == 0, check)
		if ok {
			applied++
		}
		return err
	})
	if check && (errors.Is(err, errAhead) || (err == nil && !confirmed)) {
		h.mu.Lock()
		behind := h.st.last != from || (past != 0 && h.liveLast < past)
		h.mu.Unlock()
		if behind {
			err = errLiveBehind
		}
	}
	if errors.Is(err, errLiveBehind) {
		s.opts.Logger.Debug("a check of a held room found entries its live chain has not delivered yet; checking again later",
			"room", roomID, "held_last", from, "events", applied)
		return err
	}
	if errors.Is(err, errAhead) || (err == nil && !confirmed) {
		s.opts.Logger.Warn("a held room was ahead of the event log (a live entry the log does not hold, or entries removed from the log); reloading it from the log",
			"room", roomID, "held_last", from)
		if err := s.reloadRoom(ctx, h); err != nil {
			s.opts.Logger.Warn("reloading a room ahead of the event log failed; retrying", "room", roomID, "err", err)
			return err
		}
		return nil
	}
	if err != nil {
		s.opts.Logger.Warn("re-syncing a room failed; retrying", "room", roomID, "err", err)
		return err
	}
	if applied > 0 {
		s.opts.Logger.Info("re-synced a room that missed live events", "room", roomID, "events", applied)
	}
	return nil
}

// behindLog reports whether the log holds an entry of the held room past
// the last one it applied.
func (s *Service) behindLog(ctx context.Context, h *heldRoom) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	last, err := s.log.KeyLastSeq(ctx, h.id)
	if err != nil {
		return false, fmt.Errorf("probe room %s: %w", h.id, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return last > h.st.last, nil
}

// applyReadLocked applies an entry a re-read brought, unless the room has
// it already, and reports whether it did; first counts a re-sync. A check
// (see resyncRoom) that finds a gap before an entry the live chain has not
// delivered yet stops with errLiveBehind instead. Callers hold h.mu.
func (s *Service) applyReadLocked(h *heldRoom, e pubsub.Entry, known *eventStrings, first, check bool) (bool, error) {
	if h.evicted || e.Seq <= h.st.last {
		return false, nil
	}
	ev, bad := decodeRoomEventWith(e.Key, e.Rest, e.Data, known)
	if bad != nil {
		h.st.last = e.Seq
		s.opts.Logger.Warn("skipped a malformed room entry", "room", e.Key, "seq", e.Seq, "err", bad)
		return false, nil
	}
	if check && ev.Prev > h.st.last && h.liveLast < e.Seq {
		return false, errLiveBehind
	}
	if first {
		// Counted before the first change goes out, so that whoever sees
		// a change the re-sync brought sees it in Stats too.
		s.resyncsN.Add(1)
	}
	if ev.Prev > h.st.last {
		// The room's events between its position and this one are no
		// longer in the log (the room went on by more than its history
		// meanwhile): its watchers, all at the room's position, can no
		// longer get every change in order.
		s.endWatchersLocked(h, h.st.last)
	}
	s.applyEventLocked(h, e.Seq, entryTime(e, ev), ev)
	return true, nil
}

// endWatchersLocked ends the watchers of a held room that missed changes
// after pos which the log has discarded since: their subscribers get
// CURSOR_EXPIRED, as a resume from pos would, rather than the changes the
// log still holds as if nothing were missing. Callers hold h.mu.
func (s *Service) endWatchersLocked(h *heldRoom, pos uint64) {
	topic := RoomTopic(h.id)
	if !s.hub.watched(topic) {
		return
	}
	s.opts.Logger.Info("a held room missed events the log has discarded since; ending its subscriptions", "room", h.id, "position", pos)
	s.hub.end(topic, errorf(CodeCursorExpired,
		"room %s went on by more than the history it retains while this replica caught up with it: changes after the subscription's last event were discarded; refetch the room, then subscribe after its messages' resumeCursor", h.id))
}

// reloadRoom reads a held room afresh and puts what the log holds in place
// of what the replica held. Callers hold h.resync.
//
// What subscribers were told cannot be taken back, but the room goes on
// from the log's order: its watchers get the changes of the fresh room
// after the last event both versions share (lastShared), as a resume from
// there would, and none at or below it twice; a watcher registered while
// the room was ahead, whose live changes would start past the room's
// forged position, starts there too. Watchers whose position the fresh
// room no longer covers (expiredBefore) are ended instead, as a resume
// from there would be refused.
func (s *Service) reloadRoom(ctx context.Context, h *heldRoom) error {
	h.mu.Lock()
	if h.evicted {
		h.mu.Unlock()
		return nil
	}
	h.reloading = true
	meta := h.st.room
	h.mu.Unlock()
	fresh, err := s.readRoom(ctx, meta, newEventStrings(meta.ID))

	h.mu.Lock()
	defer h.mu.Unlock()
	h.reloading = false
	if err == nil && !h.evicted {
		s.replaceLocked(h, fresh)
	}
	early := h.early
	h.early = nil
	for _, e := range early {
		s.applyLiveLocked(h, e)
	}
	if err != nil {
		return fmt.Errorf("reload room %s: %w", h.id, err)
	}
	return nil
}

// replaceLocked makes fresh, read from the log, the held room's state, and
// tells its watchers what they have not seen of it. Callers hold h.mu.
func (s *Service) replaceLocked(h *heldRoom, fresh *roomState) {
	old := h.st
	shared := old.lastShared(fresh)
	// What the watchers are told from here on may lie at or below what
	// they were told before: a new generation, which orders after it.
	fresh.generation = old.generation + 1
	h.st = fresh
	s.rooms.bytes.Add(fresh.bytes - old.bytes)
	// A public room has no access to publish, and never had one.
	h.publishAccessLocked()
	// How far the watchers have seen the room as the log holds it: up to
	// the room's position if the log discarded the posts around it (the
	// room went on by more than its history), otherwise, the room having
	// been ahead of the log, up to the last event both versions share.
	seen := shared
	if old.last <= fresh.discardedBefore() {
		seen = max(seen, old.last)
	}
	if topic := RoomTopic(h.id); seen < fresh.expiredBefore() && s.hub.watched(topic) {
		// What they missed is gone: no replay can make up for it. Removed
		// members are told first, so that their subscriptions end as
		// removed ones (FORBIDDEN) rather than as expired ones.
		s.hub.rewind(topic, shared)
		removed, _ := memberChangesSince(old, fresh, shared)
		for _, c := range removed {
			s.hub.publish(topic, c)
		}
		s.endWatchersLocked(h, seen)
	} else if s.hub.watched(topic) {
		s.hub.rewind(topic, shared)
		removed, added := memberChangesSince(old, fresh, shared)
		changes := append(append(removed, fresh.changesSince(shared)...), added...)
		slices.SortStableFunc(changes, func(a, b Change) int { return cmp.Compare(a.Seq, b.Seq) })
		for _, c := range changes {
			s.hub.publish(topic, c)
		}
	}
	close(h.applied)
	h.applied = make(chan struct{})
}

// memberChangesSince are the member changes of a private room that fresh
// holds and old did not, after shared: additions at their positions, and
// removals, whose events the fresh state keeps no trace of, first (just
// after shared). Without them the room's gate would change without a word
// to its watchers, and a removed member's subscriptions would stay open,
// silent, rather than end.
func memberChangesSince(old, fresh *roomState, shared uint64) (removed, added []Change) {
	if fresh.members == nil {
		return nil, nil // a public room
	}
	for id, was := range old.members {
		// A member the fresh state holds since another position was
		// removed and added again meanwhile: the access old admitted them
		// under is gone, as after a removal.
		if now, still := fresh.members[id]; !still || now.Since != was.Since {
			removed = append(removed, Change{Seq: shared + 1, Generation: fresh.generation, At: time.Now().UTC(), Type: MemberRemoved, Room: fresh.room, UserID: id})
		}
	}
	for id, m := range fresh.members {
		if m.Since > shared {
			added = append(added, Change{Seq: m.Since, Generation: fresh.generation, At: m.JoinedAt, Type: MemberAdded, Room: fresh.room, UserID: id})
		}
	}
	return removed, added
}

// handleLost re-syncs the rooms whose live entries may have been lost. After
// a reconnect that is every room: the watched ones are re-synced, the others
// simply dropped (they are loaded afresh when next used).
func (s *Service) handleLost() {
	all, keys := s.live.TakeLost()
	// Rooms whose partition elected a leader may lack an entry that was
	// never republished (see pubsub.Live.TakeUnconfirmed): each is asked
	// about with one request, paced, and repaired only if it is behind.
	unconfirmed := s.live.TakeUnconfirmed()
	now := time.Now()
	if !all {
		for _, id := range keys {
			s.resyncer.schedule(id, now)
		}
		for i, id := range unconfirmed {
			s.resyncer.scheduleProbe(id, now.Add(time.Duration(i)*probePace))
		}
		return
	}
	s.rooms.mu.Lock()
	var watched []string
	for id, h := range s.rooms.held {
		if h.refs == 0 {
			s.dropLocked(h)
		} else {
			watched = append(watched, id)
		}
	}
	s.rooms.mu.Unlock()
	for _, id := range watched {
		s.resyncer.schedule(id, now)
	}
}

// evictOverBudget evicts idle rooms, least recently used first, while the
// rooms held exceed the budget.
func (s *Service) evictOverBudget() {
	if s.rooms.bytes.Load() <= s.opts.RoomCache {
		return
	}
	s.rooms.mu.Lock()
	defer s.rooms.mu.Unlock()
	for s.rooms.bytes.Load() > s.opts.RoomCache {
		oldest := s.rooms.idle.Front()
		if oldest == nil {
			return // everything held is in use
		}
		s.dropLocked(oldest.Value.(*heldRoom))
		s.evictions.Add(1)
	}
}

// dropLocked stops holding an idle room. Callers hold s.rooms.mu.
func (s *Service) dropLocked(h *heldRoom) {
	if h.elem != nil {
		s.rooms.idle.Remove(h.elem)
		h.elem = nil
	}
	delete(s.rooms.held, h.id)
	s.live.Remove(h.id)
	h.mu.Lock()
	h.evicted = true
	if h.st != nil {
		s.rooms.bytes.Add(-h.st.bytes)
	}
	h.mu.Unlock()
}

// reachLog waits until the held room has applied every entry the log
// holds for it now, and reports whether the room has moved past judged,
// its position when a refusal was judged. A refusal judged against the
// room as this replica holds it may only say that the replica is behind:
// a message posted, a member added or an edit made a moment ago through
// another replica, whose answer the client has had already (its next
// request may reach any replica). Such a refusal is confirmed here before
// it is answered: one request to the log, no consumer.
func (s *Service) reachLog(ctx context.Context, h *heldRoom, judged uint64) bool {
	h.mu.Lock()
	moved := h.st.last > judged
	h.mu.Unlock()
	if moved {
		return true // applied something since: judge again
	}
	last, err := s.log.KeyLastSeq(ctx, h.id)
	if err != nil {
		return false // the answer is left to what this replica holds
	}
	if last > judged && s.waitApplied(ctx, h, last) != nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st.last > judged
}

// withRoomConfirmed is withRoom for a read whose negative answer (read
// returns false: not a member, no such message) may come from a replica
// behind the log: it is read again once the room has reached the log.
func (s *Service) withRoomConfirmed(ctx context.Context, roomID string, read func(*roomState) bool) error {
	h, err := s.acquire(ctx, roomID, waitBrief)
	if err != nil {
		return err
	}
	defer s.release(h)
	readLocked := func() (bool, uint64) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return read(h.st), h.st.last
	}
	if ok, at := readLocked(); !ok {
		// A query's wait, like a command's (only now a timer: most
		// answers need no confirming).
		ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
		defer cancel()
		if s.reachLog(ctx, h, at) {
			readLocked()
		}
	}
	return nil
}

// waitApplied waits until the held room has applied seq. An entry that does
// not arrive live soon is read from the log.
func (s *Service) waitApplied(ctx context.Context, h *heldRoom, seq uint64) error {
	nudge := time.NewTimer(liveGrace)
	defer nudge.Stop()
	for {
		h.mu.Lock()
		reached, wake := h.st.last >= seq, h.applied
		h.mu.Unlock()
		if reached {
			return nil
		}
		select {
		case <-wake:
		case <-nudge.C:
			s.resyncer.schedule(h.id, time.Now())
			nudge.Reset(liveGrace)
		case <-ctx.Done():
			return errorf(CodeUnavailable,
				"the event was stored (sequence %d) but this replica has not applied it yet; retry the read shortly", seq)
		}
	}
}

// confirmDelay is how long after a live entry at or below a room's position
// the log is asked to confirm that position: such entries come in bursts
// after every read of the log, and one re-read covers a burst.
const confirmDelay = time.Second

// liveGrace is how long a replica waits for an entry it knows was stored to
// arrive live before it reads it from the log.
const liveGrace = 200 * time.Millisecond

// maxCheckDeferrals bounds how many times in a row a check re-read leaves a
// room to a live chain that is behind the log (see resyncRoom), each time
// for confirmDelay: a live chain that has not caught up by then is taken
// for one that lost entries.
const maxCheckDeferrals = 10

// resyncer re-reads rooms from the log, each when it is due, one at a time,
// the earliest due first.
type resyncer struct {
	mu    sync.Mutex
	due   map[string]*dueReread // by room
	queue rereadQueue           // the same re-reads, earliest first
	wake  chan struct{}
}

// reread is a room's next re-read.
type reread struct {
	at time.Time
	// check: nothing is known to be missing (see resyncRoom); any other
	// re-read asked for the room makes it a repair.
	check bool
	// deferred counts the times in a row a check left the room to its
	// live chain.
	deferred int
	// probe: a repair only if the log's last entry of the room is past the
	// room's (see resyncRoom); any other re-read asked for the room
	// replaces it.
	probe bool
}

// dueReread is a room's re-read in the resyncer's queue.
type dueReread struct {
	reread
	room  string
	index int // in the queue
}

// rereadQueue is a min-heap (container/heap) of re-reads by time, so that
// picking the next costs O(log n) however many rooms are due: a leader
// election has every room held in its partition probed, 2 ms apart, and a
// scan of them all for each pick would cost O(n²).
type rereadQueue []*dueReread

func (q rereadQueue) Len() int           { return len(q) }
func (q rereadQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q rereadQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *rereadQueue) Push(x any) {
	d := x.(*dueReread)
	d.index = len(*q)
	*q = append(*q, d)
}
func (q *rereadQueue) Pop() any {
	old := *q
	d := old[len(old)-1]
	old[len(old)-1] = nil // not kept alive by the backing array
	*q = old[:len(old)-1]
	return d
}

func newResyncer() *resyncer {
	return &resyncer{due: make(map[string]*dueReread), wake: make(chan struct{}, 1)}
}

// schedule asks for the room to be repaired from the log at at, or earlier
// if a re-read is due earlier already.
func (r *resyncer) schedule(roomID string, at time.Time) {
	r.add(roomID, reread{at: at})
}

// scheduleCheck asks for the room's position to be checked against the log
// at at (see resyncRoom), or earlier if a re-read is due earlier already.
func (r *resyncer) scheduleCheck(roomID string, at time.Time) {
	r.add(roomID, reread{at: at, check: true})
}

// scheduleProbe asks for the room to be repaired at at if the log holds an
// entry past its position (see resyncRoom), unless another re-read is due.
func (r *resyncer) scheduleProbe(roomID string, at time.Time) {
	r.add(roomID, reread{at: at, probe: true})
}

// add merges next into the room's due re-read: the earlier time, a repair
// if either is one, a probe only if both are.
func (r *resyncer) add(roomID string, next reread) {
	r.mu.Lock()
	if d, ok := r.due[roomID]; ok {
		d.reread = mergeRereads(d.reread, next)
		heap.Fix(&r.queue, d.index)
	} else {
		d := &dueReread{reread: next, room: roomID}
		r.due[roomID] = d
		heap.Push(&r.queue, d)
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// mergeRereads is the one re-read that does what old and next ask for.
func mergeRereads(old, next reread) reread {
	switch {
	case next.probe:
		next.check, next.deferred, next.probe = old.check, old.deferred, old.probe
	case !old.probe:
		next.check = old.check && next.check
		next.deferred = max(old.deferred, next.deferred)
	}
	if old.at.Before(next.at) {
		next.at = old.at
	}
	return next
}

// run re-reads due rooms until ctx ends; a failed re-read is retried a
// second later, and a check that left the room to its live chain
// confirmDelay later.
func (r *resyncer) run(ctx context.Context, resync func(context.Context, string) error) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		id, due, wait := r.next()
		if id != "" {
			rctx := ctx
			if due.check && due.deferred < maxCheckDeferrals {
				rctx = context.WithValue(ctx, checkable{}, true)
			}
			if due.probe {
				rctx = context.WithValue(ctx, probing{}, true)
			}
			err := resync(rctx, id)
			switch {
			case err == nil || ctx.Err() != nil:
			case errors.Is(err, errLiveBehind):
				r.add(id, reread{at: time.Now().Add(confirmDelay), check: true, deferred: due.deferred + 1})
			default:
				r.add(id, reread{at: time.Now().Add(time.Second), check: due.check, deferred: due.deferred, probe: due.probe})
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-timer.C:
		}
	}
}

// next returns the room due earliest and its re-read if it is due, or how
// long until it is.
func (r *resyncer) next() (string, reread, time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) == 0 {
		return "", reread{}, time.Hour
	}
	d := r.queue[0]
	if wait := time.Until(d.at); wait > 0 {
		return "", reread{}, wait
	}
	heap.Pop(&r.queue)
	delete(r.due, d.room)
	return d.room, d.reread, 0
}

// publishAccessLocked makes the room's members as they are now what Access
// answers. Callers hold h.mu.
func (h *heldRoom) publishAccessLocked() {
	access := h.st.accessNow()
	if access == nil {
		return
	}
	h.access.Store(&access)
}

// Access reports whether userID is a member of the held private room, and
// the position of the event that made them one (0 for its creator). It
// takes no lock and allocates nothing, so a shared execution may ask it for
// every subscriber of every event (it makes *heldRoom a Gate).
func (h *heldRoom) Access(userID string) (since uint64, ok bool) {
	access := h.access.Load()
	if access == nil {
		return 0, false
	}
	since, ok = (*access)[userID]
	return since, ok
}

// roomGate is a held private room's Gate for its watchers, which can also
// confirm a user it does not know as a member (auth.Confirmer): this
// replica may not have applied their addition yet, so the room reads the
// rest of its entries from the log, as a watch with a viewer admits them.
type roomGate struct {
	s *Service
	h *heldRoom
}

func (g roomGate) Access(userID string) (since uint64, ok bool) { return g.h.Access(userID) }

// Denial is the refusal of a subscriber who is not a member (auth.Denier),
// the one a query or a mutation of the room gets.
func (g roomGate) Denial() string { return "forbidden: you are not a member of room " + g.h.id }

// Confirm re-reads the room from the log unless userID is a member already.
func (g roomGate) Confirm(ctx context.Context, userID string) {
	_ = g.s.admit(ctx, g.h, userID) // a failed re-read leaves Access as it was
}

// Gate tells who may receive a private room's changes: its members, each
// from the position at which they joined. It has the method of auth.Gate,
// the seam through which the server's shared executions ask it.
type Gate interface {
	Access(userID string) (since uint64, ok bool)
}
