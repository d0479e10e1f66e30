package chat

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// memberIndex holds, on every replica, the members of every private room,
// so that listing the rooms a viewer may see loads no room. It is to
// membership what the directory is to rooms: it follows each partition's
// member subjects (Event.rest: "member.<user hash>") from the start, and
// folds them per room with the rules the room itself judges them by
// (judgeMemberEvent), so it agrees with every held room. It costs
// O(memberships), never O(messages).
//
// A room's member events and its directory entry live in different
// streams, so an event may arrive before the directory has the room: it
// waits in pending until roomCreated. The log is shared, though, and
// anything with access to NATS may store member events of a room that is
// never created (or is public, and has no members): sweepPendingMembers
// drops those once the directory has caught up past where such a room
// would have had to be, so pending holds only what arrived lately. Until
// every partition has been read up to its position when the replica
// started, the index answers nothing (roomsOf's ok is false) and Rooms
// loads rooms instead.
type memberIndex struct {
	mu      sync.Mutex
	rooms   map[string]map[string]uint64 // private room → member → since
	pending map[string]*pendingRoom      // room → its events before roomCreated
	// sweeps counts the sweeps of pending begun (beginSweep); a pending
	// room records the count its first event found.
	sweeps uint64
	// waiting is signalled (capacity 1) when an event joins pending.
	waiting chan struct{}
	byUser  map[string]map[string]struct{}
	last    map[string]uint64 // room → the position of its last member event folded
	// changes counts each user's member events folded, by room, removed
	// users' included; history is the log's per-subject limit (see
	// checkMemberChanges).
	changes map[string]map[string]int
	history int
	folded  chan struct{} // closed and replaced whenever an event is folded

	behind atomic.Int64 // partitions not yet caught up with their start position
}

// memberRest matches the rest of every member event (Event.rest).
const memberRest = "member.>"

type memberEntry struct {
	seq uint64
	e   Event
}

// pendingRoom is the member events of a room the directory has not
// created, in log order.
type pendingRoom struct {
	events []memberEntry
	sweep  uint64 // memberIndex.sweeps when the first one arrived
}

func newMemberIndex(partitions, history int) *memberIndex {
	x := &memberIndex{
		history: history,
		changes: make(map[string]map[string]int),
		rooms:   make(map[string]map[string]uint64),
		pending: make(map[string]*pendingRoom),
		waiting: make(chan struct{}, 1),
		byUser:  make(map[string]map[string]struct{}),
		last:    make(map[string]uint64),
		folded:  make(chan struct{}),
	}
	x.behind.Store(int64(partitions))
	return x
}

// roomCreated starts the members of a private room the directory applied:
// its creator, and the events that came before the room.
func (x *memberIndex) roomCreated(room Room) {
	if !room.Private {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rooms[room.ID] != nil {
		return
	}
	x.rooms[room.ID] = map[string]uint64{room.CreatedBy.ID: 0}
	x.changes[room.ID] = make(map[string]int)
	x.link(room.CreatedBy.ID, room.ID)
	if p := x.pending[room.ID]; p != nil {
		for _, m := range p.events {
			x.applyLocked(m.seq, m.e)
		}
		delete(x.pending, room.ID)
	}
}

// apply folds one entry of a partition's member subjects.
func (x *memberIndex) apply(e pubsub.Entry) error {
	ev, bad := decodeRoomEvent(e.Key, e.Rest, e.Data)
	if bad != nil || !isMemberEvent(ev.Type) {
		return nil // the room skips it too
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.rooms[ev.RoomID] == nil {
		p := x.pending[ev.RoomID]
		if p == nil {
			p = &pendingRoom{sweep: x.sweeps}
			x.pending[ev.RoomID] = p
		}
		p.events = append(p.events, memberEntry{seq: e.Seq, e: ev})
		select {
		case x.waiting <- struct{}{}:
		default: // a sweep is due already
		}
		return nil
	}
	x.applyLocked(e.Seq, ev)
	return nil
}

// beginSweep starts a sweep of pending and returns its mark: once the
// directory has applied a position read after this call, dropPending(mark)
// drops the rooms that were pending at this call and still are.
func (x *memberIndex) beginSweep() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sweeps++
	return x.sweeps
}

// droppedRoom is a room whose pending member events a sweep dropped.
type droppedRoom struct {
	id     string
	events int
}

// dropPending drops the pending rooms whose first event arrived before the
// sweep marked mark began (see sweepPendingMembers for why that is safe),
// and returns them.
func (x *memberIndex) dropPending(mark uint64) []droppedRoom {
	x.mu.Lock()
	defer x.mu.Unlock()
	var dropped []droppedRoom
	for id, p := range x.pending {
		if p.sweep < mark {
			dropped = append(dropped, droppedRoom{id: id, events: len(p.events)})
			delete(x.pending, id)
		}
	}
	return dropped
}

// applyLocked judges and folds a member event of a known room as
// roomState does. Callers hold mu.
func (x *memberIndex) applyLocked(seq uint64, e Event) {
	x.last[e.RoomID] = seq
	close(x.folded)
	x.folded = make(chan struct{})
	members := x.rooms[e.RoomID]
	if checkActor(e.Actor) != nil {
		return
	}
	if _, ok := members[e.Actor.ID]; !ok {
		return
	}
	if judgeMemberEvent(e.RoomID, members, x.history, x.changes[e.RoomID][e.UserID], e) != nil {
		return
	}
	x.changes[e.RoomID][e.UserID]++
	if e.Type == MemberAdded {
		members[e.UserID] = seq
		x.link(e.UserID, e.RoomID)
		return
	}
	delete(members, e.UserID)
	if rooms := x.byUser[e.UserID]; rooms != nil {
		delete(rooms, e.RoomID)
		if len(rooms) == 0 {
			delete(x.byUser, e.UserID)
		}
	}
}

func (x *memberIndex) link(user, roomID string) {
	rooms := x.byUser[user]
	if rooms == nil {
		rooms = make(map[string]struct{})
		x.byUser[user] = rooms
	}
	rooms[roomID] = struct{}{}
}

// waitFolded waits until the index has folded the member event of room
// stored at seq, so that the replica that stored it lists rooms as it left
// them (read-your-writes). An index still catching up is not waited for:
// Rooms does not use it yet.
func (x *memberIndex) waitFolded(ctx context.Context, roomID string, seq uint64) error {
	for x.behind.Load() == 0 {
		x.mu.Lock()
		reached, wake := x.last[roomID] >= seq, x.folded
		x.mu.Unlock()
		if reached {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// roomsOf returns the private rooms user is a member of; ok is false until
// the index has caught up.
func (x *memberIndex) roomsOf(user string) (rooms []string, ok bool) {
	if x.behind.Load() > 0 {
		return nil, false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for id := range x.byUser[user] {
		rooms = append(rooms, id)
	}
	return rooms, true
}

// followMembers keeps the index current with partition k until ctx ends:
// it reads the position of the partition's last member entry, then follows
// its member subjects, retrying with back-off when the log fails. The
// position is that of the last member entry, not the partition's last: the
// member subjects alone are followed, so an index waiting for a post stored
// after them (or in a partition without member entries) would never catch up.
func (s *Service) followMembers(ctx context.Context, k int) {
	var target uint64
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		readCtx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
		last, err := s.log.RestLastSeq(readCtx, k, memberRest)
		cancel()
		if err == nil {
			target = last
			break
		}
		s.opts.Logger.Warn("reading a partition's position failed; retrying", "partition", k, "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
	}
	var applied uint64
	caughtUp := false
	reached := func() {
		if !caughtUp && applied >= target {
			caughtUp = true
			s.members.behind.Add(-1)
		}
	}
	reached()
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := s.log.FollowRest(ctx, k, memberRest, applied+1, func(e pubsub.Entry) error {
			_ = s.members.apply(e)
			applied = e.Seq
			reached()
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		s.opts.Logger.Warn("following a partition's members failed; retrying", "partition", k, "from", applied+1, "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return
		}
	}
}

// pendingSweepInterval is the least time between two sweeps of the member
// index's pending events, so that a log that keeps receiving member events
// of rooms that do not exist costs one read of the directory's position a
// second, not one per event.
const pendingSweepInterval = time.Second

// sweepPendingMembers drops, until ctx ends, the member events the index
// keeps for rooms the directory does not have, once the directory has
// caught up past where their room's entry would have to be.
//
// A member event is only proposed for a room the proposer's directory has
// (changeMember acquires the room, which looks it up), so the room's
// directory entry was stored before the event, and so before the index
// received it. A directory position read after that is at or past the
// entry, and applyDirectory calls roomCreated, which takes the room's
// events out of pending, under the same lock as it moves the directory's
// position past it. So once the directory has applied a position read after
// a room's first event arrived, a room still pending is no private room:
// its entry is missing or malformed (no room exists: queries find nothing),
// or the room is public (it refuses member events). Legitimate events are
// never dropped, whatever the lag between the streams; pending holds only
// what arrived since the last sweep began. A directory entry stored after
// the events it would precede can only come from a writer that bypasses
// the proposers: the room then folds events the index dropped, and the
// index knows such a room from its creator and the events after it.
func (s *Service) sweepPendingMembers(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.members.waiting:
		}
		mark := s.members.beginSweep()
		last, ok := s.directoryPosition(ctx, "reading the room directory's position to sweep the member index failed; retrying")
		if !ok || s.waitDirectory(ctx, last) != nil {
			return // ctx ended
		}
		s.logDropped(s.members.dropPending(mark), last)
		if !sleep(ctx, pendingSweepInterval) {
			return
		}
	}
}

// logDropped reports the rooms whose member events a sweep dropped once
// the directory had applied position last.
func (s *Service) logDropped(dropped []droppedRoom, last uint64) {
	for _, d := range dropped {
		reason := "the directory has no such room"
		if room, ok := s.RoomInfo(d.id); ok && !room.Private {
			reason = "the room is public and has no members"
		}
		s.opts.Logger.Warn("skipped member events of a room that is not a private room",
			"room", d.id, "events", d.events, "reason", reason, "directory_seq", last)
	}
}

// visiblePrivateRooms returns the private rooms viewer is a member of, in
// creation order, among those of the directory up to last (where private
// was read): from the index once it has caught up, otherwise by loading
// every private room this replica does not hold. The index may already
// hold rooms created after last; listed, one would also be replayed by
// roomCreated resumed from the list's cursor (lastVisible), so it shows
// twice.
func (s *Service) visiblePrivateRooms(ctx context.Context, viewer string, private []*Room, last uint64) ([]*Room, error) {
	if viewer == "" {
		return nil, nil
	}
	if ids, ok := s.members.roomsOf(viewer); ok {
		mine := make([]*Room, 0, len(ids))
		s.dirMu.RLock()
		for _, id := range ids {
			if r := s.dir.rooms[id]; r != nil && r.Seq <= last {
				mine = append(mine, r)
			}
		}
		s.dirMu.RUnlock()
		slices.SortFunc(mine, func(a, b *Room) int { return cmp.Compare(a.Seq, b.Seq) })
		return mine, nil
	}
	var mine []*Room
	for _, r := range private {
		member, err := s.isMember(ctx, r.ID, viewer, false)
		if err != nil {
			return nil, err
		}
		if member {
			mine = append(mine, r)
		}
	}
	return mine, nil
}
