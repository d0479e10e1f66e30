package chat

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"time"
)

// Projection is the read model: the deterministic fold of the log. Every
// replica applies the same entries in the same order with the same rules,
// so it accepts and rejects exactly what every other replica does. It does
// no I/O and is not safe for concurrent use; Store guards it.
type Projection struct {
	history   int // posts each room's subject retains in the log; 0 = unlimited
	rooms     map[string]*roomState
	roomOrder []*roomState // by creation sequence
	names     map[string]string
	messages  map[string]*messageState
	lastSeq   uint64
}

type roomState struct {
	room Room
	// messages are the retained messages, ascending by Seq.
	messages []*messageState
	// posts are the sequences of every entry on the room's posts subject
	// that the log still retains, accepted or not: the log's per-subject
	// limit counts entries, so the read model must count the same way to
	// evict exactly what the log discards.
	posts []uint64
	// horizon is the highest sequence of any event of an evicted message:
	// a subscriber resuming from an older cursor would miss events.
	horizon uint64
}

type messageState struct {
	msg       Message
	reactions []*Reaction
	// events are the accepted events of the message in log order, so that
	// a subscriber can resume from any cursor the read model covers.
	events []eventRef
}

// eventRef is one accepted event of a message.
type eventRef struct {
	seq uint64
	at  int64 // unix nanoseconds
	typ EventType
}

// NewProjection returns an empty read model whose rooms keep the last
// history posts (0 keeps everything), matching the log's per-subject limit.
func NewProjection(history int) *Projection {
	return &Projection{
		history:  history,
		rooms:    make(map[string]*roomState),
		names:    make(map[string]string),
		messages: make(map[string]*messageState),
	}
}

// LastSeq is the sequence of the last entry applied.
func (p *Projection) LastSeq() uint64 { return p.lastSeq }

// Apply folds one log entry into the read model and says what it did.
// Entries at or below LastSeq are ignored (reported as accepted no-ops with
// a zero Type) so that a redelivery can never apply twice.
func (p *Projection) Apply(seq uint64, subject string, data []byte, at time.Time) Outcome {
	if seq <= p.lastSeq {
		return Outcome{Seq: seq}
	}
	p.lastSeq = seq
	p.countPost(seq, subject)

	e, bad := decodeEvent(subject, data)
	if bad != nil {
		return Outcome{Seq: seq, Err: bad}
	}
	out := Outcome{Seq: seq, Type: e.Type, RoomID: e.RoomID, MessageID: e.MessageID}
	if err := checkActor(e.Actor); err != nil {
		out.Err = err
		return out
	}
	defer func() {
		if m := p.messages[e.MessageID]; out.Err == nil && m != nil {
			m.events = append(m.events, eventRef{seq: seq, at: at.UnixNano(), typ: e.Type})
		}
	}()
	switch e.Type {
	case RoomCreated:
		out.Err = p.createRoom(seq, at, e)
	case MessagePosted:
		out.Err = p.postMessage(seq, at, e)
	case MessageEdited:
		out.Err = p.editMessage(seq, at, e)
	case MessageDeleted:
		out.Err = p.deleteMessage(seq, e)
	case ReactionToggled:
		out.Err = p.toggleReaction(seq, e)
	}
	return out
}

// countPost records an entry on a room's posts subject, whatever it holds,
// and evicts the messages the log no longer retains.
func (p *Projection) countPost(seq uint64, subject string) {
	rest, ok := strings.CutPrefix(subject, SubjectPrefix+".room.")
	if !ok {
		return
	}
	roomID, ok := strings.CutSuffix(rest, ".posts")
	if !ok {
		return
	}
	rs := p.rooms[roomID]
	if rs == nil {
		return // the room does not exist: nothing of it to retain
	}
	rs.posts = append(rs.posts, seq)
	if p.history <= 0 || len(rs.posts) <= p.history {
		return
	}
	oldestKept := rs.posts[len(rs.posts)-p.history]
	rs.posts = slices.Delete(rs.posts, 0, len(rs.posts)-p.history)
	evict := 0
	for evict < len(rs.messages) && rs.messages[evict].msg.Seq < oldestKept {
		m := rs.messages[evict]
		rs.horizon = max(rs.horizon, m.msg.UpdatedSeq)
		delete(p.messages, m.msg.ID)
		if !m.msg.Deleted {
			rs.room.MessageCount--
		}
		evict++
	}
	rs.messages = slices.Delete(rs.messages, 0, evict)
}

func (p *Projection) createRoom(seq uint64, at time.Time, e Event) *Error {
	if err := checkRoomName(e.Name); err != nil {
		return err
	}
	if _, exists := p.rooms[e.RoomID]; exists {
		return errorf(CodeConflict, "room %s already exists", e.RoomID)
	}
	key := roomNameKey(e.Name)
	if _, taken := p.names[key]; taken {
		return errorf(CodeConflict, "a room named %q already exists", e.Name)
	}
	rs := &roomState{room: Room{
		ID: e.RoomID, Name: e.Name, CreatedAt: at, CreatedBy: e.Actor, Seq: seq,
	}}
	p.rooms[e.RoomID] = rs
	p.roomOrder = append(p.roomOrder, rs)
	p.names[key] = e.RoomID
	return nil
}

func (p *Projection) postMessage(seq uint64, at time.Time, e Event) *Error {
	rs := p.rooms[e.RoomID]
	if rs == nil {
		return errorf(CodeNotFound, "room %s does not exist", e.RoomID)
	}
	if err := checkText(e.Text); err != nil {
		return err
	}
	if _, exists := p.messages[e.MessageID]; exists {
		return errorf(CodeConflict, "message %s already exists", e.MessageID)
	}
	m := &messageState{msg: Message{
		ID: e.MessageID, RoomID: e.RoomID, Author: e.Actor, Text: e.Text, Version: 1,
		CreatedAt: at, Seq: seq, UpdatedSeq: seq,
	}}
	rs.messages = append(rs.messages, m)
	p.messages[e.MessageID] = m
	rs.room.MessageCount++
	rs.room.LastMessageAt = at
	return nil
}

// changeable finds a message that an edit or deletion by e.Actor at
// e.Version may change.
func (p *Projection) changeable(e Event) (*messageState, *Error) {
	m := p.messages[e.MessageID]
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

func (p *Projection) editMessage(seq uint64, at time.Time, e Event) *Error {
	m, err := p.changeable(e)
	if err != nil {
		return err
	}
	if err := checkText(e.Text); err != nil {
		return err
	}
	m.msg.Text = e.Text
	m.msg.Version++
	m.msg.EditedAt = at
	m.msg.UpdatedSeq = seq
	return nil
}

func (p *Projection) deleteMessage(seq uint64, e Event) *Error {
	m, err := p.changeable(e)
	if err != nil {
		return err
	}
	m.msg.Text = ""
	m.msg.Deleted = true
	m.msg.Version++
	m.msg.UpdatedSeq = seq
	m.reactions = nil
	p.rooms[m.msg.RoomID].room.MessageCount--
	return nil
}

func (p *Projection) toggleReaction(seq uint64, e Event) *Error {
	m := p.messages[e.MessageID]
	if m == nil {
		return errorf(CodeNotFound, "message %s does not exist", e.MessageID)
	}
	if m.msg.Deleted {
		return errorf(CodeConflict, "message %s was deleted", e.MessageID)
	}
	if err := checkEmoji(e.Emoji); err != nil {
		return err
	}
	m.msg.UpdatedSeq = seq
	for i, r := range m.reactions {
		if r.Emoji != e.Emoji {
			continue
		}
		if at := slices.Index(r.UserIDs, e.Actor.ID); at >= 0 {
			r.UserIDs = slices.Delete(r.UserIDs, at, at+1)
			if len(r.UserIDs) == 0 {
				m.reactions = slices.Delete(m.reactions, i, i+1)
			}
		} else {
			r.UserIDs = append(r.UserIDs, e.Actor.ID)
		}
		return nil
	}
	m.reactions = append(m.reactions, &Reaction{Emoji: e.Emoji, UserIDs: []string{e.Actor.ID}})
	return nil
}

// Room returns a snapshot of a room.
func (p *Projection) Room(id string) (Room, bool) {
	rs := p.rooms[id]
	if rs == nil {
		return Room{}, false
	}
	return rs.room, true
}

// Message returns a snapshot of a retained message.
func (p *Projection) Message(id string) (Message, bool) {
	m := p.messages[id]
	if m == nil {
		return Message{}, false
	}
	return m.snapshot(), true
}

func (m *messageState) snapshot() Message {
	out := m.msg
	out.Reactions = make([]Reaction, len(m.reactions))
	for i, r := range m.reactions {
		out.Reactions[i] = Reaction{Emoji: r.Emoji, UserIDs: slices.Clone(r.UserIDs)}
	}
	return out
}

// ChangesAfter returns the accepted changes of topic (RoomTopic or
// RoomsTopic) after log position after, in log order, each with the
// current snapshot of its room and message. It refuses a position older
// than what the read model still covers.
func (p *Projection) ChangesAfter(topic string, after uint64) ([]Change, *Error) {
	if topic == RoomsTopic {
		lo := sort.Search(len(p.roomOrder), func(i int) bool { return p.roomOrder[i].room.Seq > after })
		changes := make([]Change, 0, len(p.roomOrder)-lo)
		for _, rs := range p.roomOrder[lo:] {
			changes = append(changes, Change{Seq: rs.room.Seq, At: rs.room.CreatedAt, Type: RoomCreated, Room: rs.room})
		}
		return changes, nil
	}
	roomID, ok := strings.CutPrefix(topic, RoomTopic(""))
	rs := p.rooms[roomID]
	if !ok || rs == nil {
		return nil, errorf(CodeNotFound, "room %q does not exist", roomID)
	}
	if after < rs.horizon {
		return nil, errorf(CodeCursorExpired,
			"the cursor is older than the history room %s retains; refetch the room and subscribe without a cursor", roomID)
	}
	var changes []Change
	for _, m := range rs.messages {
		if m.msg.UpdatedSeq <= after {
			continue
		}
		snapshot := m.snapshot()
		for _, ev := range m.events {
			if ev.seq > after {
				changes = append(changes, Change{
					Seq: ev.seq, At: time.Unix(0, ev.at).UTC(), Type: ev.typ, Room: rs.room, Message: &snapshot,
				})
			}
		}
	}
	slices.SortFunc(changes, func(a, b Change) int { return cmp.Compare(a.Seq, b.Seq) })
	return changes, nil
}

// Page is one slice of an ordered list.
type Page[T any] struct {
	Items           []T
	HasNextPage     bool
	HasPreviousPage bool
	TotalCount      int
}

// Window selects a page of an ordered list by sequence: the items after
// After and before Before (0 = unbounded), then the First of them or the
// Last of them (exactly one of First and Last is positive).
type Window struct {
	After, Before uint64
	First, Last   int
}

// Rooms returns a page of rooms in creation order.
func (p *Projection) Rooms(w Window) Page[Room] {
	lo, hi := bounds(len(p.roomOrder), func(i int) uint64 { return p.roomOrder[i].room.Seq }, w)
	page := Page[Room]{TotalCount: len(p.roomOrder)}
	for _, rs := range p.roomOrder[lo:hi] {
		page.Items = append(page.Items, rs.room)
	}
	page.HasPreviousPage, page.HasNextPage = lo > 0, hi < len(p.roomOrder)
	return page
}

// Messages returns a page of a room's retained messages in posting order;
// ok is false when the room does not exist.
func (p *Projection) Messages(roomID string, w Window) (Page[Message], bool) {
	rs := p.rooms[roomID]
	if rs == nil {
		return Page[Message]{}, false
	}
	lo, hi := bounds(len(rs.messages), func(i int) uint64 { return rs.messages[i].msg.Seq }, w)
	page := Page[Message]{TotalCount: len(rs.messages)}
	for _, m := range rs.messages[lo:hi] {
		page.Items = append(page.Items, m.snapshot())
	}
	page.HasPreviousPage, page.HasNextPage = lo > 0, hi < len(rs.messages)
	return page, true
}

// bounds returns the index range [lo, hi) of a list of n items, ascending by
// seqAt, that the window selects.
func bounds(n int, seqAt func(int) uint64, w Window) (lo, hi int) {
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
	switch {
	case w.First > 0 && hi-lo > w.First:
		hi = lo + w.First
	case w.Last > 0 && hi-lo > w.Last:
		lo = hi - w.Last
	}
	return lo, hi
}
