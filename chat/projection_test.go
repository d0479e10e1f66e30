package chat

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	alice = Actor{ID: "alice", Name: "Alice"}
	bob   = Actor{ID: "bob", Name: "Bob"}
)

const (
	roomA = "ra"
	roomB = "rb"
	msgA1 = "ra_m1"
	msgA2 = "ra_m2"
)

func t0(seq uint64) time.Time { return time.Unix(1_700_000_000+int64(seq), 0).UTC() }

// applyAll applies events with sequences 1..n and returns the outcomes.
func applyAll(t *testing.T, p *Projection, events []Event) []Outcome {
	t.Helper()
	outs := make([]Outcome, len(events))
	for i, e := range events {
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		seq := p.LastSeq() + 1
		outs[i] = p.Apply(seq, e.Subject(), data, t0(seq))
	}
	return outs
}

func created(actor Actor, room, name string) Event {
	return Event{Type: RoomCreated, Actor: actor, RoomID: room, Name: name}
}
func posted(actor Actor, room, msg, text string) Event {
	return Event{Type: MessagePosted, Actor: actor, RoomID: room, MessageID: msg, Text: text}
}
func edited(actor Actor, msg string, version int, text string) Event {
	room, _ := roomOfMessage(msg)
	return Event{Type: MessageEdited, Actor: actor, RoomID: room, MessageID: msg, Version: version, Text: text}
}
func deleted(actor Actor, msg string, version int) Event {
	room, _ := roomOfMessage(msg)
	return Event{Type: MessageDeleted, Actor: actor, RoomID: room, MessageID: msg, Version: version}
}
func reacted(actor Actor, msg, emoji string) Event {
	room, _ := roomOfMessage(msg)
	return Event{Type: ReactionToggled, Actor: actor, RoomID: room, MessageID: msg, Emoji: emoji}
}

func TestProjectionRules(t *testing.T) {
	base := []Event{created(alice, roomA, "general"), posted(alice, roomA, msgA1, "hello")}
	tests := []struct {
		name    string
		history int
		events  []Event // applied after base; the last one is judged
		want    Code    // "" = accepted
		// setupRejects: the events before the last are rejected too, on purpose.
		setupRejects bool
		check        func(t *testing.T, p *Projection)
	}{
		{name: "create room", events: []Event{created(bob, roomB, "random")}, check: func(t *testing.T, p *Projection) {
			r, ok := p.Room(roomB)
			if !ok || r.Name != "random" || r.CreatedBy != bob || r.Seq != 3 || !r.CreatedAt.Equal(t0(3)) {
				t.Errorf("room = %+v, %v", r, ok)
			}
		}},
		{name: "duplicate room name", events: []Event{created(bob, roomB, "general")}, want: CodeConflict},
		{name: "duplicate room name ignores case", events: []Event{created(bob, roomB, "GENERAL")}, want: CodeConflict},
		{name: "duplicate room id", events: []Event{created(bob, roomA, "other")}, want: CodeConflict},
		{name: "empty room name", events: []Event{created(bob, roomB, "  ")}, want: CodeBadUserInput},
		{name: "room name padded", events: []Event{created(bob, roomB, " x")}, want: CodeBadUserInput},
		{name: "room name too long", events: []Event{created(bob, roomB, strings.Repeat("n", MaxRoomNameLength+1))}, want: CodeBadUserInput},
		{name: "room name control char", events: []Event{created(bob, roomB, "a\x07b")}, want: CodeBadUserInput},
		{name: "anonymous actor", events: []Event{created(Actor{}, roomB, "x")}, want: CodeUnauthenticated},
		{name: "post counts", events: []Event{posted(bob, roomA, msgA2, "hi")}, check: func(t *testing.T, p *Projection) {
			r, _ := p.Room(roomA)
			if r.MessageCount != 2 || !r.LastMessageAt.Equal(t0(3)) {
				t.Errorf("room = %+v", r)
			}
			m, _ := p.Message(msgA2)
			if m.Text != "hi" || m.Author != bob || m.Version != 1 || m.Seq != 3 || m.UpdatedSeq != 3 {
				t.Errorf("message = %+v", m)
			}
		}},
		{name: "post to unknown room", events: []Event{posted(bob, roomB, "rb_m1", "hi")}, want: CodeNotFound},
		{name: "post without an identity", events: []Event{posted(Actor{}, roomA, msgA2, "hi")}, want: CodeUnauthenticated},
		{name: "edit without an identity", events: []Event{edited(Actor{}, msgA1, 1, "x")}, want: CodeUnauthenticated},
		{name: "delete without an identity", events: []Event{deleted(Actor{}, msgA1, 1)}, want: CodeUnauthenticated},
		{name: "react without an identity", events: []Event{reacted(Actor{}, msgA1, "👍")}, want: CodeUnauthenticated},
		{name: "post empty text", events: []Event{posted(bob, roomA, msgA2, " \n\t")}, want: CodeBadUserInput},
		{name: "post over-long text", events: []Event{posted(bob, roomA, msgA2, strings.Repeat("é", MaxTextLength+1))}, want: CodeBadUserInput},
		{name: "post longest text", events: []Event{posted(bob, roomA, msgA2, strings.Repeat("é", MaxTextLength))}},
		{name: "post duplicate message id", events: []Event{posted(bob, roomA, msgA1, "again")}, want: CodeConflict},
		{name: "edit", events: []Event{edited(alice, msgA1, 1, "hello!")}, check: func(t *testing.T, p *Projection) {
			m, _ := p.Message(msgA1)
			if m.Text != "hello!" || m.Version != 2 || !m.EditedAt.Equal(t0(3)) || m.UpdatedSeq != 3 {
				t.Errorf("message = %+v", m)
			}
		}},
		{name: "edit by someone else", events: []Event{edited(bob, msgA1, 1, "mine")}, want: CodeForbidden},
		{name: "edit stale version", events: []Event{edited(alice, msgA1, 1, "a"), edited(alice, msgA1, 1, "b")}, want: CodeConflict,
			check: func(t *testing.T, p *Projection) {
				if m, _ := p.Message(msgA1); m.Text != "a" || m.Version != 2 {
					t.Errorf("message = %+v", m)
				}
			}},
		{name: "edit future version", events: []Event{edited(alice, msgA1, 7, "a")}, want: CodeConflict},
		{name: "edit unknown message", events: []Event{edited(alice, msgA2, 1, "a")}, want: CodeNotFound},
		{name: "edit empty text", events: []Event{edited(alice, msgA1, 1, "")}, want: CodeBadUserInput},
		{name: "edit deleted", events: []Event{deleted(alice, msgA1, 1), edited(alice, msgA1, 2, "back")}, want: CodeConflict},
		{name: "delete", events: []Event{reacted(bob, msgA1, "👍"), deleted(alice, msgA1, 1)}, check: func(t *testing.T, p *Projection) {
			m, _ := p.Message(msgA1)
			if !m.Deleted || m.Text != "" || m.Version != 2 || len(m.Reactions) != 0 {
				t.Errorf("message = %+v", m)
			}
			if r, _ := p.Room(roomA); r.MessageCount != 0 {
				t.Errorf("message count = %d, want 0", r.MessageCount)
			}
		}},
		{name: "delete by someone else", events: []Event{deleted(bob, msgA1, 1)}, want: CodeForbidden},
		{name: "delete stale version", events: []Event{deleted(alice, msgA1, 2)}, want: CodeConflict},
		{name: "delete twice", events: []Event{deleted(alice, msgA1, 1), deleted(alice, msgA1, 2)}, want: CodeConflict},
		{name: "react toggles", events: []Event{reacted(bob, msgA1, "👍"), reacted(alice, msgA1, "👍"), reacted(bob, msgA1, "🎉"), reacted(bob, msgA1, "👍")},
			check: func(t *testing.T, p *Projection) {
				m, _ := p.Message(msgA1)
				want := []Reaction{{Emoji: "👍", UserIDs: []string{"alice"}}, {Emoji: "🎉", UserIDs: []string{"bob"}}}
				if !reflect.DeepEqual(m.Reactions, want) || m.Version != 1 {
					t.Errorf("message = %+v", m)
				}
			}},
		{name: "react off removes emoji", events: []Event{reacted(bob, msgA1, "👍"), reacted(bob, msgA1, "👍")}, check: func(t *testing.T, p *Projection) {
			if m, _ := p.Message(msgA1); len(m.Reactions) != 0 {
				t.Errorf("reactions = %+v", m.Reactions)
			}
		}},
		{name: "react on deleted", events: []Event{deleted(alice, msgA1, 1), reacted(bob, msgA1, "👍")}, want: CodeConflict},
		{name: "react unknown message", events: []Event{reacted(bob, msgA2, "👍")}, want: CodeNotFound},
		{name: "react empty emoji", events: []Event{reacted(bob, msgA1, "")}, want: CodeBadUserInput},
		{name: "react emoji with space", events: []Event{reacted(bob, msgA1, "a b")}, want: CodeBadUserInput},
		{name: "react emoji too long", events: []Event{reacted(bob, msgA1, strings.Repeat("x", MaxEmojiLength+1))}, want: CodeBadUserInput},
		{name: "history evicts oldest", history: 2, events: []Event{posted(bob, roomA, msgA2, "2"), posted(bob, roomA, "ra_m3", "3")},
			check: func(t *testing.T, p *Projection) {
				if _, ok := p.Message(msgA1); ok {
					t.Error("oldest message still retained")
				}
				page, _ := p.Messages(roomA, Window{})
				if len(page.Items) != 2 || page.Items[0].ID != msgA2 || page.TotalCount != 2 {
					t.Errorf("page = %+v", page)
				}
				if r, ok := p.Room(roomA); !ok || r.MessageCount != 2 || r.Name != "general" {
					t.Errorf("room = %+v, %v (metadata must survive retention)", r, ok)
				}
			}},
		{name: "evicted message cannot change", history: 1, events: []Event{posted(bob, roomA, msgA2, "2"), edited(alice, msgA1, 1, "x")}, want: CodeNotFound},
		{name: "rejected posts count toward history", history: 2, setupRejects: true, want: CodeBadUserInput, events: []Event{posted(bob, roomA, msgA2, " "), posted(bob, roomA, "ra_m3", " ")},
			check: func(t *testing.T, p *Projection) {
				if _, ok := p.Message(msgA1); ok {
					t.Error("message survived two later entries on its posts subject with history 2")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProjection(tt.history)
			for i, out := range applyAll(t, p, base) {
				if out.Err != nil {
					t.Fatalf("base event %d rejected: %v", i, out.Err)
				}
			}
			outs := applyAll(t, p, tt.events)
			for i, out := range outs[:len(outs)-1] {
				if out.Err != nil && !tt.setupRejects {
					t.Fatalf("setup event %d rejected: %v", i, out.Err)
				}
			}
			last := outs[len(outs)-1]
			switch {
			case tt.want == "" && last.Err != nil:
				t.Fatalf("rejected with %s: %v", last.Err.Code, last.Err)
			case tt.want != "" && (last.Err == nil || last.Err.Code != tt.want):
				t.Fatalf("outcome = %+v, want rejection %s", last, tt.want)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestProjectionRejectsMalformedEntries(t *testing.T) {
	good, _ := posted(alice, roomA, msgA1, "hi").Encode()
	tests := []struct {
		name, subject, data string
	}{
		{"not json", "herald.room.ra.posts", "{"},
		{"unknown field", "herald.room.ra.meta", `{"v":1,"type":"room.created","actor":{"id":"a"},"roomId":"ra","name":"x","extra":1}`},
		{"unknown format", "herald.room.ra.meta", `{"v":9,"type":"room.created","actor":{"id":"a"},"roomId":"ra","name":"x"}`},
		{"unknown type", "herald.room.ra.meta", `{"v":1,"type":"room.burned","actor":{"id":"a"},"roomId":"ra"}`},
		{"bad room id", "herald.room.RA.meta", `{"v":1,"type":"room.created","actor":{"id":"a"},"roomId":"RA","name":"x"}`},
		{"message of another room", "herald.room.ra.posts", `{"v":1,"type":"message.posted","actor":{"id":"a"},"roomId":"ra","messageId":"rb_m1","text":"x"}`},
		{"wrong subject", "herald.room.rb.posts", string(good)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProjection(0)
			applyAll(t, p, []Event{created(alice, roomA, "general")})
			out := p.Apply(2, tt.subject, []byte(tt.data), t0(2))
			if out.Err == nil || out.Err.Code != CodeInternal {
				t.Fatalf("outcome = %+v, want an INTERNAL rejection", out)
			}
			if p.LastSeq() != 2 {
				t.Errorf("LastSeq = %d, want 2: a bad entry is still consumed", p.LastSeq())
			}
			if _, ok := p.Message(msgA1); ok {
				t.Error("a malformed entry changed the read model")
			}
		})
	}
}

func TestProjectionIgnoresRedelivery(t *testing.T) {
	p := NewProjection(0)
	applyAll(t, p, []Event{created(alice, roomA, "general"), posted(alice, roomA, msgA1, "hi")})
	data, _ := reacted(bob, msgA1, "👍").Encode()
	p.Apply(3, "herald.room.ra.msg."+msgA1, data, t0(3))
	p.Apply(3, "herald.room.ra.msg."+msgA1, data, t0(3)) // again: must not toggle back
	if m, _ := p.Message(msgA1); len(m.Reactions) != 1 {
		t.Fatalf("reactions = %+v after a redelivered toggle", m.Reactions)
	}
}

type logEntry struct {
	seq     uint64
	subject string
	data    []byte
}

// randomLog makes a plausible log: rooms, posts, edits, deletions and
// reactions by several actors, with some proposals that must be rejected.
// No message gets more than maxChanges changes.
func randomLog(r *rand.Rand, n, maxChanges int) []logEntry {
	actors := []Actor{alice, bob, {ID: "carol"}}
	var rooms, msgs []string
	changes := map[string]int{}
	versions := map[string]int{}
	var out []logEntry
	for seq := uint64(1); len(out) < n; seq++ {
		a := actors[r.IntN(len(actors))]
		var e Event
		switch k := r.IntN(10); {
		case len(rooms) == 0 || k == 0:
			id := fmt.Sprintf("r%d", seq)
			rooms = append(rooms, id)
			e = created(a, id, fmt.Sprintf("room %d", r.IntN(8))) // names collide sometimes
		case len(msgs) == 0 || k < 6:
			room := rooms[r.IntN(len(rooms))]
			id := fmt.Sprintf("%s_m%d", room, seq)
			msgs = append(msgs, id)
			versions[id] = 1
			e = posted(a, room, id, []string{"hi", "hello", "", "yo"}[r.IntN(4)])
		default:
			id := msgs[r.IntN(len(msgs))]
			if changes[id] >= maxChanges {
				continue
			}
			changes[id]++
			v := versions[id] - r.IntN(2) // sometimes stale
			switch k {
			case 6, 7:
				e = edited(a, id, v, fmt.Sprintf("edit %d", seq))
			case 8:
				e = reacted(a, id, []string{"👍", "🎉"}[r.IntN(2)])
			default:
				e = deleted(a, id, v)
			}
			if e.Type != ReactionToggled {
				versions[id]++ // a guess: the proposer does not know whether it is accepted
			}
		}
		data, _ := e.Encode()
		out = append(out, logEntry{seq: uint64(len(out) + 1), subject: e.Subject(), data: data})
	}
	return out
}

// visible is everything queries can see.
func visible(p *Projection) (rooms []Room, msgs map[string][]Message) {
	msgs = map[string][]Message{}
	for _, room := range p.Rooms(Window{}).Items {
		rooms = append(rooms, room)
		page, _ := p.Messages(room.ID, Window{})
		msgs[room.ID] = page.Items
	}
	return rooms, msgs
}

func replay(log []logEntry, history int) *Projection {
	p := NewProjection(history)
	for _, e := range log {
		p.Apply(e.seq, e.subject, e.data, t0(e.seq))
	}
	return p
}

func TestProjectionReplayIsDeterministic(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		log := randomLog(rand.New(rand.NewPCG(seed, 0)), 400, 1000)
		a, b := replay(log, 0), replay(log, 0)
		ra, ma := visible(a)
		rb, mb := visible(b)
		if !reflect.DeepEqual(ra, rb) || !reflect.DeepEqual(ma, mb) {
			t.Fatalf("seed %d: two replays of the same log differ", seed)
		}
		if len(ra) == 0 {
			t.Fatalf("seed %d: the random log created no rooms", seed)
		}
	}
}

// TestProjectionReplayAfterRetention checks the promise that retention never
// makes the read model wrong: a replica that rebuilds from only what the
// log retains (the last `history` entries of every subject) sees what a
// replica that applied everything live sees.
func TestProjectionReplayAfterRetention(t *testing.T) {
	const history = 5
	for seed := uint64(1); seed <= 20; seed++ {
		log := randomLog(rand.New(rand.NewPCG(seed, 1)), 600, history)
		live := replay(log, history)

		perSubject := map[string]int{}
		for _, e := range log {
			perSubject[e.subject]++
		}
		var retained []logEntry
		for _, e := range log {
			if perSubject[e.subject] <= history {
				retained = append(retained, e)
			}
			perSubject[e.subject]--
		}
		if len(retained) == len(log) {
			t.Fatalf("seed %d: retention discarded nothing; the test proves nothing", seed)
		}
		rebuilt := replay(retained, history)

		rl, ml := visible(live)
		rr, mr := visible(rebuilt)
		if !reflect.DeepEqual(rl, rr) {
			t.Fatalf("seed %d: rooms differ after rebuild:\nlive    %+v\nrebuilt %+v", seed, rl, rr)
		}
		if !reflect.DeepEqual(ml, mr) {
			t.Fatalf("seed %d: messages differ after rebuild", seed)
		}
	}
}

func TestWindowBounds(t *testing.T) {
	seqs := []uint64{10, 20, 30, 40, 50}
	at := func(i int) uint64 { return seqs[i] }
	tests := []struct {
		w      Window
		lo, hi int
	}{
		{Window{}, 0, 5},
		{Window{First: 2}, 0, 2},
		{Window{Last: 2}, 3, 5},
		{Window{After: 20, First: 2}, 2, 4},
		{Window{After: 25}, 2, 5},
		{Window{Before: 40, Last: 2}, 1, 3},
		{Window{Before: 10}, 0, 0},
		{Window{After: 50}, 5, 5},
		{Window{After: 40, Before: 20}, 4, 4},
		{Window{First: 9}, 0, 5},
	}
	for _, tt := range tests {
		if lo, hi := bounds(len(seqs), at, tt.w); lo != tt.lo || hi != tt.hi {
			t.Errorf("bounds(%+v) = [%d,%d), want [%d,%d)", tt.w, lo, hi, tt.lo, tt.hi)
		}
	}
}

func TestChangesAfter(t *testing.T) {
	p := NewProjection(2)
	outs := applyAll(t, p, []Event{
		created(alice, roomA, "general"),       // 1
		posted(alice, roomA, msgA1, "one"),     // 2
		edited(bob, msgA1, 1, "stolen"),        // 3 rejected
		edited(alice, msgA1, 1, "uno"),         // 4
		posted(bob, roomA, msgA2, "two"),       // 5
		reacted(bob, msgA1, "👍"),               // 6
		created(bob, roomB, "random"),          // 7
		posted(alice, roomA, "ra_m3", "three"), // 8: evicts msgA1 (history 2), horizon = 6
	})
	if outs[2].Err == nil {
		t.Fatal("setup: the edit by bob was accepted")
	}
	seqs := func(cs []Change) (out []uint64) {
		for _, c := range cs {
			out = append(out, c.Seq)
		}
		return out
	}
	got, err := p.ChangesAfter(RoomTopic(roomA), 6)
	if err != nil || !reflect.DeepEqual(seqs(got), []uint64{8}) {
		t.Fatalf("after 6: %v, %v", seqs(got), err)
	}
	got, err = p.ChangesAfter(RoomTopic(roomA), 7)
	if err != nil || !reflect.DeepEqual(seqs(got), []uint64{8}) || got[0].Message.Text != "three" {
		t.Fatalf("after 7: %v, %v", seqs(got), err)
	}
	if _, err := p.ChangesAfter(RoomTopic(roomA), 5); err == nil || err.Code != CodeCursorExpired {
		t.Fatalf("after 5 (msgA1's reaction at 6 was evicted): %v, want CURSOR_EXPIRED", err)
	}
	if _, err := p.ChangesAfter(RoomTopic("rnope"), 0); err == nil || err.Code != CodeNotFound {
		t.Fatalf("unknown room: %v", err)
	}
	rooms, err := p.ChangesAfter(RoomsTopic, 1)
	if err != nil || !reflect.DeepEqual(seqs(rooms), []uint64{7}) || rooms[0].Type != RoomCreated {
		t.Fatalf("rooms after 1: %+v, %v", rooms, err)
	}

	q := NewProjection(0)
	applyAll(t, q, []Event{
		created(alice, roomA, "general"),   // 1
		posted(alice, roomA, msgA1, "one"), // 2
		edited(bob, msgA1, 1, "stolen"),    // 3 rejected
		edited(alice, msgA1, 1, "uno"),     // 4
		posted(bob, roomA, msgA2, "two"),   // 5
		reacted(bob, msgA1, "👍"),           // 6
	})
	got, err = q.ChangesAfter(RoomTopic(roomA), 0)
	types := []EventType{}
	for _, c := range got {
		types = append(types, c.Type)
	}
	if err != nil || !reflect.DeepEqual(seqs(got), []uint64{2, 4, 5, 6}) ||
		!reflect.DeepEqual(types, []EventType{MessagePosted, MessageEdited, MessagePosted, ReactionToggled}) {
		t.Fatalf("full replay: %v %v, %v (rejected events must not replay)", seqs(got), types, err)
	}
}
