package chat

import (
	"cmp"
	"slices"
	"sort"
	"time"
	"unsafe"
)

// roomState is one room's read model: the deterministic fold of the room's
// events in the room's own order. The log stores a room event only after
// its proposer judged it against the room as of the event's Prev, and only
// if nothing was stored for the room in between (see Service.propose), so
// every stored event is accepted; applying re-judges anyway, so that every
// replica skips the same events should a foreign writer ever store one
// that breaks the rules. It does no I/O and is not safe for concurrent use:
// its heldRoom guards it.
type roomState struct {
	history int // posts the room's posts subject retains in the log; 0 = unlimited
	room    Room
	stats   RoomStats
	// messages are the retained messages, ascending by Seq.
	messages []*messageState
	byID     map[string]*messageState
	// horizon is the highest sequence of any event about a message the room
	// no longer retains: a subscriber resuming from an older cursor would
	// miss it.
	horizon uint64
	// last is the sequence of the last event applied.
	last uint64
	// generation is Change.Generation of the room's changes.
	generation uint64
	bytes      int64 // estimate of the memory held, for the cache budget
	// members of a private room (nil for a public one), by user ID. access
	// is a copy of who they are and since when, replaced (never changed)
	// when it is asked for after a membership change (accessNow, with
	// accessStale set), so that a gate may read it without the room's lock.
	members     map[string]*Member
	access      map[string]uint64
	accessStale bool
	// memberChanges counts each user's member events in a private room,
	// removed users' included (see checkMemberChanges).
	memberChanges map[string]int
	// liveStrings shares the room's ID with the live entries decoded for
	// it (Service.applyLiveLocked, under the held room's lock), without an
	// allocation per entry.
	liveStrings eventStrings
}

type messageState struct {
	msg       Message
	reactions []*Reaction
	// events are the accepted events of the message in log order, so that
	// a subscriber can resume from any cursor the room still covers.
	events []eventRef
	bytes  int64
	// prev is its post's Event.Prev: the room's event before the post.
	// Every post the log discarded before this one lies at or below it
	// (see discardedBefore).
	prev uint64
}

// postedMessage is a message as posted: its state and room for its first
// event, which events holds until a change is appended.
type postedMessage struct {
	messageState
	first [1]eventRef
}

// eventRef is one accepted event of a message.
type eventRef struct {
	seq uint64
	at  int64 // unix nanoseconds
	typ EventType
}

// eventRefBytes is what one entry of a message's change history holds.
const eventRefBytes = int(unsafe.Sizeof(eventRef{}))

// roomBaseBytes is the estimated fixed cost of a held room.
const roomBaseBytes = 1024

func newRoomState(meta Room, history int) *roomState {
	rs := &roomState{history: history, room: meta, byID: make(map[string]*messageState), bytes: roomBaseBytes}
	rs.liveStrings.room = rs.room.ID
	if meta.Private {
		rs.members = map[string]*Member{meta.CreatedBy.ID: {User: meta.CreatedBy, JoinedAt: meta.CreatedAt}}
		rs.memberChanges = make(map[string]int)
		rs.bytes += memberBytes(meta.CreatedBy)
		rs.refreshAccess()
	}
	return rs
}

// memberBytes estimates the memory a member holds (its entry in members
// and in access).
func memberBytes(a Actor) int64 { return int64(160 + 2*len(a.ID) + len(a.Name)) }

// accessNow is the members' access as the room is now. It is rebuilt
// only when member events have changed it since it was last asked for, so
// that a load, which folds every member event and asks once, costs the
// members once, not once per member event (quadratic: a room of 20,000
// members could not be loaded within the load's time).
func (rs *roomState) accessNow() map[string]uint64 {
	if rs.accessStale {
		rs.refreshAccess()
		rs.accessStale = false
	}
	return rs.access
}

func (rs *roomState) refreshAccess() {
	access := make(map[string]uint64, len(rs.members))
	for id, m := range rs.members {
		access[id] = m.Since
	}
	rs.access = access
}

// isMember reports whether userID may see and change a private room; in a
// public room, everyone may.
func (rs *roomState) isMember(userID string) bool {
	if !rs.room.Private {
		return true
	}
	_, ok := rs.members[userID]
	return ok
}

// errNotMember is the refusal of anything a non-member tries in a private
// room. It names nothing of the room but the ID the caller gave.
func errNotMember(roomID string) *Error {
	return errorf(CodeForbidden, "forbidden: you are not a member of room %s", roomID)
}

// judge decides whether e may follow the room as it is now. It changes
// nothing.
func (rs *roomState) judge(e Event) *Error {
	if err := checkActor(e.Actor); err != nil {
		return err
	}
	if e.RoomID != rs.room.ID {
		return errorf(CodeInternal, "event of room %s judged in room %s", e.RoomID, rs.room.ID)
	}
	if !rs.isMember(e.Actor.ID) {
		return errNotMember(rs.room.ID)
	}
	switch e.Type {
	case MemberAdded, MemberRemoved:
		return rs.judgeMembership(e)
	case MessagePosted:
		if err := checkText(e.Text); err != nil {
			return err
		}
		if rs.byID[e.MessageID] != nil {
			return errorf(CodeConflict, "message %s already exists", e.MessageID)
		}
		return nil
	case MessageEdited:
		m, err := rs.changeable(e)
		if err != nil {
			return err
		}
		if err := checkText(e.Text); err != nil {
			return err
		}
		return rs.checkRoomForChange(m)
	case MessageDeleted:
		m, err := rs.changeable(e)
		if err != nil {
			return err
		}
		return rs.checkRoomForChange(m)
	case ReactionToggled:
		m := rs.byID[e.MessageID]
		if m == nil {
			return errorf(CodeNotFound, "message %s does not exist", e.MessageID)
		}
		if m.msg.Deleted {
			return errorf(CodeConflict, "message %s was deleted", e.MessageID)
		}
		if err := checkEmoji(e.Emoji); err != nil {
			return err
		}
		return rs.checkRoomForChange(m)
	}
	return errorf(CodeInternal, "a %s event is not a room event", e.Type)
}

// judgeMembership decides a member event: only a private room has
// members; any member may add a user who is not one, and remove any
// member (themselves included) but the last.
func (rs *roomState) judgeMembership(e Event) *Error {
	if !rs.room.Private {
		return errorf(CodeBadUserInput, "room %s is public: everyone may use it, and it has no members", rs.room.ID)
	}
	return judgeMemberEvent(rs.room.ID, rs.members, rs.history, rs.memberChanges[e.UserID], e)
}

// judgeMemberEvent decides a member event by a member of a private room
// whose members are the keys of members, and in which e.UserID has had
// changes member events so far. The room's state judges by it, and so does
// the memberIndex, which folds the members alone.
func judgeMemberEvent[V any](roomID string, members map[string]V, history, changes int, e Event) *Error {
	if err := checkMemberID(e.UserID); err != nil {
		return err
	}
	_, member := members[e.UserID]
	switch {
	case e.Type == MemberAdded && member:
		return errorf(CodeConflict, "%q is already a member of room %s", e.UserID, roomID)
	case e.Type == MemberRemoved && !member:
		return errorf(CodeNotFound, "%q is not a member of room %s", e.UserID, roomID)
	case e.Type == MemberRemoved && len(members) == 1:
		return errorf(CodeConflict, "the last member of room %s cannot be removed", roomID)
	}
	return checkMemberChanges(roomID, history, changes, e)
}

// checkMemberChanges refuses a membership change the log could not keep: a
// user's member events in a room share one subject (member.<user hash>),
// which keeps at most history entries, and were one discarded, a replica
// loading the room would no longer know the user was a member then, and
// refuse what they did as one (a member they added, a message they posted).
func checkMemberChanges(roomID string, history, changes int, e Event) *Error {
	if history > 0 && changes >= history {
		return errorf(CodeConflict, "%q has joined and left room %s as often as its history keeps", e.UserID, roomID)
	}
	return nil
}

// changeMembers applies an accepted member event stored at seq.
func (rs *roomState) changeMembers(seq uint64, at time.Time, e Event) {
	if _, seen := rs.memberChanges[e.UserID]; !seen {
		rs.bytes += int64(48 + len(e.UserID))
	}
	rs.memberChanges[e.UserID]++
	if e.Type == MemberAdded {
		user := Actor{ID: e.UserID}
		rs.members[e.UserID] = &Member{User: user, Since: seq, JoinedAt: at}
		rs.bytes += memberBytes(user)
	} else {
		rs.bytes -= memberBytes(rs.members[e.UserID].User)
		delete(rs.members, e.UserID)
	}
	rs.accessStale = true // see accessNow
}

// membersPage returns a page of a private room's members in the order they
// joined, each keyed by Since+1 (the creator by 1).
func (rs *roomState) membersPage(w Window) Page[Member] {
	all := make([]Member, 0, len(rs.members))
	for _, m := range rs.members {
		all = append(all, *m)
	}
	slices.SortFunc(all, func(a, b Member) int { return cmp.Compare(a.Since, b.Since) })
	lo, hi, hasPrev, hasNext := bounds(len(all), func(i int) uint64 { return all[i].Since + 1 }, w)
	return Page[Member]{Items: all[lo:hi], TotalCount: len(all), HasPreviousPage: hasPrev, HasNextPage: hasNext}
}

// checkRoomForChange refuses a change the log could not keep: a message's
// edits, reactions and deletion share one subject (msg.<message>), which
// keeps at most history entries, and were one discarded, a replica loading
// the room would judge the rest differently (a version that no longer
// follows, a toggle undone).
func (rs *roomState) checkRoomForChange(m *messageState) *Error {
	if rs.history > 0 && len(m.events)-1 >= rs.history { // events[0] is the post, on the posts subject
		return errorf(CodeConflict, "message %s has had the %d changes its room keeps", m.msg.ID, rs.history)
	}
	return nil
}

// judgeProposal is judge for an event this replica proposes, with stricter
// rules that keep the log's last entry of a subject for what must always
// remain possible: an edit or a reaction is refused once a message has
// history-1 changes, so that it can still be deleted, and an addition once
// a user has history-1 member events in the room, so that they can still be
// removed. A reaction that would give a message more than
// MaxReactionGroups distinct emoji is refused too (checkProposedReaction);
// like the rest, only here, never on replay, so that logs holding more
// still load as they did. Posts cost two comparisons more.
func (rs *roomState) judgeProposal(e Event) *Error {
	if err := rs.judge(e); err != nil {
		return err
	}
	if rs.history > 0 {
		switch e.Type {
		case MessageEdited, ReactionToggled:
			if m := rs.byID[e.MessageID]; len(m.events)-1 >= rs.history-1 {
				return errorf(CodeConflict, "message %s has had the %d changes its room keeps; it can only be deleted",
					m.msg.ID, rs.history-1)
			}
		case MemberAdded:
			if rs.memberChanges[e.UserID] >= rs.history-1 {
				return errorf(CodeConflict, "%q has joined and left room %s as often as its history keeps; they cannot be added again",
					e.UserID, rs.room.ID)
			}
		}
	}
	if e.Type == ReactionToggled {
		m := rs.byID[e.MessageID] // judge found it
		return checkProposedReaction(m.msg.ID, m.reactions, e.Emoji)
	}
	return nil
}

// changeable finds a message that an edit or deletion by e.Actor at
// e.Version may change.
func (rs *roomState) changeable(e Event) (*messageState, *Error) {
	m := rs.byID[e.MessageID]
	switch {
	case m == nil:
		return nil, errorf(CodeNotFound, "message %s does not exist", e.MessageID)
	case m.msg.Author.ID != e.Actor.ID:
		return nil, errorf(CodeForbidden, "only the author may change message %s", e.MessageID)
	case m.msg.Deleted:
		return nil, errorf(CodeConflict, "message %s was deleted", e.MessageID)
	case m.msg.Version != e.Version:
		return nil, errorf(CodeConflict, "message %s is at version %d, not %d: refetch and retry",
			e.MessageID, m.msg.Version, e.Version)
	}
	return m, nil
}

// apply folds the room's event stored at seq into the state. An event the
// rules refuse is skipped (every replica skips it) and reported.
func (rs *roomState) apply(seq uint64, at time.Time, e Event) *Error {
	if seq <= rs.last {
		return nil
	}
	rs.last = seq
	if err := rs.judge(e); err != nil {
		if e.Type != MessagePosted && !isMemberEvent(e.Type) && rs.byID[e.MessageID] == nil {
			// About a message the room no longer retains (or never had).
			rs.horizon = max(rs.horizon, seq)
		}
		return err
	}
	switch {
	case e.Type == MessagePosted:
		rs.post(seq, at, e)
		return nil
	case isMemberEvent(e.Type):
		rs.changeMembers(seq, at, e)
		return nil
	}
	m := rs.byID[e.MessageID]
	before := m.bytes
	switch e.Type {
	case MessageEdited:
		m.msg.Text = e.Text
		m.msg.Version++
		m.msg.EditedAt = at
	case MessageDeleted:
		m.msg.Text = ""
		m.msg.Deleted = true
		m.msg.Version++
		m.reactions = nil
		rs.stats.MessageCount--
	case ReactionToggled:
		m.toggle(e.Emoji, e.Actor.ID)
	}
	m.msg.UpdatedSeq = seq
	m.events = append(m.events, eventRef{seq: seq, at: at.UnixNano(), typ: e.Type})
	m.bytes = m.size()
	rs.bytes += m.bytes - before
	return nil
}

func (rs *roomState) post(seq uint64, at time.Time, e Event) {
	// The message and its first event are one allocation: loading a room
	// posts thousands of messages, and most are never changed.
	p := &postedMessage{first: [1]eventRef{{seq: seq, at: at.UnixNano(), typ: MessagePosted}}}
	m := &p.messageState
	m.msg = Message{
		// The room's own copy of its ID (judge checked that e's is equal).
		ID: e.MessageID, RoomID: rs.room.ID, Author: e.Actor, Text: e.Text, Version: 1,
		CreatedAt: at, Seq: seq, UpdatedSeq: seq,
	}
	m.events = p.first[:]
	m.prev = e.Prev
	m.bytes = m.size()
	rs.messages = append(rs.messages, m)
	rs.byID[m.msg.ID] = m
	rs.bytes += m.bytes
	rs.stats.MessageCount++
	rs.stats.LastMessageAt = at
	rs.evict()
}

// evict drops the oldest messages beyond the room's history: the log's
// per-subject limit has discarded their posts, so a replica loading the
// room now would not see them either.
func (rs *roomState) evict() {
	if rs.history <= 0 || len(rs.messages) <= rs.history {
		return
	}
	n := len(rs.messages) - rs.history
	for _, m := range rs.messages[:n] {
		rs.horizon = max(rs.horizon, m.msg.UpdatedSeq)
		delete(rs.byID, m.msg.ID)
		if !m.msg.Deleted {
			rs.stats.MessageCount--
		}
		rs.bytes -= m.bytes
	}
	rs.messages = slices.Delete(rs.messages, 0, n)
}

// expiredBefore is the oldest cursor the room can still resume from:
// anything older may lie before an event about a message the room no
// longer holds, or before a post the log discarded (discardedBefore).
func (rs *roomState) expiredBefore() uint64 {
	return max(rs.horizon, rs.discardedBefore())
}

// discardedBefore is the oldest position after which the log has discarded
// no post of the room. A room whose history is full may have discarded
// posts older than its first retained one; a replica that loads such a
// room cannot know which, so every replica assumes it did. Each of them
// lies at or below the first retained post's Prev, the room's event before
// it: sequences are per partition, shared by every room in it, so the
// post's own sequence - 1 would refuse cursors after which nothing is
// missing. Both a replica that held the room and one that loads it see the
// same first retained post, with the same Prev.
func (rs *roomState) discardedBefore() uint64 {
	if rs.history > 0 && len(rs.messages) >= rs.history {
		return rs.messages[0].prev
	}
	return 0
}

// checkPage refuses a page after a cursor older than the posts the room
// retains: the posts that followed the cursor are gone, and a page read
// forward (First) would start at the oldest retained one as if none were
// missing; so would one read backward (Last) that reaches it, with
// hasPreviousPage false. A subscription resumed from such a cursor is
// refused alike.
func (rs *roomState) checkPage(w Window) *Error {
	if w.After > 0 && w.After < rs.discardedBefore() {
		return errorf(CodeCursorExpired,
			"the cursor is older than the history room %s retains: messages after it were discarded; refetch the room's latest messages", rs.room.ID)
	}
	return nil
}

func (m *messageState) toggle(emoji, userID string) {
	for i, r := range m.reactions {
		if r.Emoji != emoji {
			continue
		}
		if at := slices.Index(r.UserIDs, userID); at >= 0 {
			r.UserIDs = slices.Delete(r.UserIDs, at, at+1)
			if len(r.UserIDs) == 0 {
				m.reactions = slices.Delete(m.reactions, i, i+1)
			}
		} else {
			r.UserIDs = append(r.UserIDs, userID)
		}
		return
	}
	m.reactions = append(m.reactions, &Reaction{Emoji: emoji, UserIDs: []string{userID}})
}

// size estimates the memory a message holds: a short post measured about
// 370 bytes of heap (message, state, map entry, strings), which this
// matches within a few per cent.
func (m *messageState) size() int64 {
	n := 280 + len(m.msg.ID) + len(m.msg.Text) + len(m.msg.Author.ID) + len(m.msg.Author.Name) + eventRefBytes*cap(m.events)
	for _, r := range m.reactions {
		n += 64 + len(r.Emoji)
		for _, u := range r.UserIDs {
			n += 16 + len(u)
		}
	}
	return int64(n)
}

func (m *messageState) snapshot() Message {
	out := m.msg
	out.Reactions = make([]Reaction, len(m.reactions))
	for i, r := range m.reactions {
		out.Reactions[i] = Reaction{Emoji: r.Emoji, UserIDs: slices.Clone(r.UserIDs)}
	}
	return out
}

// message returns a snapshot of a retained message.
func (rs *roomState) message(id string) (Message, bool) {
	m := rs.byID[id]
	if m == nil {
		return Message{}, false
	}
	return m.snapshot(), true
}

// postedAt returns the retained message whose post is stored at seq.
func (rs *roomState) postedAt(seq uint64) (Message, bool) {
	i, found := sort.Find(len(rs.messages), func(i int) int { return cmp.Compare(seq, rs.messages[i].msg.Seq) })
	if !found {
		return Message{}, false
	}
	return rs.messages[i].snapshot(), true
}

// change is what live subscribers see of the event just applied at seq.
func (rs *roomState) change(seq uint64, at time.Time, e Event) (Change, bool) {
	if isMemberEvent(e.Type) {
		return Change{Seq: seq, Generation: rs.generation, At: at, Type: e.Type, Room: rs.room, UserID: e.UserID}, true
	}
	m := rs.byID[e.MessageID]
	if m == nil {
		return Change{}, false // evicted at once by a tiny history limit
	}
	snapshot := m.snapshot()
	return Change{Seq: seq, Generation: rs.generation, At: at, Type: e.Type, Room: rs.room, Message: &snapshot}, true
}

// changesAfter returns the room's accepted changes after log position
// after, in log order, each with the current snapshot of its message. It
// refuses a position older than what the room still covers.
func (rs *roomState) changesAfter(after uint64) ([]Change, *Error) {
	if after < rs.expiredBefore() {
		return nil, errorf(CodeCursorExpired,
			"the cursor is older than the history room %s retains; refetch the room, then subscribe after its messages' resumeCursor", rs.room.ID)
	}
	return rs.changesSince(after), nil
}

// changesSince is changesAfter of whatever the room still retains after
// after, however old after is.
func (rs *roomState) changesSince(after uint64) []Change {
	var changes []Change
	for _, m := range rs.messages {
		if m.msg.UpdatedSeq <= after {
			continue
		}
		snapshot := m.snapshot()
		for _, ev := range m.events {
			if ev.seq > after {
				changes = append(changes, Change{
					Seq: ev.seq, Generation: rs.generation, At: time.Unix(0, ev.at).UTC(), Type: ev.typ, Room: rs.room, Message: &snapshot,
				})
			}
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return cmp.Compare(a.Seq, b.Seq) })
	return changes
}

// lastShared returns the position of the newest event that both rs and
// other hold (a message's event, or a member's joining), 0 if none: where
// two versions of a room, one read afresh from the log, stop agreeing, as
// far as what they retain can tell.
func (rs *roomState) lastShared(other *roomState) uint64 {
	mine := make(map[uint64]struct{}, len(rs.byID)+len(rs.members))
	rs.eachEventSeq(func(seq uint64) { mine[seq] = struct{}{} })
	var shared uint64
	other.eachEventSeq(func(seq uint64) {
		if _, ok := mine[seq]; ok {
			shared = max(shared, seq)
		}
	})
	return shared
}

// eachEventSeq calls fn with the position of every event the room holds a
// trace of: its retained messages' events and its members' joinings.
func (rs *roomState) eachEventSeq(fn func(uint64)) {
	for _, m := range rs.messages {
		for _, ev := range m.events {
			fn(ev.seq)
		}
	}
	for _, m := range rs.members {
		if m.Since > 0 {
			fn(m.Since)
		}
	}
}

// page returns a page of the room's retained messages in posting order.
func (rs *roomState) page(w Window) Page[Message] {
	lo, hi, hasPrev, hasNext := bounds(len(rs.messages), func(i int) uint64 { return rs.messages[i].msg.Seq }, w)
	page := Page[Message]{TotalCount: len(rs.messages), Last: rs.last, HasPreviousPage: hasPrev, HasNextPage: hasNext}
	for _, m := range rs.messages[lo:hi] {
		page.Items = append(page.Items, m.snapshot())
	}
	return page
}

// Page is one slice of an ordered list.
type Page[T any] struct {
	Items           []T
	HasNextPage     bool
	HasPreviousPage bool
	TotalCount      int
	// Last is the log position the list's source had applied when the page
	// was read (a room's last event, the directory's last entry; 0 if none
	// yet): a watcher after it (WatchAfter) yields every change the page
	// does not show, on any replica. Lists no watcher follows leave it 0.
	Last uint64
}

// Window selects a page of an ordered list by sequence: the items after
// After and before Before (0 = unbounded), then the First of them or the
// Last of them (exactly one of First and Last is positive).
type Window struct {
	After, Before uint64
	First, Last   int
}

// bounds returns the index range [lo, hi) of a list of n items, ascending by
// seqAt, that the window selects, and whether items lie before and after
// it (pageFlags).
func bounds(n int, seqAt func(int) uint64, w Window) (lo, hi int, hasPrev, hasNext bool) {
	lo, hi = 0, n
	if w.After > 0 {
		lo = sort.Search(n, func(i int) bool { return seqAt(i) > w.After })
	}
	if w.Before > 0 {
		hi = sort.Search(n, func(i int) bool { return seqAt(i) >= w.Before })
	}
	if hi < lo {
		hi = lo
	}
	from, to := lo, hi // what lies between the cursors
	switch {
	case w.First > 0 && hi-lo > w.First:
		hi = lo + w.First
	case w.Last > 0 && hi-lo > w.Last:
		lo = hi - w.Last
	}
	hasPrev, hasNext = pageFlags(w, lo, hi, from, to, n)
	return lo, hi, hasPrev, hasNext
}

// pageFlags says whether items lie before and after [lo, hi), the page w
// selected of the [from, to) between its cursors, in a list of n. Those
// beyond the cursors count, except in the direction w counts in, as
// Relay's algorithm has it: with First, whether more than First lie
// between the cursors (First with Before: nothing is next once the page
// reaches Before); with Last, the same backwards.
func pageFlags(w Window, lo, hi, from, to, n int) (hasPrev, hasNext bool) {
	hasPrev, hasNext = lo > 0, hi < n
	if w.First > 0 {
		hasNext = hi < to
	}
	if w.Last > 0 {
		hasPrev = lo > from
	}
	return hasPrev, hasNext
}
