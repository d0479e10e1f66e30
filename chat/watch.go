package chat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// Change is one accepted event as live subscribers see it: the event and
// snapshots of what it changed, taken right after it was applied.
type Change struct {
	// Seq is the event's log sequence (the subscription cursor).
	Seq uint64
	// Generation counts the times this replica re-read the held room from
	// the log and took its watchers back to an earlier position (see
	// replaceLocked): Seq orders the changes of one generation, and a
	// later generation's change comes after every change of an earlier
	// one, whatever its Seq.
	Generation uint64
	// At is when the log stored the event.
	At   time.Time
	Type EventType
	Room Room
	// Message is nil for RoomCreated and member events.
	Message *Message
	// UserID is the member a member event added or removed.
	UserID string
}

// RoomTopic names the changes of one room: its messages' posts, edits,
// deletions and reactions.
func RoomTopic(roomID string) string { return "room." + roomID }

// RoomsTopic names the creation of rooms.
const RoomsTopic = "rooms"

// ErrWatcherClosed is returned by Watcher.Next after Close.
var ErrWatcherClosed = errors.New("chat: watcher closed")

// Watcher receives the changes of one topic, in log order, from the moment
// it was created. Its mailbox is unbounded so the log follower never waits
// for a subscriber and never drops a change; it is drained by one shared
// execution per distinct subscription, which never blocks on a socket, so
// it only grows while that execution is starved of CPU.
type Watcher struct {
	hub   *hub
	topic string

	mu sync.Mutex
	// skipUpTo: changes at or below it were replayed already. Set before
	// the watcher is registered; only rewind lowers it.
	skipUpTo uint64
	// resumed: a watcher made after a cursor, whose live changes begin
	// after startPos in generation startGen (see CaughtUp). Set before it
	// is registered, never changed.
	resumed  bool
	startPos uint64
	startGen uint64
	pending  []Change
	wake     chan struct{} // capacity 1: a change may be pending
	closed   bool
	offer    func(Change) bool // see SetOffer
	// release, if set, lets go of what the watcher holds (its room); run
	// once, by Close.
	release func()
	// gate is the room's, for a private room's topic; nil otherwise.
	gate Gate
	// queued: changes go to pending, not to offer, until the consumer asks
	// for more with pending empty: it may still be handing over the last
	// change Next returned, and an offer now would overtake it.
	queued bool
	// ended is why the watcher takes no more changes (see end): Next
	// returns it once pending is drained.
	ended *Error
}

// SetOffer gives the watcher a way to hand a change to its consumer without
// waiting: while nothing is queued, each change is offered first and queued
// for Next only when offer returns false. offer runs on the goroutine that
// applies the log, under the watcher's lock, so it must not block, and it
// must accept changes in order for as long as the watcher is open (after
// Close it is never called again). Changes offered and changes returned by
// Next together are every change, each once, in log order, provided the
// consumer hands over what Next returned before calling Next again.
func (w *Watcher) SetOffer(offer func(Change) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.offer = offer
}

// CaughtUp reports, for a watcher made after a cursor, whether it has
// nothing to replay that keep accepts (nil: any change), and then the
// position (and generation) after which its live changes lie: its
// subscriber has seen everything up to there. A subscriber that takes
// only some changes (messagePosted takes no reaction or edit) has
// nothing to replay when none of the backlog is of those.
func (w *Watcher) CaughtUp(keep func(*Change) bool) (pos, generation uint64, ok bool) {
	if !w.resumed {
		return 0, 0, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range w.pending {
		// Those after the start are live: the shared execution has them.
		if c := &w.pending[i]; c.Generation == w.startGen && c.Seq <= w.startPos && (keep == nil || keep(c)) {
			return 0, 0, false
		}
	}
	return w.startPos, w.startGen, true
}

// Gate returns who may receive the watcher's changes: nil for a topic
// everyone may watch; a private room's members otherwise. The gate reads
// the room as this replica applies it, so a member removed is refused from
// the moment the removal is applied, before the change that announces it
// (a MemberRemoved change) reaches the watcher.
func (w *Watcher) Gate() Gate { return w.gate }

// Next returns the next change, waiting for one until ctx is done. A
// watcher whose room can no longer give it every change in order (the log
// discarded some it missed) returns a *Error with CodeCursorExpired once
// it has returned the changes before them: its subscriber must refetch.
func (w *Watcher) Next(ctx context.Context) (Change, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return Change{}, ErrWatcherClosed
		}
		if len(w.pending) > 0 {
			c := w.pending[0]
			w.pending[0] = Change{}
			w.pending = w.pending[1:]
			if len(w.pending) == 0 {
				w.pending = nil // let the backing array go
			}
			w.mu.Unlock()
			return c, nil
		}
		if w.ended != nil {
			w.mu.Unlock()
			return Change{}, w.ended
		}
		w.queued = false // everything Next returned has been handed over
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
			return Change{}, ctx.Err()
		}
	}
}

// Close stops the watcher; Next returns ErrWatcherClosed from then on.
func (w *Watcher) Close() {
	w.hub.remove(w)
	w.mu.Lock()
	release := w.release
	w.release = nil
	w.closed = true
	w.pending = nil
	w.offer = nil
	w.mu.Unlock()
	w.signal()
	if release != nil {
		release()
	}
}

func (w *Watcher) deliver(c Change) {
	w.mu.Lock()
	if w.closed || w.ended != nil || c.Seq <= w.skipUpTo {
		w.mu.Unlock()
		return
	}
	if !w.queued && w.offer != nil && w.offer(c) {
		w.mu.Unlock()
		return
	}
	w.pending = append(w.pending, c)
	w.queued = true
	w.mu.Unlock()
	w.signal()
}

// rewind makes the watcher take changes after pos, should it skip more:
// what it skipped was a position the log does not hold (see reloadRoom).
func (w *Watcher) rewind(pos uint64) {
	w.mu.Lock()
	w.skipUpTo = min(w.skipUpTo, pos)
	w.mu.Unlock()
}

// end makes the watcher take no more changes: Next returns why once it
// has returned those already pending. The first reason stays.
func (w *Watcher) end(why *Error) {
	w.mu.Lock()
	if w.ended == nil {
		w.ended = why
	}
	w.offer = nil
	w.mu.Unlock()
	w.signal()
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// hub maps topics to their watchers.
type hub struct {
	mu       sync.RWMutex
	watchers map[string]map[*Watcher]struct{}
	// closed, once set (see close), is why the hub ends every watcher and
	// registers none.
	closed *Error
}

func newHub() *hub { return &hub{watchers: make(map[string]map[*Watcher]struct{})} }

// addAfter registers a watcher that first yields replay and then the live
// changes above skipUpTo. On a closed hub the watcher is not registered but
// ended at once: Next returns why the hub closed after the replay.
func (h *hub) addAfter(topic string, skipUpTo uint64, replay []Change, gate Gate) *Watcher {
	w := &Watcher{hub: h, topic: topic, skipUpTo: skipUpTo, pending: replay, queued: len(replay) > 0, wake: make(chan struct{}, 1), gate: gate}
	if len(replay) > 0 {
		w.wake <- struct{}{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed != nil {
		w.ended = h.closed // not shared yet: no lock needed
		return w
	}
	set := h.watchers[topic]
	if set == nil {
		set = make(map[*Watcher]struct{})
		h.watchers[topic] = set
	}
	set[w] = struct{}{}
	return w
}

// close ends every watcher with why (see Watcher.end), and those added
// from then on (see addAfter): decided under the write lock, so that no
// watcher added concurrently is left open.
func (h *hub) close(why *Error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed != nil {
		return
	}
	h.closed = why
	for _, set := range h.watchers {
		for w := range set {
			w.end(why)
		}
	}
}

func (h *hub) remove(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.watchers[w.topic]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(h.watchers, w.topic)
		}
	}
}

// rewind makes every watcher of topic take the changes after pos.
func (h *hub) rewind(topic string, pos uint64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for w := range h.watchers[topic] {
		w.rewind(pos)
	}
}

// end ends every watcher of topic (see Watcher.end).
func (h *hub) end(topic string, why *Error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for w := range h.watchers[topic] {
		w.end(why)
	}
}

func (h *hub) watched(topic string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.watchers[topic]) > 0
}

func (h *hub) publish(topic string, c Change) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for w := range h.watchers[topic] {
		w.deliver(c)
	}
}

// Watch returns a watcher of topic (RoomTopic or RoomsTopic) that receives
// every change applied after this call. A room's topic loads the room if
// needed and holds it until the watcher is closed. Close it when done.
func (s *Service) Watch(ctx context.Context, topic string) (*Watcher, error) {
	return s.watch(ctx, topic, nil, nil)
}

// WatchAfter is Watch for a subscriber resuming from a cursor: the watcher
// first yields every accepted change of topic after log position after,
// then continues live, with no gap and no duplicate at the seam. A
// position this replica has not reached yet is waited for (another replica
// may be ahead), bounded by ctx and the apply timeout; one past the last
// event the log holds of the room is refused with BAD_USER_INPUT.
func (s *Service) WatchAfter(ctx context.Context, topic string, after uint64) (*Watcher, error) {
	return s.watch(ctx, topic, &after, nil)
}

// WatchAfterFor is WatchAfter for one subscriber, viewer ("" when
// anonymous). A private room's watcher needs viewer to be a member, and is
// refused with FORBIDDEN before anything else is said of the cursor: an
// expired cursor or one ahead of the room would otherwise tell a
// non-member how far the room has gone. A member's replay starts no
// earlier than their joining, which is all their membership covers (the
// watcher's gate keeps anything earlier from them anyway; this spares
// replaying it). Only a watcher with a single consumer may be made this
// way.
func (s *Service) WatchAfterFor(ctx context.Context, topic string, after uint64, viewer string) (*Watcher, error) {
	return s.watch(ctx, topic, &after, &viewer)
}

// watch makes a watcher of topic; after, if set, is the position to replay
// from, and viewer, if set, the one subscriber a private room's watcher
// must admit.
func (s *Service) watch(ctx context.Context, topic string, after *uint64, viewer *string) (*Watcher, error) {
	// Refused at once rather than after a load (of a room it would hold
	// no more) or a wait for the directory; a watcher added while the stop
	// begins is ended by the hub.
	if s.stage.stopped() {
		return nil, errServiceStopped()
	}
	// A subscriber waits for its room as long as a load may take: failing
	// it while a NATS cluster elects a leader would end its subscription.
	if topic == RoomsTopic {
		ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
		defer cancel()
		return s.watchRooms(ctx, after)
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.LoadTimeout)
	defer cancel()
	roomID, ok := strings.CutPrefix(topic, RoomTopic(""))
	if !ok {
		return nil, errorf(CodeInternal, "unknown topic %q", topic)
	}
	h, err := s.acquire(ctx, roomID, waitLoad)
	if err != nil {
		return nil, err
	}
	from := ""
	if viewer != nil {
		from = *viewer
		if err := s.admit(ctx, h, from); err != nil {
			s.release(h)
			return nil, err
		}
	}
	if after != nil {
		if err := s.reach(ctx, h, *after); err != nil {
			s.release(h)
			return nil, err
		}
	}
	// Changes are published under h.mu, so the replay ends exactly at the
	// room's last event and every later change reaches the watcher.
	w, bad := s.registerRoomWatcher(h, topic, after, from)
	if bad != nil {
		s.release(h) // not under h.mu: releasing may evict the room
		return nil, bad
	}
	w.release = func() { s.release(h) }
	return w, nil
}

// admit refuses viewer ("" when anonymous) a held private room they are
// not a member of. This replica may be behind the log (a member added a
// moment ago through another replica): a viewer it does not know as a
// member is looked for again once the room has read the rest of its
// entries from the log, whatever the cursor, so that neither the answer
// nor its delay depends on how far the room has gone.
func (s *Service) admit(ctx context.Context, h *heldRoom, viewer string) error {
	member := func() (private, ok bool) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.st.room.Private, h.st.isMember(viewer)
	}
	private, ok := member()
	if !private || ok {
		return nil
	}
	if viewer != "" {
		ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
		defer cancel()
		// A failed read leaves the answer to what this replica holds.
		_ = s.resyncRoom(ctx, h.id)
		if _, ok = member(); ok {
			return nil
		}
	}
	return errNotMember(h.id)
}

func (s *Service) registerRoomWatcher(h *heldRoom, topic string, after *uint64, viewer string) (*Watcher, *Error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var replay []Change
	if after != nil {
		from := *after
		if m := h.st.members[viewer]; m != nil {
			from = max(from, m.Since)
		}
		var bad *Error
		if replay, bad = h.st.changesAfter(from); bad != nil {
			return nil, bad
		}
	}
	var gate Gate
	if h.st.room.Private {
		gate = roomGate{s, h}
	}
	w := s.hub.addAfter(topic, h.st.last, replay, gate)
	if after != nil {
		w.resumed, w.startPos, w.startGen = true, h.st.last, h.st.generation
	}
	return w, nil
}

// reach waits until the held room has applied position after (a cursor from
// a replica that is ahead). An entry that does not arrive live soon is read
// from the log; a position still not reached once the room has read every
// entry the log holds of it lies past the room's last event, so the cursor
// is not one of this room's (forged, or another room's): waiting longer
// could only end in UNAVAILABLE, which a client retries for ever.
func (s *Service) reach(ctx context.Context, h *heldRoom, after uint64) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	live, cancelLive := context.WithTimeout(ctx, liveGrace)
	err := s.waitApplied(live, h, after)
	cancelLive()
	if err == nil {
		return nil
	}
	if err := s.resyncRoom(ctx, h.id); err != nil {
		// The log cannot tell now: wait for the position, live or
		// through the re-syncer, as long as a command would.
		if err := s.waitApplied(ctx, h, after); err != nil {
			return errorf(CodeUnavailable,
				"this replica has not yet caught up with the cursor (position %d); retry shortly", after)
		}
		return nil
	}
	h.mu.Lock()
	reached := h.st.last >= after
	h.mu.Unlock()
	if !reached {
		return errorf(CodeBadUserInput,
			"the cursor is past the last event of room %s: it is not one of this room's; subscribe without it", h.id)
	}
	return nil
}

func (s *Service) watchRooms(ctx context.Context, after *uint64) (*Watcher, error) {
	if after != nil {
		if err := s.reachDirectory(ctx, *after); err != nil {
			return nil, err
		}
	}
	s.dirMu.RLock()
	defer s.dirMu.RUnlock()
	var replay []Change
	if after != nil {
		replay = s.dir.createdAfter(*after)
	}
	return s.hub.addAfter(RoomsTopic, s.dir.last, replay, nil), nil
}

// reachDirectory waits until the directory has applied position after,
// which must not lie past the log's directory: such a cursor is no room
// creation's, and waiting for it could only end in UNAVAILABLE.
func (s *Service) reachDirectory(ctx context.Context, after uint64) error {
	if s.directoryLast() >= after {
		return nil
	}
	last, err := s.log.DirectoryLastSeq(ctx)
	if err != nil {
		// The log cannot tell now: wait for the position as a command would.
		s.opts.Logger.Warn("reading the room directory's position failed", "err", err)
		return s.waitDirectory(ctx, after)
	}
	if after > last {
		return errorf(CodeBadUserInput,
			"the cursor is past the room directory's last entry: it is not a room creation's; subscribe without it")
	}
	return s.waitDirectory(ctx, after)
}
