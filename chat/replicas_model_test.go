package chat

// Model-based test of the chat domain across replicas: a reference model in
// plain Go, and three Services over one shared log (one of them with a room
// cache so small that it reloads each room from the log for every use),
// driven by seeded random commands, some of them concurrent. Replay one seed
// with HERALD_MODEL_SEED=<n>; HERALD_MODEL_OPS sets the number of commands.

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

const modelHistory = 4

var modelUsers = []string{"alice", "bob", "carol", "dave"}

func modelActor(id string) Actor { return Actor{ID: id, Name: strings.ToUpper(id[:1]) + id[1:]} }

// --- the model ---

type mReaction struct {
	emoji string
	users []string
}

type mMsg struct {
	id, room, author string
	text             string
	version          int
	deleted          bool
	reactions        []mReaction
	changes          int
}

type mEvent struct {
	typ     EventType
	msgID   string
	userID  string
	text    string
	version int
	reacts  string // a reaction's: the message's reactions after it (canonReactions)
}

type mRoom struct {
	id, name, creator string
	private           bool
	msgs              []*mMsg // retained, in posting order
	members           []string
	memberChanges     map[string]int
	events            []mEvent
}

type model struct {
	rooms    []*mRoom
	names    map[string]bool
	keys     map[string]string // actor|room|key -> first post's ID
	all      map[string]*mMsg  // every message ever posted, by ID (evicted ones too)
	retained map[string]bool
	h        int
}

func newModel(h int) *model {
	return &model{names: map[string]bool{}, keys: map[string]string{}, all: map[string]*mMsg{}, retained: map[string]bool{}, h: h}
}

func (m *model) clone() *model {
	c := newModel(m.h)
	for k, v := range m.names {
		c.names[k] = v
	}
	for k, v := range m.keys {
		c.keys[k] = v
	}
	for k, v := range m.retained {
		c.retained[k] = v
	}
	msgs := map[*mMsg]*mMsg{}
	for id, msg := range m.all {
		cp := *msg
		cp.reactions = nil
		for _, r := range msg.reactions {
			cp.reactions = append(cp.reactions, mReaction{r.emoji, slices.Clone(r.users)})
		}
		msgs[msg] = &cp
		c.all[id] = &cp
	}
	for _, r := range m.rooms {
		cr := *r
		cr.msgs = nil
		for _, msg := range r.msgs {
			cr.msgs = append(cr.msgs, msgs[msg])
		}
		cr.members = slices.Clone(r.members)
		cr.memberChanges = map[string]int{}
		for k, v := range r.memberChanges {
			cr.memberChanges[k] = v
		}
		cr.events = slices.Clone(r.events)
		c.rooms = append(c.rooms, &cr)
	}
	return c
}

func (m *model) room(id string) *mRoom {
	for _, r := range m.rooms {
		if r.id == id {
			return r
		}
	}
	return nil
}

func (r *mRoom) isMember(u string) bool { return !r.private || slices.Contains(r.members, u) }

func (r *mRoom) retained(id string) *mMsg {
	for _, msg := range r.msgs {
		if msg.id == id {
			return msg
		}
	}
	return nil
}

type opKind int

const (
	opCreate opKind = iota
	opPost
	opEdit
	opDelete
	opReact
	opAdd
	opRemove
)

type op struct {
	kind    opKind
	replica int
	actor   string
	room    string
	msg     string
	text    string
	key     string
	version int
	emoji   string
	user    string
	name    string
	private bool
}

func (o op) String() string {
	switch o.kind {
	case opCreate:
		return fmt.Sprintf("r%d create(%s, %q, private=%v)", o.replica, o.actor, o.name, o.private)
	case opPost:
		return fmt.Sprintf("r%d post(%s, %s, %q, key=%q)", o.replica, o.actor, o.room, o.text, o.key)
	case opEdit:
		return fmt.Sprintf("r%d edit(%s, %s, v%d, %q)", o.replica, o.actor, o.msg, o.version, o.text)
	case opDelete:
		return fmt.Sprintf("r%d delete(%s, %s, v%d)", o.replica, o.actor, o.msg, o.version)
	case opReact:
		return fmt.Sprintf("r%d react(%s, %s, %q)", o.replica, o.actor, o.msg, o.emoji)
	case opAdd:
		return fmt.Sprintf("r%d addMember(%s, %s, %s)", o.replica, o.actor, o.room, o.user)
	case opRemove:
		return fmt.Sprintf("r%d removeMember(%s, %s, %s)", o.replica, o.actor, o.room, o.user)
	}
	return "?"
}

// outcome is what a command answered: its error code ("" for success) and
// the ID of the room or message it returned.
type outcome struct {
	code Code
	id   string
	msg  string // canonical form of a returned message
	err  string
}

func (o outcome) String() string {
	if o.code != "" {
		return fmt.Sprintf("%s (%s)", o.code, o.err)
	}
	return "ok " + o.id + " " + o.msg
}

func canonModelMsg(msg *mMsg) string {
	var rs []string
	for _, r := range msg.reactions {
		rs = append(rs, r.emoji+":"+strings.Join(r.users, "+"))
	}
	return fmt.Sprintf("%s by %s %q v%d del=%v [%s]", msg.id, msg.author, msg.text, msg.version, msg.deleted, strings.Join(rs, " "))
}

// canonReactions is a message's reactions as a change carries them: the
// order of two users' concurrent reactions shows only there (a reaction's
// change names no user).
func canonReactions(rs []Reaction) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Emoji+":"+strings.Join(r.UserIDs, "+"))
	}
	return strings.Join(out, " ")
}

func canonServiceMsg(msg Message) string {
	var rs []string
	for _, r := range msg.Reactions {
		rs = append(rs, r.Emoji+":"+strings.Join(r.UserIDs, "+"))
	}
	return fmt.Sprintf("%s by %s %q v%d del=%v [%s]", msg.ID, msg.Author.ID, msg.Text, msg.Version, msg.Deleted, strings.Join(rs, " "))
}

// apply runs o on the model. observed supplies the IDs the service chose
// (a new room's, a new message's). It returns the outcome the model
// expects.
func (m *model) apply(o op, observed outcome) outcome {
	fail := func(c Code) outcome { return outcome{code: c} }
	switch o.kind {
	case opCreate:
		key := strings.ToLower(o.name)
		if !o.private && m.names[key] {
			return fail(CodeConflict)
		}
		if observed.code != "" {
			return outcome{id: "<new room>"}
		}
		if !o.private {
			m.names[key] = true
		}
		r := &mRoom{id: observed.id, name: o.name, creator: o.actor, private: o.private, memberChanges: map[string]int{}}
		if o.private {
			r.members = []string{o.actor}
		}
		m.rooms = append(m.rooms, r)
		return outcome{id: r.id}
	case opPost:
		r := m.room(o.room)
		if r == nil {
			return fail(CodeNotFound)
		}
		if !r.isMember(o.actor) {
			return fail(CodeForbidden)
		}
		dk := o.actor + "|" + o.room + "|" + o.key
		if o.key != "" {
			if first, ok := m.keys[dk]; ok {
				msg := r.retained(first)
				switch {
				case msg == nil:
					return fail(CodeNotFound)
				case msg.version == 1 && msg.text != o.text:
					return fail(CodeConflict)
				case msg.deleted:
					return fail(CodeConflict)
				}
				return outcome{id: msg.id, msg: canonModelMsg(msg)}
			}
		}
		if observed.code != "" || observed.id == "" {
			return outcome{id: "<new message>"}
		}
		msg := &mMsg{id: observed.id, room: r.id, author: o.actor, text: o.text, version: 1}
		r.msgs = append(r.msgs, msg)
		m.all[msg.id] = msg
		m.retained[msg.id] = true
		if o.key != "" {
			m.keys[dk] = msg.id
		}
		r.events = append(r.events, mEvent{typ: MessagePosted, msgID: msg.id, text: msg.text, version: 1})
		if len(r.msgs) > m.h {
			for _, gone := range r.msgs[:len(r.msgs)-m.h] {
				delete(m.retained, gone.id)
			}
			r.msgs = slices.Clone(r.msgs[len(r.msgs)-m.h:])
		}
		return outcome{id: msg.id, msg: canonModelMsg(msg)}
	case opEdit, opDelete, opReact:
		roomID, _ := roomOfMessage(o.msg)
		r := m.room(roomID)
		if r == nil {
			return fail(CodeNotFound)
		}
		if !r.isMember(o.actor) {
			return fail(CodeForbidden)
		}
		msg := r.retained(o.msg)
		if msg == nil {
			return fail(CodeNotFound)
		}
		if o.kind != opReact && msg.author != o.actor {
			return fail(CodeForbidden)
		}
		if msg.deleted {
			return fail(CodeConflict)
		}
		if o.kind != opReact && msg.version != o.version {
			return fail(CodeConflict)
		}
		if o.kind != opDelete && msg.changes >= m.h-1 || msg.changes >= m.h {
			return fail(CodeConflict)
		}
		msg.changes++
		ev := mEvent{msgID: msg.id}
		switch o.kind {
		case opEdit:
			msg.text = o.text
			msg.version++
			ev.typ = MessageEdited
		case opDelete:
			msg.text = ""
			msg.deleted = true
			msg.version++
			msg.reactions = nil
			ev.typ = MessageDeleted
		case opReact:
			ev.typ = ReactionToggled
			found := false
			for i := range msg.reactions {
				re := &msg.reactions[i]
				if re.emoji != o.emoji {
					continue
				}
				found = true
				if at := slices.Index(re.users, o.actor); at >= 0 {
					re.users = slices.Delete(re.users, at, at+1)
					if len(re.users) == 0 {
						msg.reactions = slices.Delete(msg.reactions, i, i+1)
					}
				} else {
					re.users = append(re.users, o.actor)
				}
				break
			}
			if !found {
				msg.reactions = append(msg.reactions, mReaction{o.emoji, []string{o.actor}})
			}
		}
		ev.text, ev.version = msg.text, msg.version
		if ev.typ == ReactionToggled {
			var rs []Reaction
			for _, re := range msg.reactions {
				rs = append(rs, Reaction{Emoji: re.emoji, UserIDs: re.users})
			}
			ev.reacts = canonReactions(rs)
		}
		r.events = append(r.events, ev)
		return outcome{id: msg.id, msg: canonModelMsg(msg)}
	case opAdd, opRemove:
		r := m.room(o.room)
		if r == nil {
			return fail(CodeNotFound)
		}
		if !r.private {
			return fail(CodeBadUserInput)
		}
		if !r.isMember(o.actor) {
			return fail(CodeForbidden)
		}
		member := slices.Contains(r.members, o.user)
		changes := r.memberChanges[o.user]
		if o.kind == opAdd {
			if member {
				return fail(CodeConflict)
			}
			if changes >= m.h-1 {
				return fail(CodeConflict)
			}
			r.members = append(r.members, o.user)
			r.events = append(r.events, mEvent{typ: MemberAdded, userID: o.user})
		} else {
			if !member {
				return fail(CodeNotFound)
			}
			if len(r.members) == 1 || changes >= m.h {
				return fail(CodeConflict)
			}
			r.members = slices.DeleteFunc(r.members, func(u string) bool { return u == o.user })
			r.events = append(r.events, mEvent{typ: MemberRemoved, userID: o.user})
		}
		r.memberChanges[o.user]++
		return outcome{id: r.id}
	}
	panic("unknown op")
}

// matches reports whether the model's expected outcome agrees with what
// the service answered.
func (want outcome) matches(got outcome) bool {
	if want.code != got.code {
		return false
	}
	if want.code != "" {
		return true
	}
	if !strings.HasPrefix(want.id, "<") && want.id != got.id {
		return false
	}
	return want.msg == "" || want.msg == got.msg || strings.HasPrefix(want.id, "<")
}

// --- the system under test ---

type modelRecord struct {
	seq     uint64
	typ     EventType
	msgID   string
	userID  string
	text    string
	version int
	reacts  string // a reaction's: the message's reactions after it
}

type modelWatch struct {
	replica  int
	room     string
	mode     string // "ref", "live", "after", "for"
	cursor   uint64
	viewer   string
	openedAt int // model events of the room when opened
	w        *Watcher

	mu   sync.Mutex
	recs []modelRecord
	err  error
}

func (aw *modelWatch) collect(ctx context.Context) {
	for {
		c, err := aw.w.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, ErrWatcherClosed) {
				aw.mu.Lock()
				aw.err = err
				aw.mu.Unlock()
			}
			return
		}
		r := modelRecord{seq: c.Seq, typ: c.Type, userID: c.UserID}
		if c.Message != nil {
			r.msgID, r.text, r.version = c.Message.ID, c.Message.Text, c.Message.Version
			if c.Type == ReactionToggled {
				r.reacts = canonReactions(c.Message.Reactions)
			}
		}
		aw.mu.Lock()
		aw.recs = append(aw.recs, r)
		aw.mu.Unlock()
	}
}

func (aw *modelWatch) snapshot() ([]modelRecord, error) {
	aw.mu.Lock()
	defer aw.mu.Unlock()
	return slices.Clone(aw.recs), aw.err
}

type modelHarness struct {
	t        *testing.T
	seed     int64
	rng      *rand.Rand
	svcs     []*Service
	m        *model
	ctx      context.Context
	refs     map[string][]*modelWatch // room -> reference watchers (replicas 0 and 1)
	watches  []*modelWatch
	history  []string // what ran, for the failure report
	nextText int
	stats    map[string]int
}

func (h *modelHarness) fatalf(format string, args ...any) {
	h.t.Helper()
	tail := h.history
	if len(tail) > 40 {
		tail = tail[len(tail)-40:]
	}
	h.t.Fatalf("seed %d: %s\nlast commands:\n  %s", h.seed, fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

func codeOfErr(err error) (Code, string) {
	if err == nil {
		return "", ""
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code, ce.Message
	}
	return "GO_ERROR", err.Error()
}

func (h *modelHarness) run(o op) outcome {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	svc := h.svcs[o.replica]
	actor := modelActor(o.actor)
	var (
		err error
		out outcome
	)
	switch o.kind {
	case opCreate:
		var r Room
		if o.private {
			r, err = svc.CreatePrivateRoom(ctx, actor, o.name)
		} else {
			r, err = svc.CreateRoom(ctx, actor, o.name)
		}
		out.id = r.ID
	case opPost, opEdit, opDelete, opReact:
		var msg Message
		switch o.kind {
		case opPost:
			msg, err = svc.PostMessage(ctx, actor, o.room, o.text, o.key)
		case opEdit:
			msg, err = svc.EditMessage(ctx, actor, o.msg, o.version, o.text)
		case opDelete:
			msg, err = svc.DeleteMessage(ctx, actor, o.msg, o.version)
		case opReact:
			msg, err = svc.React(ctx, actor, o.msg, o.emoji)
		}
		if err == nil {
			out.id, out.msg = msg.ID, canonServiceMsg(msg)
		}
	case opAdd:
		var r Room
		r, err = svc.AddMember(ctx, actor, o.room, o.user)
		out.id = r.ID
	case opRemove:
		var r Room
		r, err = svc.RemoveMember(ctx, actor, o.room, o.user)
		out.id = r.ID
	}
	out.code, out.err = codeOfErr(err)
	if out.code != "" {
		out.id, out.msg = "", ""
	}
	return out
}

func (h *modelHarness) randomOp() op {
	rng := h.rng
	o := op{replica: rng.Intn(len(h.svcs)), actor: modelUsers[rng.Intn(len(modelUsers))]}
	pickRoom := func() string {
		if len(h.m.rooms) == 0 || rng.Intn(40) == 0 {
			return newRoomID() // a room that does not exist
		}
		return h.m.rooms[rng.Intn(len(h.m.rooms))].id
	}
	pickMsg := func() (string, *mMsg) {
		var ids []string
		for id := range h.m.all {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if len(ids) == 0 || rng.Intn(30) == 0 {
			return newMessageID(pickRoom()), nil
		}
		// Mostly recent messages: they are retained.
		var recent []string
		for _, r := range h.m.rooms {
			for _, msg := range r.msgs {
				recent = append(recent, msg.id)
			}
		}
		if len(recent) > 0 && rng.Intn(4) != 0 {
			id := recent[rng.Intn(len(recent))]
			return id, h.m.all[id]
		}
		id := ids[rng.Intn(len(ids))]
		return id, h.m.all[id]
	}
	// aimAtVersion aims an edit or a delete at a message, mostly at its
	// current version and as its author, sometimes off by one.
	aimAtVersion := func() {
		id, msg := pickMsg()
		o.msg, o.version = id, 1
		if msg != nil {
			o.version = msg.version
			if rng.Intn(2) == 0 {
				o.actor = msg.author
			}
		}
		if rng.Intn(6) == 0 {
			o.version = max(1, o.version+rng.Intn(3)-1)
		}
	}
	h.nextText++
	text := fmt.Sprintf("t%d", h.nextText)
	switch p := rng.Intn(100); {
	case p < 4:
		o.kind = opCreate
		o.private = rng.Intn(2) == 0
		names := []string{"general", "General", "random", "Ops", "ops", "plans"}
		o.name = names[rng.Intn(len(names))]
		if rng.Intn(3) == 0 {
			o.name = fmt.Sprintf("room %d", h.nextText)
		}
	case p < 40:
		o.kind = opPost
		o.room = pickRoom()
		o.text = text
		if rng.Intn(3) == 0 {
			o.key = fmt.Sprintf("k%d", rng.Intn(4))
			// Often a retry of the key's first post, with its text.
			if first, ok := h.m.keys[o.actor+"|"+o.room+"|"+o.key]; ok && rng.Intn(3) != 0 {
				if msg := h.m.all[first]; msg != nil {
					o.text = h.firstText(msg.id)
				}
			}
		}
	case p < 55:
		o.kind = opEdit
		o.text = text
		aimAtVersion()
	case p < 63:
		o.kind = opDelete
		aimAtVersion()
	case p < 80:
		o.kind = opReact
		o.msg, _ = pickMsg()
		o.emoji = []string{"👍", "🎉", "x"}[rng.Intn(3)]
	case p < 90:
		o.kind = opAdd
		o.room = pickRoom()
		o.user = modelUsers[rng.Intn(len(modelUsers))]
		if r := h.m.room(o.room); r != nil && r.private && len(r.members) > 0 && rng.Intn(3) != 0 {
			o.actor = r.members[rng.Intn(len(r.members))]
		}
	default:
		o.kind = opRemove
		o.room = pickRoom()
		o.user = modelUsers[rng.Intn(len(modelUsers))]
		if r := h.m.room(o.room); r != nil && r.private && len(r.members) > 0 && rng.Intn(3) != 0 {
			o.actor = r.members[rng.Intn(len(r.members))]
			if rng.Intn(2) == 0 {
				o.user = r.members[rng.Intn(len(r.members))]
			}
		}
	}
	return o
}

// firstText is the text a message was posted with.
func (h *modelHarness) firstText(id string) string {
	for _, r := range h.m.rooms {
		for _, ev := range r.events {
			if ev.typ == MessagePosted && ev.msgID == id {
				return ev.text
			}
		}
	}
	return ""
}

// openRefs opens the reference watchers of a new room on replicas 0 and 1:
// they see every event of the room.
func (h *modelHarness) openRefs(roomID string) {
	for rep := 0; rep < 2; rep++ {
		w, err := h.svcs[rep].Watch(h.ctx, RoomTopic(roomID))
		if err != nil {
			h.fatalf("reference watcher of %s on replica %d: %v", roomID, rep, err)
		}
		aw := &modelWatch{replica: rep, room: roomID, mode: "ref", w: w}
		go aw.collect(h.ctx)
		h.refs[roomID] = append(h.refs[roomID], aw)
	}
}

// waitRefs waits until the reference watcher on replica 0 of each room has
// as many events as the model.
func (h *modelHarness) waitRefs(m *model, rooms []string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		ok := true
		for _, id := range rooms {
			refs := h.refs[id]
			r := m.room(id)
			if len(refs) == 0 || r == nil {
				continue
			}
			recs, _ := refs[0].snapshot()
			if len(recs) < len(r.events) {
				ok = false
			}
		}
		if ok || time.Now().After(deadline) {
			return ok
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitRefsLeast waits until the reference watcher on replica 0 of each
// room has as many events as the one of models with the fewest there.
func (h *modelHarness) waitRefsLeast(models []*model, rooms []string, d time.Duration) {
	least := &model{}
	for _, id := range rooms {
		var fewest *mRoom
		for _, m := range models {
			if r := m.room(id); r != nil && (fewest == nil || len(r.events) < len(fewest.events)) {
				fewest = r
			}
		}
		if fewest != nil {
			least.rooms = append(least.rooms, fewest)
		}
	}
	h.waitRefs(least, rooms, d)
}

func sameEvents(recs []modelRecord, evs []mEvent) bool {
	if len(recs) != len(evs) {
		return false
	}
	for i, r := range recs {
		e := evs[i]
		if r.typ != e.typ || r.msgID != e.msgID || r.userID != e.userID {
			return false
		}
	}
	return true
}

// sameReactions reports whether the reactions after each reaction event
// are alike: what tells the order of concurrent reactions to one message
// by different users apart, which sameEvents cannot.
func sameReactions(recs []modelRecord, evs []mEvent) bool {
	for i, r := range recs {
		if i < len(evs) && r.typ == ReactionToggled && r.reacts != evs[i].reacts {
			return false
		}
	}
	return true
}

// step runs one command, or a few at once on different replicas.
func (h *modelHarness) step() {
	n := 1
	if h.rng.Intn(5) == 0 {
		n = 2 + h.rng.Intn(2)
	}
	ops := make([]op, n)
	for i := range ops {
		ops[i] = h.randomOp()
		if n > 1 {
			ops[i].replica = i % len(h.svcs)
		}
	}
	// A concurrent batch often aims at one message or room, to race.
	if n > 1 && h.rng.Intn(2) == 0 {
		for i := 1; i < n; i++ {
			if ops[i].kind == ops[0].kind {
				ops[i].msg, ops[i].room, ops[i].version, ops[i].user, ops[i].name = ops[0].msg, ops[0].room, ops[0].version, ops[0].user, ops[0].name
				if ops[i].kind == opPost && h.rng.Intn(2) == 0 {
					// The same post retried on another replica at once.
					ops[i].actor, ops[i].text, ops[i].key = ops[0].actor, ops[0].text, ops[0].key
					if ops[i].key == "" {
						ops[i].key = "kc"
						ops[0].key = "kc"
					}
				}
			}
		}
	}
	got := make([]outcome, n)
	if n == 1 {
		got[0] = h.run(ops[0])
	} else {
		var wg sync.WaitGroup
		for i := range ops {
			wg.Go(func() { got[i] = h.run(ops[i]) })
		}
		wg.Wait()
	}
	for i := range ops {
		h.stats[fmt.Sprintf("%d/%s", ops[i].kind, got[i].code)]++
		h.history = append(h.history, fmt.Sprintf("%s -> %s", ops[i], got[i]))
		if got[i].code == CodeOutcomeUnknown || got[i].code == CodeUnavailable || got[i].code == CodeInternal || got[i].code == "GO_ERROR" {
			h.fatalf("%s answered %s", ops[i], got[i])
		}
	}
	if n > 1 {
		h.history[len(h.history)-n] = "[concurrent] " + h.history[len(h.history)-n]
	}
	var touched []string
	for _, o := range ops {
		r := o.room
		if r == "" && o.msg != "" {
			r, _ = roomOfMessage(o.msg)
		}
		touched = append(touched, r)
	}
	// Every order of the batch that explains the answers, and whose events
	// are those the log stored in that order.
	perms := permutations(n)
	var candidates []*model
	var explain []string
	for _, p := range perms {
		m := h.m.clone()
		ok := true
		for _, i := range p {
			want := m.apply(ops[i], got[i])
			if n > 1 {
				// A change is answered as the message is when this
				// replica has applied it: a concurrent one may show.
				want.msg = ""
			}
			if !want.matches(got[i]) {
				ok = false
				explain = append(explain, fmt.Sprintf("order %v: %s: model says %s, service %s", p, ops[i], want, got[i]))
				break
			}
		}
		if ok {
			candidates = append(candidates, m)
		}
	}
	if len(candidates) == 0 {
		h.fatalf("no order of the commands explains the answers:\n  %s", strings.Join(explain, "\n  "))
	}
	chosen := candidates[0]
	if len(candidates) > 1 {
		chosen = nil
		// Under load the reference watchers may take seconds to apply
		// what the commands stored; whatever the order, the log holds
		// at least the events of the candidate with the fewest.
		h.waitRefsLeast(candidates, touched, 15*time.Second)
		for _, m := range candidates {
			h.waitRefs(m, touched, 3*time.Second)
			match := true
			for _, id := range touched {
				if refs := h.refs[id]; len(refs) > 0 && m.room(id) != nil {
					recs, _ := refs[0].snapshot()
					if !sameEvents(recs, m.room(id).events) || !sameReactions(recs, m.room(id).events) {
						match = false
					}
				}
			}
			if match {
				chosen = m
				break
			}
		}
		if chosen == nil {
			h.fatalf("no order of the commands that explains the answers matches the events the log stored")
		}
	}
	before := len(h.m.rooms)
	h.m = chosen
	for _, r := range h.m.rooms[before:] {
		h.openRefs(r.id)
	}
}

func permutations(n int) [][]int {
	switch n {
	case 1:
		return [][]int{{0}}
	case 2:
		return [][]int{{0, 1}, {1, 0}}
	}
	return [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}}
}

// openWatcher opens a watcher at a random moment on a random replica.
func (h *modelHarness) openWatcher() {
	if len(h.m.rooms) == 0 {
		return
	}
	r := h.m.rooms[h.rng.Intn(len(h.m.rooms))]
	rep := h.rng.Intn(len(h.svcs))
	svc := h.svcs[rep]
	aw := &modelWatch{replica: rep, room: r.id, openedAt: len(r.events)}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	var (
		w   *Watcher
		err error
	)
	cursor := func() uint64 {
		recs, _ := h.refs[r.id][0].snapshot()
		switch {
		case len(recs) > 0 && h.rng.Intn(2) == 0:
			return recs[h.rng.Intn(len(recs))].seq
		case h.rng.Intn(4) == 0:
			return 0
		}
		page, err := svc.Messages(ctx, r.id, Window{Last: 2})
		if err != nil {
			h.fatalf("Messages of %s on replica %d: %v", r.id, rep, err)
		}
		return page.Last
	}
	switch h.rng.Intn(3) {
	case 0:
		aw.mode = "live"
		w, err = svc.Watch(ctx, RoomTopic(r.id))
	case 1:
		aw.mode = "after"
		aw.cursor = cursor()
		w, err = svc.WatchAfter(ctx, RoomTopic(r.id), aw.cursor)
	default:
		aw.mode = "for"
		aw.cursor = cursor()
		aw.viewer = modelUsers[h.rng.Intn(len(modelUsers))]
		w, err = svc.WatchAfterFor(ctx, RoomTopic(r.id), aw.cursor, aw.viewer)
	}
	desc := fmt.Sprintf("watcher %s on replica %d of room %s (private=%v) cursor %d viewer %q", aw.mode, rep, r.id, r.private, aw.cursor, aw.viewer)
	h.history = append(h.history, "open "+desc)
	code, msg := codeOfErr(err)
	h.stats["watch "+aw.mode+"/"+string(code)]++
	switch {
	case code == CodeCursorExpired:
		return
	case code == CodeForbidden && aw.mode == "for" && !r.isMember(aw.viewer):
		return
	case err != nil:
		h.fatalf("%s: %s %s", desc, code, msg)
	case aw.mode == "for" && r.private && !r.isMember(aw.viewer) && !slices.ContainsFunc(r.events, func(e mEvent) bool { return e.typ == MemberRemoved && e.userID == aw.viewer }):
		w.Close()
		h.fatalf("%s: admitted a user who was never a member", desc)
	}
	aw.w = w
	go aw.collect(h.ctx)
	h.watches = append(h.watches, aw)
}

// state is what a replica answers about everything the model knows,
// written canonically.
func (h *modelHarness) state(svc *Service, m *model) (string, error) {
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	defer cancel()
	var b strings.Builder
	for _, viewer := range append([]string{""}, modelUsers...) {
		page, err := svc.Rooms(ctx, viewer, Window{First: 100})
		if err != nil {
			return "", err
		}
		var ids []string
		for _, r := range page.Items {
			ids = append(ids, r.ID)
		}
		fmt.Fprintf(&b, "rooms(%q) = %d %v\n", viewer, page.TotalCount, ids)
	}
	for _, r := range m.rooms {
		page, err := svc.Messages(ctx, r.id, Window{Last: 100})
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "room %s: %d messages\n", r.id, page.TotalCount)
		for _, msg := range page.Items {
			fmt.Fprintf(&b, "  %s\n", canonServiceMsg(msg))
		}
		for i, msg := range page.Items {
			fwd, err := svc.Messages(ctx, r.id, Window{After: msg.Seq, First: 2})
			if err != nil {
				code, _ := codeOfErr(err)
				fmt.Fprintf(&b, "  after %d: %s\n", i, code)
				continue
			}
			var ids []string
			for _, f := range fwd.Items {
				ids = append(ids, f.ID)
			}
			fmt.Fprintf(&b, "  after %d: %v next=%v\n", i, ids, fwd.HasNextPage)
		}
		stats, err := svc.RoomStats(ctx, r.id)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "  count %d\n", stats.MessageCount)
		if r.private {
			mp, err := svc.Members(ctx, r.id, Window{First: 100})
			if err != nil {
				return "", err
			}
			var ids []string
			for _, mem := range mp.Items {
				ids = append(ids, mem.User.ID)
			}
			fmt.Fprintf(&b, "  members %v\n", ids)
			for _, u := range modelUsers {
				_, ok, err := svc.VisibleRoom(ctx, u, r.id)
				code, _ := codeOfErr(err)
				fmt.Fprintf(&b, "  visible(%s) = %v %s\n", u, ok, code)
			}
		}
	}
	for _, id := range m.sortedIDs() {
		msg := m.all[id]
		got, ok, err := svc.Message(ctx, msg.author, id)
		code, _ := codeOfErr(err)
		if ok {
			fmt.Fprintf(&b, "message(%s) = %s\n", id, canonServiceMsg(got))
		} else {
			fmt.Fprintf(&b, "message(%s) = none %s\n", id, code)
		}
	}
	return b.String(), nil
}

func (m *model) sortedIDs() []string {
	var ids []string
	for id := range m.all {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *model) state(users []string) string {
	var b strings.Builder
	for _, viewer := range append([]string{""}, users...) {
		var ids []string
		for _, r := range m.rooms {
			if !r.private || (viewer != "" && slices.Contains(r.members, viewer)) {
				ids = append(ids, r.id)
			}
		}
		fmt.Fprintf(&b, "rooms(%q) = %d %v\n", viewer, len(ids), ids)
	}
	for _, r := range m.rooms {
		fmt.Fprintf(&b, "room %s: %d messages\n", r.id, len(r.msgs))
		count := 0
		for _, msg := range r.msgs {
			fmt.Fprintf(&b, "  %s\n", canonModelMsg(msg))
			if !msg.deleted {
				count++
			}
		}
		for i := range r.msgs {
			var ids []string
			for _, f := range r.msgs[i+1 : min(len(r.msgs), i+3)] {
				ids = append(ids, f.id)
			}
			fmt.Fprintf(&b, "  after %d: %v next=%v\n", i, ids, len(r.msgs) > i+3)
		}
		fmt.Fprintf(&b, "  count %d\n", count)
		if r.private {
			fmt.Fprintf(&b, "  members %v\n", r.members)
			for _, u := range users {
				if slices.Contains(r.members, u) {
					fmt.Fprintf(&b, "  visible(%s) = true \n", u)
				} else {
					fmt.Fprintf(&b, "  visible(%s) = false %s\n", u, CodeForbidden)
				}
			}
		}
	}
	for _, id := range m.sortedIDs() {
		msg := m.all[id]
		r := m.room(msg.room)
		switch {
		case !r.isMember(msg.author):
			fmt.Fprintf(&b, "message(%s) = none %s\n", id, CodeForbidden)
		case !m.retained[id]:
			fmt.Fprintf(&b, "message(%s) = none \n", id)
		default:
			fmt.Fprintf(&b, "message(%s) = %s\n", id, canonModelMsg(msg))
		}
	}
	return b.String()
}

// checkpoint waits until every replica answers as the model does.
func (h *modelHarness) checkpoint() {
	want := h.m.state(modelUsers)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var bad []string
		for i, svc := range h.svcs {
			got, err := h.state(svc, h.m)
			if err != nil {
				bad = append(bad, fmt.Sprintf("replica %d: %v", i, err))
			} else if got != want {
				bad = append(bad, fmt.Sprintf("replica %d:\n%s", i, lineDiff(want, got)))
			}
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			h.fatalf("replicas disagree with the model:\n%s", strings.Join(bad, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var out []string
	for i := 0; i < max(len(w), len(g)); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			out = append(out, fmt.Sprintf("  model:   %s\n  replica: %s", a, b))
		}
	}
	if len(out) > 12 {
		out = out[:12]
	}
	return strings.Join(out, "\n")
}

func isMessageEvent(t EventType) bool { return !isMemberEvent(t) }

// checkWatchers checks every watcher's stream against the reference ones
// and the model, once every replica has converged.
func (h *modelHarness) checkWatchers() {
	for _, r := range h.m.rooms {
		if !h.waitRefs(h.m, []string{r.id}, 5*time.Second) {
			recs, _ := h.refs[r.id][0].snapshot()
			h.fatalf("reference watcher of room %s has %d events, the model %d", r.id, len(recs), len(r.events))
		}
		refs := h.refs[r.id]
		ref, err := refs[0].snapshot()
		if err != nil {
			h.fatalf("reference watcher of room %s on replica 0 ended: %v", r.id, err)
		}
		if !sameEvents(ref, r.events) {
			h.fatalf("room %s: reference events %v differ from the model's %v", r.id, ref, r.events)
		}
		for i, rec := range ref {
			if i > 0 && rec.seq <= ref[i-1].seq {
				h.fatalf("room %s: reference events out of order: %v", r.id, ref)
			}
			if e := r.events[i]; isMessageEvent(e.typ) && (rec.text != e.text || rec.version != e.version) {
				h.fatalf("room %s event %d (seq %d, %s of %s): live change shows %q v%d, the event left %q v%d",
					r.id, i, rec.seq, rec.typ, rec.msgID, rec.text, rec.version, e.text, e.version)
			}
		}
		deadline := time.Now().Add(5 * time.Second)
		for _, other := range append(refs[1:], h.watchersOf(r.id)...) {
			var recs []modelRecord
			var expect []modelRecord
			for {
				recs, err = other.snapshot()
				expect = other.expected(ref, h.m.room(r.id))
				if err != nil || len(recs) >= len(expect) || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err != nil {
				h.fatalf("watcher %s on replica %d of room %s (cursor %d, viewer %q) ended: %v", other.mode, other.replica, r.id, other.cursor, other.viewer, err)
			}
			if other.mode == "live" {
				// A contiguous suffix of the reference events.
				if len(recs) > len(ref) || len(recs) < len(ref)-other.openedAt {
					h.fatalf("live watcher on replica %d of room %s opened after %d events got %d of %d: %v", other.replica, r.id, other.openedAt, len(recs), len(ref), recs)
				}
				expect = ref[len(ref)-len(recs):]
			} else if other.mode != "ref" {
				recs = slices.DeleteFunc(recs, func(x modelRecord) bool { return !isMessageEvent(x.typ) })
			}
			if len(recs) != len(expect) {
				h.fatalf("watcher %s on replica %d of room %s (cursor %d, viewer %q): %d events, want %d:\n got  %v\n want %v",
					other.mode, other.replica, r.id, other.cursor, other.viewer, len(recs), len(expect), recs, expect)
			}
			for i := range recs {
				g, w := recs[i], expect[i]
				if g.seq != w.seq || g.typ != w.typ || g.msgID != w.msgID || g.userID != w.userID {
					h.fatalf("watcher %s on replica %d of room %s (cursor %d, viewer %q): event %d is %+v, want %+v\n got  %v\n want %v",
						other.mode, other.replica, r.id, other.cursor, other.viewer, i, g, w, recs, expect)
				}
			}
		}
	}
}

func (h *modelHarness) watchersOf(room string) []*modelWatch {
	var out []*modelWatch
	for _, aw := range h.watches {
		if aw.room == room {
			out = append(out, aw)
		}
	}
	return out
}

// expected is what a watcher should have received, given the reference
// events of its room.
func (aw *modelWatch) expected(ref []modelRecord, r *mRoom) []modelRecord {
	switch aw.mode {
	case "ref", "live":
		return ref
	}
	from := aw.cursor
	if aw.mode == "for" && r.private {
		// A member's replay starts at their joining (the last addition
		// before the watcher was opened).
		for i, rec := range ref {
			if i >= aw.openedAt {
				break
			}
			if rec.typ == MemberAdded && rec.userID == aw.viewer {
				from = max(from, rec.seq)
			}
		}
	}
	var out []modelRecord
	for _, rec := range ref {
		if rec.seq > from && isMessageEvent(rec.typ) {
			out = append(out, rec)
		}
	}
	return out
}

func TestReplicasAgreeWithModel(t *testing.T) {
	if testing.Short() {
		t.Skip("a model-based run of three replicas takes about half a minute")
	}
	seeds := []int64{1, 4}
	if s := os.Getenv("HERALD_MODEL_SEED"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seeds = []int64{n}
	}
	ops := 150
	if s := os.Getenv("HERALD_MODEL_OPS"); s != "" {
		ops, _ = strconv.Atoi(s)
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Logf("replay with HERALD_MODEL_SEED=%d", seed)
			runModelCheck(t, seed, ops)
		})
	}
}

func runModelCheck(t *testing.T, seed int64, ops int) {
	const h = modelHistory
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: h})
	a := startService(t, first, Options{History: h})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: h}), Options{History: h})
	// A room cache so small that every room nobody watches here is dropped
	// after each use, and loaded from the log for the next.
	c := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: h}), Options{History: h, RoomCache: 1})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	hs := &modelHarness{t: t, seed: seed, rng: rand.New(rand.NewSource(seed)), svcs: []*Service{a, b, c}, m: newModel(h), ctx: ctx, refs: map[string][]*modelWatch{}, stats: map[string]int{}}
	// Start with a public room and two private ones.
	for _, o := range []op{
		{kind: opCreate, actor: "alice", name: "lobby"},
		{kind: opCreate, actor: "alice", name: "secret", private: true, replica: 1},
		{kind: opCreate, actor: "bob", name: "plans", private: true, replica: 2},
	} {
		got := hs.run(o)
		hs.history = append(hs.history, fmt.Sprintf("%s -> %s", o, got))
		if got.code != "" {
			hs.fatalf("%s: %s", o, got)
		}
		hs.m.apply(o, got)
		hs.openRefs(got.id)
	}
	start := time.Now()
	for i := 0; i < ops && time.Since(start) < 12*time.Second; i++ {
		if hs.rng.Intn(12) == 0 {
			hs.openWatcher()
		}
		hs.step()
		if i%50 == 49 {
			hs.checkpoint()
		}
	}
	hs.checkpoint()
	hs.checkWatchers()
	t.Logf("seed %d: %v in %v", seed, hs.stats, time.Since(start))
	for _, aw := range hs.watches {
		aw.w.Close()
	}
}
