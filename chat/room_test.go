package chat

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
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
	msgA1 = "ra_m1"
	msgA2 = "ra_m2"
)

func t0(seq uint64) time.Time { return time.Unix(1_700_000_000+int64(seq), 0).UTC() }

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

// applyAll applies events at the room's next sequences and returns what
// each was judged.
func applyAll(rs *roomState, events []Event) []*Error {
	errs := make([]*Error, len(events))
	for i, e := range events {
		seq := rs.last + 1
		errs[i] = rs.apply(seq, t0(seq), e)
	}
	return errs
}

func TestRoomRules(t *testing.T) {
	base := []Event{posted(alice, roomA, msgA1, "hello")}
	tests := []struct {
		name    string
		history int
		events  []Event // applied after base; the last one is judged
		want    Code    // "" = accepted
		check   func(t *testing.T, rs *roomState)
	}{
		{name: "post counts", events: []Event{posted(bob, roomA, msgA2, "hi")}, check: func(t *testing.T, rs *roomState) {
			if rs.stats.MessageCount != 2 || !rs.stats.LastMessageAt.Equal(t0(2)) {
				t.Errorf("stats = %+v", rs.stats)
			}
			m, _ := rs.message(msgA2)
			if m.Text != "hi" || m.Author != bob || m.Version != 1 || m.Seq != 2 || m.UpdatedSeq != 2 {
				t.Errorf("message = %+v", m)
			}
		}},
		{name: "post to another room", events: []Event{posted(bob, "rb", "rb_m1", "hi")}, want: CodeInternal},
		{name: "post without an identity", events: []Event{posted(Actor{}, roomA, msgA2, "hi")}, want: CodeUnauthenticated},
		{name: "edit without an identity", events: []Event{edited(Actor{}, msgA1, 1, "x")}, want: CodeUnauthenticated},
		{name: "delete without an identity", events: []Event{deleted(Actor{}, msgA1, 1)}, want: CodeUnauthenticated},
		{name: "react without an identity", events: []Event{reacted(Actor{}, msgA1, "👍")}, want: CodeUnauthenticated},
		{name: "post empty text", events: []Event{posted(bob, roomA, msgA2, " \n\t")}, want: CodeBadUserInput},
		{name: "post over-long text", events: []Event{posted(bob, roomA, msgA2, strings.Repeat("é", MaxTextLength+1))}, want: CodeBadUserInput},
		{name: "post longest text", events: []Event{posted(bob, roomA, msgA2, strings.Repeat("é", MaxTextLength))}},
		{name: "post duplicate message id", events: []Event{posted(bob, roomA, msgA1, "again")}, want: CodeConflict},
		{name: "edit", events: []Event{edited(alice, msgA1, 1, "hello!")}, check: func(t *testing.T, rs *roomState) {
			m, _ := rs.message(msgA1)
			if m.Text != "hello!" || m.Version != 2 || !m.EditedAt.Equal(t0(2)) || m.UpdatedSeq != 2 {
				t.Errorf("message = %+v", m)
			}
		}},
		{name: "edit by someone else", events: []Event{edited(bob, msgA1, 1, "mine")}, want: CodeForbidden},
		{name: "edit stale version", events: []Event{edited(alice, msgA1, 1, "a"), edited(alice, msgA1, 1, "b")}, want: CodeConflict,
			check: func(t *testing.T, rs *roomState) {
				if m, _ := rs.message(msgA1); m.Text != "a" || m.Version != 2 {
					t.Errorf("message = %+v", m)
				}
			}},
		{name: "edit future version", events: []Event{edited(alice, msgA1, 7, "a")}, want: CodeConflict},
		{name: "edit unknown message", events: []Event{edited(alice, msgA2, 1, "a")}, want: CodeNotFound},
		{name: "edit empty text", events: []Event{edited(alice, msgA1, 1, "")}, want: CodeBadUserInput},
		{name: "edit deleted", events: []Event{deleted(alice, msgA1, 1), edited(alice, msgA1, 2, "back")}, want: CodeConflict},
		{name: "delete", events: []Event{reacted(bob, msgA1, "👍"), deleted(alice, msgA1, 1)}, check: func(t *testing.T, rs *roomState) {
			m, _ := rs.message(msgA1)
			if !m.Deleted || m.Text != "" || m.Version != 2 || len(m.Reactions) != 0 {
				t.Errorf("message = %+v", m)
			}
			if rs.stats.MessageCount != 0 {
				t.Errorf("message count = %d, want 0", rs.stats.MessageCount)
			}
		}},
		{name: "delete by someone else", events: []Event{deleted(bob, msgA1, 1)}, want: CodeForbidden},
		{name: "delete stale version", events: []Event{deleted(alice, msgA1, 2)}, want: CodeConflict},
		{name: "delete twice", events: []Event{deleted(alice, msgA1, 1), deleted(alice, msgA1, 2)}, want: CodeConflict},
		{name: "react toggles", events: []Event{reacted(bob, msgA1, "👍"), reacted(alice, msgA1, "👍"), reacted(bob, msgA1, "🎉"), reacted(bob, msgA1, "👍")},
			check: func(t *testing.T, rs *roomState) {
				m, _ := rs.message(msgA1)
				want := []Reaction{{Emoji: "👍", UserIDs: []string{"alice"}}, {Emoji: "🎉", UserIDs: []string{"bob"}}}
				if !reflect.DeepEqual(m.Reactions, want) || m.Version != 1 {
					t.Errorf("message = %+v", m)
				}
			}},
		{name: "react off removes emoji", events: []Event{reacted(bob, msgA1, "👍"), reacted(bob, msgA1, "👍")}, check: func(t *testing.T, rs *roomState) {
			if m, _ := rs.message(msgA1); len(m.Reactions) != 0 {
				t.Errorf("reactions = %+v", m.Reactions)
			}
		}},
		{name: "react on deleted", events: []Event{deleted(alice, msgA1, 1), reacted(bob, msgA1, "👍")}, want: CodeConflict},
		{name: "react unknown message", events: []Event{reacted(bob, msgA2, "👍")}, want: CodeNotFound},
		{name: "react empty emoji", events: []Event{reacted(bob, msgA1, "")}, want: CodeBadUserInput},
		{name: "react emoji with space", events: []Event{reacted(bob, msgA1, "a b")}, want: CodeBadUserInput},
		{name: "react emoji too long", events: []Event{reacted(bob, msgA1, strings.Repeat("x", MaxEmojiLength+1))}, want: CodeBadUserInput},
		{name: "history evicts oldest", history: 2, events: []Event{posted(bob, roomA, msgA2, "2"), posted(bob, roomA, "ra_m3", "3")},
			check: func(t *testing.T, rs *roomState) {
				if _, ok := rs.message(msgA1); ok {
					t.Error("oldest message still retained")
				}
				page := rs.page(Window{})
				if len(page.Items) != 2 || page.Items[0].ID != msgA2 || page.TotalCount != 2 || rs.stats.MessageCount != 2 {
					t.Errorf("page = %+v, stats %+v", page, rs.stats)
				}
			}},
		{name: "evicted message cannot change", history: 1, events: []Event{posted(bob, roomA, msgA2, "2"), edited(alice, msgA1, 1, "x")}, want: CodeNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newRoomState(Room{ID: roomA, Name: "general"}, tt.history)
			for i, err := range applyAll(rs, base) {
				if err != nil {
					t.Fatalf("base event %d rejected: %v", i, err)
				}
			}
			errs := applyAll(rs, tt.events)
			for i, err := range errs[:len(errs)-1] {
				if err != nil {
					t.Fatalf("setup event %d rejected: %v", i, err)
				}
			}
			last := errs[len(errs)-1]
			switch {
			case tt.want == "" && last != nil:
				t.Fatalf("rejected with %s: %v", last.Code, last)
			case tt.want != "" && (last == nil || last.Code != tt.want):
				t.Fatalf("judged %v, want rejection %s", last, tt.want)
			}
			if tt.check != nil {
				tt.check(t, rs)
			}
		})
	}
}

// TestRoomLoadedMatchesRoomHeld: a room folded from only what the log
// retains (a replica loading it) answers as the room a replica held while
// retention discarded its oldest posts, resume horizon included.
func TestRoomLoadedMatchesRoomHeld(t *testing.T) {
	const history = 3
	type stored struct {
		seq  uint64
		rest string
		e    Event
	}
	events := []Event{
		posted(alice, roomA, "ra_m1", "1"),
		posted(bob, roomA, "ra_m2", "2"),
		edited(alice, "ra_m1", 1, "1 edited"),
		reacted(bob, "ra_m2", "👍"),
		posted(alice, roomA, "ra_m3", "3"),
		posted(alice, roomA, "ra_m4", "4"), // evicts m1
		deleted(bob, "ra_m2", 1),
		posted(bob, roomA, "ra_m5", "5"), // evicts m2
		reacted(alice, "ra_m4", "🎉"),
	}
	held := newRoomState(Room{ID: roomA}, history)
	var log []stored
	for i, e := range events {
		seq := uint64(10 + 2*i) // a partition shared with other rooms
		if err := held.apply(seq, t0(seq), e); err != nil {
			t.Fatalf("event %d rejected: %v", i, err)
		}
		log = append(log, stored{seq, e.rest(), e})
	}
	// What per-subject retention leaves: the last `history` posts, and every
	// msg.<id> subject in full.
	var retained []stored
	posts := 0
	for i := len(log) - 1; i >= 0; i-- {
		if log[i].rest == "posts" {
			posts++
			if posts > history {
				continue
			}
		}
		retained = append([]stored{log[i]}, retained...)
	}
	loaded := newRoomState(Room{ID: roomA}, history)
	for _, s := range retained {
		_ = loaded.apply(s.seq, t0(s.seq), s.e) // events about discarded messages are refused
	}

	if !reflect.DeepEqual(loaded.page(Window{}), held.page(Window{})) {
		t.Errorf("pages differ:\nloaded %+v\nheld   %+v", loaded.page(Window{}), held.page(Window{}))
	}
	if loaded.stats != held.stats || loaded.last != held.last {
		t.Errorf("stats/last differ: loaded %+v %d, held %+v %d", loaded.stats, loaded.last, held.stats, held.last)
	}
	if loaded.expiredBefore() != held.expiredBefore() {
		t.Errorf("resume horizon: loaded %d, held %d", loaded.expiredBefore(), held.expiredBefore())
	}
	for _, after := range []uint64{0, 12, 14, 20, 22, 26} {
		lc, lerr := loaded.changesAfter(after)
		hc, herr := held.changesAfter(after)
		if (lerr == nil) != (herr == nil) || !reflect.DeepEqual(lc, hc) {
			t.Errorf("changesAfter(%d): loaded %v %v, held %v %v", after, len(lc), lerr, len(hc), herr)
		}
	}
	// m2 was deleted at 22 and evicted at 24: a cursor before 22 would miss
	// its deletion, so it must be refused.
	if _, err := held.changesAfter(21); err == nil || err.Code != CodeCursorExpired {
		t.Errorf("changesAfter(21) = %v, want CURSOR_EXPIRED", err)
	}
}

func TestWindowBounds(t *testing.T) {
	seqs := []uint64{10, 20, 30, 40, 50}
	at := func(i int) uint64 { return seqs[i] }
	// prev and next are the page info's flags: beyond the cursors too,
	// except in the direction the window counts in (Relay's algorithm).
	tests := []struct {
		w          Window
		lo, hi     int
		prev, next bool
	}{
		{Window{}, 0, 5, false, false},
		{Window{First: 2}, 0, 2, false, true},
		{Window{Last: 2}, 3, 5, true, false},
		{Window{After: 20, First: 2}, 2, 4, true, true},
		{Window{After: 20, First: 3}, 2, 5, true, false},
		{Window{After: 25}, 2, 5, true, false},
		{Window{Before: 40, Last: 2}, 1, 3, true, true},
		{Window{Before: 40, Last: 3}, 0, 3, false, true},
		{Window{Before: 10}, 0, 0, false, true},
		{Window{After: 50}, 5, 5, true, false},
		{Window{After: 40, Before: 20}, 4, 4, true, true},
		{Window{First: 9}, 0, 5, false, false},
		// Counting towards a cursor: only what lies between the cursors.
		{Window{Before: 30, First: 10}, 0, 2, false, false},
		{Window{Before: 40, First: 2}, 0, 2, false, true},
		{Window{After: 30, Last: 10}, 3, 5, false, false},
		{Window{After: 20, Last: 2}, 3, 5, true, false},
		{Window{After: 10, Before: 50, First: 2}, 1, 3, true, true},
		{Window{After: 10, Before: 40, First: 2}, 1, 3, true, false},
	}
	for _, tt := range tests {
		lo, hi, prev, next := bounds(len(seqs), at, tt.w)
		if lo != tt.lo || hi != tt.hi || prev != tt.prev || next != tt.next {
			t.Errorf("bounds(%+v) = [%d,%d) prev %v next %v, want [%d,%d) prev %v next %v",
				tt.w, lo, hi, prev, next, tt.lo, tt.hi, tt.prev, tt.next)
		}
	}
}

func memberAdded(actor Actor, room, user string) Event {
	return Event{Type: MemberAdded, Actor: actor, RoomID: room, UserID: user}
}
func memberRemoved(actor Actor, room, user string) Event {
	return Event{Type: MemberRemoved, Actor: actor, RoomID: room, UserID: user}
}

// TestPrivateRoomRules: in a private room (created by alice), only members
// may do anything; any member adds a non-member and removes any member
// but the last; a public room has no members.
func TestPrivateRoomRules(t *testing.T) {
	carol := Actor{ID: "carol"}
	longUser := Actor{ID: strings.Repeat("é", MaxUserIDLength)} // twice as many bytes
	tests := []struct {
		name    string
		private bool
		events  []Event // the last one is judged
		want    Code    // "" = accepted
		members map[string]uint64
	}{
		{name: "the creator is the first member", private: true, events: []Event{posted(alice, roomA, msgA1, "hi")},
			members: map[string]uint64{"alice": 0}},
		{name: "a non-member may not post", private: true, events: []Event{posted(bob, roomA, msgA1, "hi")}, want: CodeForbidden},
		{name: "a non-member may not react", private: true,
			events: []Event{posted(alice, roomA, msgA1, "hi"), reacted(bob, msgA1, "👍")}, want: CodeForbidden},
		{name: "a non-member may not edit, even their own", private: true,
			events: []Event{memberAdded(alice, roomA, "bob"), posted(bob, roomA, msgA1, "hi"), memberRemoved(alice, roomA, "bob"), edited(bob, msgA1, 1, "x")},
			want:   CodeForbidden},
		{name: "a non-member may not add themselves", private: true, events: []Event{memberAdded(bob, roomA, "bob")}, want: CodeForbidden},
		{name: "a member adds", private: true, events: []Event{memberAdded(alice, roomA, "bob"), memberAdded(bob, roomA, "carol")},
			members: map[string]uint64{"alice": 0, "bob": 1, "carol": 2}},
		{name: "an added member posts", private: true, events: []Event{memberAdded(alice, roomA, "bob"), posted(bob, roomA, msgA1, "hi")}},
		{name: "adding a member twice", private: true, events: []Event{memberAdded(alice, roomA, "bob"), memberAdded(alice, roomA, "bob")}, want: CodeConflict},
		{name: "adding an empty user", private: true, events: []Event{memberAdded(alice, roomA, "")}, want: CodeBadUserInput},
		// User IDs are bounded in characters, as auth bounds who may post.
		{name: "a user of the longest non-ASCII ID is added and posts", private: true,
			events: []Event{memberAdded(alice, roomA, longUser.ID), posted(longUser, roomA, msgA1, "hi")}},
		{name: "a user of the longest non-ASCII ID is removed", private: true,
			events:  []Event{memberAdded(alice, roomA, longUser.ID), memberRemoved(longUser, roomA, longUser.ID)},
			members: map[string]uint64{"alice": 0}},
		{name: "adding a user of a longer ID", private: true,
			events: []Event{memberAdded(alice, roomA, longUser.ID+"é")}, want: CodeBadUserInput},
		{name: "a member removes another, the creator included", private: true,
			events:  []Event{memberAdded(alice, roomA, "bob"), memberRemoved(bob, roomA, "alice")},
			members: map[string]uint64{"bob": 1}},
		{name: "a member leaves", private: true, events: []Event{memberAdded(alice, roomA, "bob"), memberRemoved(bob, roomA, "bob")},
			members: map[string]uint64{"alice": 0}},
		{name: "the last member stays", private: true, events: []Event{memberRemoved(alice, roomA, "alice")}, want: CodeConflict},
		{name: "removing a non-member", private: true, events: []Event{memberRemoved(alice, roomA, "carol")}, want: CodeNotFound},
		{name: "a removed member may not post", private: true,
			events: []Event{memberAdded(alice, roomA, "bob"), memberRemoved(alice, roomA, "bob"), posted(bob, roomA, msgA1, "hi")}, want: CodeForbidden},
		{name: "re-added, a member again since the new event", private: true,
			events:  []Event{memberAdded(alice, roomA, "bob"), memberRemoved(alice, roomA, "bob"), memberAdded(alice, roomA, "bob")},
			members: map[string]uint64{"alice": 0, "bob": 3}},
		{name: "a public room has no members to add", events: []Event{memberAdded(alice, roomA, "bob")}, want: CodeBadUserInput},
		{name: "a public room has no members to remove", events: []Event{memberRemoved(alice, roomA, "alice")}, want: CodeBadUserInput},
		{name: "everyone posts in a public room", events: []Event{posted(carol, roomA, msgA1, "hi")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := newRoomState(Room{ID: roomA, CreatedBy: alice, Private: tt.private}, 0)
			errs := applyAll(rs, tt.events)
			for i, err := range errs[:len(errs)-1] {
				if err != nil {
					t.Fatalf("event %d refused: %v", i, err)
				}
			}
			got := errs[len(errs)-1]
			switch {
			case tt.want == "" && got != nil:
				t.Fatalf("refused with %v, want accepted", got)
			case tt.want != "" && (got == nil || got.Code != tt.want):
				t.Fatalf("judged %v, want %s", got, tt.want)
			}
			if tt.members != nil && !reflect.DeepEqual(rs.accessNow(), tt.members) {
				t.Fatalf("members %v, want %v", rs.accessNow(), tt.members)
			}
			if !tt.private && (rs.members != nil || rs.access != nil) {
				t.Fatalf("a public room has members %v", rs.members)
			}
		})
	}
}

// TestMergedPage: a page of two lists merged is the page bounds selects of
// the merged list, for every window.
func TestMergedPage(t *testing.T) {
	rooms := func(seqs ...uint64) []*Room {
		out := make([]*Room, len(seqs))
		for i, s := range seqs {
			out[i] = &Room{ID: fmt.Sprint("r", s), Seq: s}
		}
		return out
	}
	lists := []struct{ a, b []*Room }{
		{rooms(1, 2, 3, 5, 8, 13), rooms(4, 6, 7)},
		{rooms(2, 4, 6), nil},
		{nil, rooms(1, 3)},
		{nil, nil},
		{rooms(10, 20), rooms(1, 2, 30)},
	}
	for li, l := range lists {
		all := append(slices.Clone(l.a), l.b...)
		slices.SortFunc(all, func(x, y *Room) int { return cmp.Compare(x.Seq, y.Seq) })
		for after := uint64(0); after <= 31; after += 3 {
			for _, before := range []uint64{0, 5, 14, 31} {
				for _, fl := range [][2]int{{0, 0}, {1, 0}, {2, 0}, {50, 0}, {0, 1}, {0, 3}, {0, 50}} {
					w := Window{After: after, Before: before, First: fl[0], Last: fl[1]}
					lo, hi, prev, next := bounds(len(all), func(i int) uint64 { return all[i].Seq }, w)
					want := Page[Room]{TotalCount: len(all), HasPreviousPage: prev, HasNextPage: next}
					for _, r := range all[lo:hi] {
						want.Items = append(want.Items, *r)
					}
					if got := mergedPage(l.a, l.b, w); !reflect.DeepEqual(got, want) {
						t.Fatalf("lists %d, window %+v: got %+v, want %+v", li, w, got, want)
					}
				}
			}
		}
	}
}

// TestRoomKeepsWhatTheLogKeeps: with a history limit, the log keeps at most
// history entries of a message's changes and of a user's member events.
// Applying refuses an event beyond that (every replica alike); proposing
// also keeps the last entry for a deletion or a removal.
func TestRoomKeepsWhatTheLogKeeps(t *testing.T) {
	const history = 3
	private := Room{ID: roomA, Name: "a", CreatedBy: alice, Private: true}
	for _, tc := range []struct {
		name     string
		events   []Event // applied; the last one is also proposed
		applied  Code    // what applying the last one is judged ("" = accepted)
		proposed Code    // what proposing it instead is judged
	}{
		{name: "a message's second change", events: []Event{posted(alice, roomA, msgA1, "hi"), reacted(bob, msgA1, "👍"), reacted(alice, msgA1, "👍")}},
		{name: "a message's third change", applied: "", proposed: CodeConflict,
			events: []Event{posted(alice, roomA, msgA1, "hi"), reacted(bob, msgA1, "👍"), edited(alice, msgA1, 1, "x"), reacted(alice, msgA1, "🎉")}},
		{name: "a message's third change, a deletion", applied: "", proposed: "",
			events: []Event{posted(alice, roomA, msgA1, "hi"), reacted(bob, msgA1, "👍"), edited(alice, msgA1, 1, "x"), deleted(alice, msgA1, 2)}},
		{name: "a message's fourth change", applied: CodeConflict, proposed: CodeConflict,
			events: []Event{posted(alice, roomA, msgA1, "hi"), reacted(bob, msgA1, "👍"), edited(alice, msgA1, 1, "x"), reacted(bob, msgA1, "🎉"), deleted(alice, msgA1, 2)}},
		{name: "a user's third member event, an addition", applied: "", proposed: CodeConflict,
			events: []Event{memberAdded(alice, roomA, "bob"), memberRemoved(alice, roomA, "bob"), memberAdded(alice, roomA, "bob")}},
		{name: "a user's third member event, a removal", applied: "", proposed: "",
			events: []Event{memberAdded(alice, roomA, "bob"), memberRemoved(bob, roomA, "alice"), memberAdded(bob, roomA, "alice"), memberRemoved(bob, roomA, "alice")}},
		{name: "a user's fourth member event", applied: CodeConflict, proposed: CodeConflict,
			events: []Event{memberAdded(alice, roomA, "bob"), memberRemoved(alice, roomA, "bob"), memberAdded(alice, roomA, "bob"), memberRemoved(alice, roomA, "bob")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := Room{ID: roomA, Name: "a", CreatedBy: alice}
			if isMemberEvent(tc.events[0].Type) {
				room = private
			}
			proposing := newRoomState(room, history)
			if errs := applyAll(proposing, tc.events[:len(tc.events)-1]); slices.ContainsFunc(errs, func(e *Error) bool { return e != nil }) {
				t.Fatalf("setting up: %v", errs)
			}
			last := tc.events[len(tc.events)-1]
			last.Prev = proposing.last
			if got := codeOf(proposing.judgeProposal(last)); got != tc.proposed {
				t.Errorf("proposing: %q, want %q", got, tc.proposed)
			}
			applying := newRoomState(room, history)
			errs := applyAll(applying, tc.events)
			if got := codeOf(errs[len(errs)-1]); got != tc.applied {
				t.Errorf("applying: %q, want %q", got, tc.applied)
			}
		})
	}
}

func codeOf(err *Error) Code {
	if err == nil {
		return ""
	}
	return err.Code
}
