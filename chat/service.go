package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// EventLog is the durable, partitioned log the domain is built on;
// *pubsub.Log implements it. Rooms are its keys.
type EventLog interface {
	AddToDirectory(ctx context.Context, key string, data []byte) (pubsub.AppendResult, error)
	FollowDirectory(ctx context.Context, fromSeq uint64, fn func(pubsub.Entry) error) error
	DirectoryLastSeq(ctx context.Context) (uint64, error)
	AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error)
	ReadKey(ctx context.Context, key string, fromSeq uint64, fn func(pubsub.Entry) error) (uint64, error)
	KeyLastSeq(ctx context.Context, key string) (uint64, error)
	// Available reports whether the log can serve requests now: while it
	// cannot, commands and queries do not wait for a room to load.
	Available() bool
	NewLive(opts pubsub.LiveOptions) *pubsub.Live
	Partitions() int
	RestLastSeq(ctx context.Context, k int, rest string) (uint64, error)
	FollowRest(ctx context.Context, k int, rest string, fromSeq uint64, fn func(pubsub.Entry) error) error
}

// DefaultRoomCache is the default budget of Options.RoomCache.
const DefaultRoomCache = 256 << 20

// Options configures a Service.
type Options struct {
	// History is how many posts each room keeps. It must equal the log's
	// per-subject limit (pubsub.Log.MaxMsgsPerSubject) so that a held room
	// evicts exactly what the log discards, and every replica judges by
	// the same limit; 0 keeps everything. The log's limit does not change
	// under a running replica: pubsub.Open refuses to change it while
	// another replica is alive.
	History int
	// ApplyTimeout bounds how long a command waits for the log to accept
	// its event and for this replica to apply it, and how long loading a
	// room may take (default 5s).
	ApplyTimeout time.Duration
	// MaxTextLength, if positive and below the hard MaxTextLength, is a
	// stricter limit this replica applies to the texts it proposes (rooms
	// judge every event by the hard limit alone, so replicas configured
	// differently still agree).
	MaxTextLength int
	// LoadTimeout bounds how long loading a room may take, retries
	// included, and so how long a new subscription waits for its room when
	// the log is slow to answer (default 30s, at least ApplyTimeout).
	LoadTimeout time.Duration
	// RoomCache is the memory budget, in bytes (an estimate), of the rooms
	// this replica holds. Beyond it, rooms that no local subscriber watches
	// are evicted, least recently used first; a watched room is never
	// evicted. Default DefaultRoomCache.
	RoomCache int64
	// OnRoomLoad, if set, is told how long each room load took.
	OnRoomLoad func(time.Duration)
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Service is the chat domain on one replica. It holds the room directory in
// full, following the log's directory, and holds rooms on demand: a room is
// loaded from its own entries when a query, command or subscription first
// touches it, kept current from live entries of held rooms only, and
// evicted under the RoomCache budget when no local subscriber watches it.
// Commands judge against the held room and append with the room's last
// sequence as the expected one, so each room is judged in its own order,
// identically on every replica.
type Service struct {
	log  EventLog
	opts Options
	hub  *hub

	dirMu      sync.RWMutex
	dir        *directory
	dirApplied chan struct{} // closed and replaced whenever entries are applied

	// members is every private room's members (see memberIndex).
	members *memberIndex

	catchUpTarget uint64 // guarded by dirMu
	caughtUp      atomic.Bool
	status        atomic.Value // string: why not ready
	stage         lifecycle

	rooms    roomCache
	live     *pubsub.Live
	resyncer *resyncer
	// life ends when Run returns; room loads run under it, in goroutines
	// that Run waits for.
	life    context.Context
	endLife context.CancelFunc
	loading sync.WaitGroup

	appliedN  atomic.Uint64
	loadsN    atomic.Uint64
	resyncsN  atomic.Uint64
	evictions atomic.Uint64

	// liveFilter, when set (by tests), drops the live entries it refuses,
	// as a lost message would.
	liveFilter func(pubsub.Entry) bool
}

// ErrServiceStopped is returned by Run on a Service whose Run has returned,
// or begun to stop: a Service runs once (its Live is closed, its room loads
// refused for good), as an http.Server serves once after Shutdown.
var ErrServiceStopped = errors.New("chat: service stopped")

// lifecycle is where a Service is in its single run. It only moves forward:
// not started, running, stopped. Only while it runs does anything apply
// what a command appends, so a command at any other time is refused before
// it appends (see refuseCommand): one atomic load per check.
type lifecycle struct{ phase atomic.Int32 }

const (
	phaseNotStarted int32 = iota
	phaseRunning
	phaseStopped
)

// start moves a Service that has not run yet to running.
func (l *lifecycle) start() error {
	if l.phase.CompareAndSwap(phaseNotStarted, phaseRunning) {
		return nil
	}
	if l.phase.Load() == phaseStopped {
		return ErrServiceStopped
	}
	return errors.New("chat service is already running")
}

// stop marks the Service stopped, for good.
func (l *lifecycle) stop() { l.phase.Store(phaseStopped) }

func (l *lifecycle) stopped() bool { return l.phase.Load() == phaseStopped }

// refuseCommand is why a command may not append now (UNAVAILABLE: nothing
// was stored, retry), or nil while the Service runs. Its caller checks
// right before appending; the stop may still begin between the check and
// the append, and that command gets the answer any command gets whose
// event is not applied in time (OUTCOME_UNKNOWN), never a false one.
func (l *lifecycle) refuseCommand() *Error {
	switch l.phase.Load() {
	case phaseRunning:
		return nil
	case phaseNotStarted:
		return errorf(CodeUnavailable, "the service has not started yet: nothing was stored; retry shortly")
	}
	return errorf(CodeUnavailable, "the service is stopping: nothing was stored; retry shortly")
}

// errServiceStopped is why a stopped Service refuses a new watcher, and
// why those open when it stopped end: nothing reaches them any more.
func errServiceStopped() *Error {
	return errorf(CodeUnavailable, "the service has stopped; subscribe again shortly")
}

// NewService returns a Service over log. Call Run to start it; commands
// are refused (UNAVAILABLE, nothing stored) until then.
func NewService(log EventLog, opts Options) *Service {
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 5 * time.Second
	}
	if opts.LoadTimeout < opts.ApplyTimeout {
		opts.LoadTimeout = max(30*time.Second, opts.ApplyTimeout)
	}
	if opts.RoomCache <= 0 {
		opts.RoomCache = DefaultRoomCache
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{
		log:        log,
		opts:       opts,
		hub:        newHub(),
		dir:        newDirectory(),
		members:    newMemberIndex(log.Partitions(), opts.History),
		dirApplied: make(chan struct{}),
		rooms:      newRoomCache(),
		resyncer:   newResyncer(),
	}
	// Live entries are applied on the Live's own goroutine (see handleLive).
	s.live = log.NewLive(pubsub.LiveOptions{Handle: s.handleLive})
	s.life, s.endLife = context.WithCancel(context.Background())
	s.status.Store("not started")
	return s
}

// Run keeps the replica current until ctx is done: it follows the room
// directory (readiness is false until it has caught up with the
// directory's position at start; no room's messages are replayed), applies
// live entries of held rooms, and re-syncs rooms that missed some. It
// retries after log failures and returns nil when ctx ends, after
// everything it started has stopped. A Service runs once: when ctx ends,
// it stops for good (not ready, commands and new watchers refused with
// UNAVAILABLE, open watchers ended with it), and a later Run returns
// ErrServiceStopped at once.
func (s *Service) Run(ctx context.Context) error {
	if err := s.stage.start(); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.dispatch(ctx)
	}()
	for k := range s.log.Partitions() {
		wg.Go(func() { s.followMembers(ctx, k) })
	}
	wg.Go(func() { s.sweepPendingMembers(ctx) })
	go func() {
		defer wg.Done()
		s.resyncer.run(ctx, s.resyncRoom)
	}()
	defer func() {
		// First, as nothing will follow the directory or re-sync a room
		// from here on: commands append nothing more, readiness fails,
		// no new watcher is made.
		s.stage.stop()
		wg.Wait()
		s.endLife()
		// Queries may still come (a request the HTTP server's shutdown
		// gave up on): they start no load from here on.
		s.rooms.mu.Lock()
		s.rooms.stopping = true
		s.rooms.mu.Unlock()
		s.loading.Wait()
		s.live.Close()
		// Last, once nothing applies or publishes any more: every change
		// applied has reached its watchers, which now end rather than
		// wait for changes that will never come.
		s.hub.close(errServiceStopped())
	}()

	target, err := s.startPosition(ctx)
	if err != nil {
		return nil // ctx ended
	}
	s.markCaughtUpAt(target)
	for backoff := 100 * time.Millisecond; ; {
		from := s.directoryLast() + 1
		err := s.log.FollowDirectory(ctx, from, s.applyDirectory)
		if ctx.Err() != nil {
			return nil
		}
		s.opts.Logger.Warn("following the room directory failed; retrying", "from", from, "err", err, "retry_in", backoff)
		s.status.Store(fmt.Sprintf("following the room directory failed: %v", err))
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// startPosition reads the directory's last sequence, retrying until it can.
func (s *Service) startPosition(ctx context.Context) (uint64, error) {
	s.status.Store("reading the room directory's position")
	target, ok := s.directoryPosition(ctx, "reading the room directory's position failed; retrying")
	if !ok {
		return 0, ctx.Err()
	}
	s.status.Store(fmt.Sprintf("reading the room directory up to sequence %d", target))
	return target, nil
}

// directoryPosition reads the directory's last sequence, retrying with
// back-off (logged as failed) until it can; ok is false once ctx has
// ended.
func (s *Service) directoryPosition(ctx context.Context, failed string) (last uint64, ok bool) {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		readCtx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
		seq, err := s.log.DirectoryLastSeq(readCtx)
		cancel()
		if err == nil {
			return seq, true
		}
		s.opts.Logger.Warn(failed, "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return 0, false
		}
	}
}

func (s *Service) markCaughtUpAt(target uint64) {
	s.dirMu.Lock()
	defer s.dirMu.Unlock()
	if s.dir.last >= target {
		s.caughtUp.Store(true)
		return
	}
	s.catchUpTarget = target
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// applyDirectory folds one directory entry and wakes whoever waits for it.
func (s *Service) applyDirectory(e pubsub.Entry) error {
	s.dirMu.Lock()
	room, err := s.dir.apply(e.Seq, e.Key, e.Data, e.Time)
	if !s.caughtUp.Load() && s.dir.last >= s.catchUpTarget {
		s.caughtUp.Store(true)
	}
	// Published under the lock, so that a roomCreated subscriber resuming
	// from a cursor (WatchAfter) sees each creation once, in order.
	if err == nil && room.ID != "" {
		s.members.roomCreated(room)
		s.hub.publish(RoomsTopic, Change{Seq: e.Seq, At: room.CreatedAt, Type: RoomCreated, Room: room})
	}
	close(s.dirApplied)
	s.dirApplied = make(chan struct{})
	s.dirMu.Unlock()
	s.appliedN.Add(1)
	if err != nil {
		s.opts.Logger.Warn("skipped a directory entry", "seq", e.Seq, "key", e.Key, "err", err)
	}
	return nil
}

func (s *Service) directoryLast() uint64 {
	s.dirMu.RLock()
	defer s.dirMu.RUnlock()
	return s.dir.last
}

// Ready reports whether the room directory has caught up with the log, and
// if not, why; a stopped Service is not ready.
func (s *Service) Ready() (bool, string) {
	if s.stage.stopped() {
		return false, "the service has stopped"
	}
	if s.caughtUp.Load() {
		return true, fmt.Sprintf("room directory applied up to sequence %d; %d rooms held", s.directoryLast(), s.rooms.count())
	}
	return false, s.status.Load().(string)
}

// Applied counts the log entries (directory and held rooms') this replica
// has applied since it started.
func (s *Service) Applied() uint64 { return s.appliedN.Load() }

// Stats describe what the replica holds, for metrics.
type Stats struct {
	RoomsHeld         int
	BytesHeld         int64 // estimated
	Loads             uint64
	Evictions         uint64
	Resyncs           uint64
	LiveSubscriptions int
}

// Stats returns what the replica holds now.
func (s *Service) Stats() Stats {
	return Stats{
		RoomsHeld:         s.rooms.count(),
		BytesHeld:         s.rooms.bytes.Load(),
		Loads:             s.loadsN.Load(),
		Evictions:         s.evictions.Load(),
		Resyncs:           s.resyncsN.Load(),
		LiveSubscriptions: s.live.Subscriptions(),
	}
}

// waitDirectory waits until the directory has applied seq.
func (s *Service) waitDirectory(ctx context.Context, seq uint64) error {
	for {
		s.dirMu.RLock()
		reached, wake := s.dir.last >= seq, s.dirApplied
		s.dirMu.RUnlock()
		if reached {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return errorf(CodeUnavailable,
				"this replica has not yet caught up with the room directory (position %d); retry shortly", seq)
		}
	}
}

// RoomInfo returns a room's metadata as this replica's directory has it.
func (s *Service) RoomInfo(id string) (Room, bool) {
	s.dirMu.RLock()
	defer s.dirMu.RUnlock()
	return s.dir.room(id)
}

// LookupRoom returns a room's metadata. A room this replica's directory
// does not know yet (created a moment ago elsewhere) is looked for again
// once the directory has caught up with the log.
func (s *Service) LookupRoom(ctx context.Context, id string) (Room, bool, error) {
	if room, ok := s.RoomInfo(id); ok || !validID(id) {
		return room, ok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	last, err := s.log.DirectoryLastSeq(ctx)
	if err != nil {
		s.opts.Logger.Warn("reading the room directory's position failed", "err", err)
		return Room{}, false, errorf(CodeUnavailable, "the event log is unavailable; retry later")
	}
	if err := s.waitDirectory(ctx, last); err != nil {
		return Room{}, false, err
	}
	room, ok := s.RoomInfo(id)
	return room, ok, nil
}

// Rooms returns a page of the rooms viewer may see, in creation order:
// every public room, and the private rooms viewer is a member of (none
// for an anonymous viewer, ""), as the memberIndex has them.
func (s *Service) Rooms(ctx context.Context, viewer string, w Window) (Page[Room], error) {
	s.dirMu.RLock()
	public, private := s.dir.public, s.dir.private // entries are never changed; appends go past len
	last := s.dir.last
	s.dirMu.RUnlock()
	mine, err := s.visiblePrivateRooms(ctx, viewer, private, last)
	if err != nil {
		return Page[Room]{}, err
	}
	page := mergedPage(public, mine, w)
	page.Last = lastVisible(public, mine, last)
	return page, nil
}

// lastVisible is the directory position a room list hands on (its
// resumeCursor): that of the newest room in public or mine, both in
// creation order and read at last, or 0 when there is none. The
// directory's own last position would count the private rooms the viewer
// may not see: a non-member polling the list would learn when, and how
// many, were created. No room the viewer may see lies after it up to
// last, so roomCreated after it misses nothing.
func lastVisible(public, mine []*Room, last uint64) uint64 {
	var newest uint64
	for _, rooms := range [][]*Room{public, mine} {
		if n := len(rooms); n > 0 {
			newest = max(newest, rooms[n-1].Seq)
		}
	}
	return min(newest, last)
}

// isMember reports whether viewer is a member of a private room. confirm
// asks that a "no" be confirmed with the log (withRoomConfirmed): one
// request, worth it for a read of the room that the viewer would be
// refused, not for a pass over every private room (visiblePrivateRooms).
func (s *Service) isMember(ctx context.Context, roomID, viewer string, confirm bool) (bool, error) {
	if viewer == "" {
		return false, nil
	}
	var member bool
	read := func(rs *roomState) bool {
		member = rs.isMember(viewer)
		return member
	}
	if !confirm {
		return member, s.withRoom(ctx, roomID, func(rs *roomState) { read(rs) })
	}
	err := s.withRoomConfirmed(ctx, roomID, read)
	return member, err
}

// VisibleRoom returns a room's metadata if viewer may see it: ok is false
// when the room does not exist, and a private room of which viewer ("" for
// anonymous) is not a member is refused with FORBIDDEN, which tells nothing
// more of it.
func (s *Service) VisibleRoom(ctx context.Context, viewer, roomID string) (Room, bool, error) {
	room, ok, err := s.LookupRoom(ctx, roomID)
	if err != nil || !ok || !room.Private {
		return room, ok, err
	}
	member, err := s.isMember(ctx, roomID, viewer, true)
	switch {
	case err != nil:
		return Room{}, false, err
	case !member:
		return Room{}, false, errNotMember(roomID)
	}
	return room, true, nil
}

// CanSee reports whether viewer ("" when anonymous) may see what a room
// holds (its messages, members and counters), loading the room if needed:
// everyone may see a public room's, only members a private room's.
func (s *Service) CanSee(ctx context.Context, viewer, roomID string) (bool, error) {
	var sees bool
	err := s.withRoomConfirmed(ctx, roomID, func(rs *roomState) bool {
		sees = rs.isMember(viewer)
		return sees
	})
	return sees, err
}

// Admits is CanSee for a subscriber who resumes: this replica may be behind
// the log, so a viewer it does not know as a member of a private room is
// looked for again once the room has read the rest of its entries from the
// log (a member added a moment ago through another replica), as
// WatchAfterFor admits them. It waits for the room as a subscription does
// (WatchAfterFor, which follows it): as long as the room's load goes on.
func (s *Service) Admits(ctx context.Context, viewer, roomID string) (bool, error) {
	h, err := s.acquire(ctx, roomID, waitLoad)
	if err != nil {
		return false, err
	}
	defer s.release(h)
	return s.admit(ctx, h, viewer) == nil, nil
}

// Members returns a page of a private room's members in the order they
// joined (none for a public room), loading the room if needed. Callers
// check that the viewer may see the room.
func (s *Service) Members(ctx context.Context, roomID string, w Window) (Page[Member], error) {
	var page Page[Member]
	err := s.withRoom(ctx, roomID, func(rs *roomState) {
		if rs.room.Private {
			page = rs.membersPage(w)
		}
	})
	return page, err
}

// RoomStats returns a room's counters, loading the room if needed.
func (s *Service) RoomStats(ctx context.Context, roomID string) (RoomStats, error) {
	var stats RoomStats
	err := s.withRoom(ctx, roomID, func(rs *roomState) { stats = rs.stats })
	return stats, err
}

// Messages returns a page of a room's retained messages in posting order,
// loading the room if needed. A page after a cursor whose following posts
// the log has discarded is refused with CURSOR_EXPIRED.
func (s *Service) Messages(ctx context.Context, roomID string, w Window) (Page[Message], error) {
	var (
		page Page[Message]
		bad  *Error
	)
	err := s.withRoom(ctx, roomID, func(rs *roomState) {
		if bad = rs.checkPage(w); bad == nil {
			page = rs.page(w)
		}
	})
	if err == nil && bad != nil {
		return Page[Message]{}, bad
	}
	return page, err
}

// Message returns a retained message by ID, loading its room if needed. A
// message of a private room of which viewer ("" for anonymous) is not a
// member is refused with FORBIDDEN.
func (s *Service) Message(ctx context.Context, viewer, id string) (Message, bool, error) {
	roomID, ok := roomOfMessage(id)
	if !ok {
		return Message{}, false, nil
	}
	var (
		msg           Message
		found, member bool
	)
	err := s.withRoomConfirmed(ctx, roomID, func(rs *roomState) bool {
		if member = rs.isMember(viewer); member {
			msg, found = rs.message(id)
		}
		return found
	})
	if err == nil && !member {
		return Message{}, false, errNotMember(roomID)
	}
	var notFound *Error
	if errors.As(err, &notFound) && notFound.Code == CodeNotFound {
		return Message{}, false, nil
	}
	return msg, found, err
}
