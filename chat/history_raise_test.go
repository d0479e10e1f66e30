package chat

import (
	"errors"
	"slices"
	"testing"
)

// raisedLog is a historyLimit.reread: the log's limit is log (0 =
// unlimited), or the read fails; reads counts the reads.
type raisedLog struct {
	log   int64
	fail  bool
	reads int
}

func (r *raisedLog) reread(string, uint64) (int64, error) {
	r.reads++
	if r.fail {
		return 0, errors.New("NATS away")
	}
	return r.log, nil
}

// TestHistoryRaisedWhenTheRulesRefuseForHistory: a replica judging by
// --room-history 3 meets what a replica that raised the log's limit
// stored, or proposes it. It reads the log's limit again when its rules
// refuse an event for want of history alone, and only then, adopts a
// higher one and judges again: its room and its member index fold what
// the raising replica accepted, and its proposals are judged as there.
func TestHistoryRaisedWhenTheRulesRefuseForHistory(t *testing.T) {
	room := Room{ID: roomA, Private: true, CreatedBy: alice}
	bobInAndOut := []Event{ // bob's 4th member event: over 3
		memberAdded(alice, roomA, "bob"), memberRemoved(alice, roomA, "bob"),
		memberAdded(alice, roomA, "bob"), memberRemoved(alice, roomA, "bob"),
	}
	for _, tt := range []struct {
		name      string
		log       raisedLog
		events    []Event // applied in turn; the room and the index fold them
		propose   *Event  // then judged as this replica's proposal
		wantErr   bool    // of the last event applied, or of the proposal
		wantLimit int
		wantReads int
		wantBob   bool // a member after the events
	}{
		{name: "a membership change stored under a raised limit", log: raisedLog{log: 6}, events: bobInAndOut,
			wantLimit: 6, wantReads: 1},
		// The room and the index each ask (pubsub answers the second
		// from what the first read covered).
		{name: "a membership change the log's limit refuses too", log: raisedLog{log: 3}, events: bobInAndOut,
			wantErr: true, wantLimit: 3, wantReads: 2, wantBob: true},
		{name: "raised to unlimited", log: raisedLog{log: 0}, events: bobInAndOut, wantLimit: 0, wantReads: 1},
		{name: "the read fails", log: raisedLog{fail: true}, events: bobInAndOut,
			wantErr: true, wantLimit: 3, wantReads: 2, wantBob: true},
		{name: "a message's 4th change stored under a raised limit", log: raisedLog{log: 6},
			events: []Event{posted(alice, roomA, msgA1, "v1"), edited(alice, msgA1, 1, "v2"), edited(alice, msgA1, 2, "v3"),
				edited(alice, msgA1, 3, "v4"), edited(alice, msgA1, 4, "v5")},
			wantLimit: 6, wantReads: 1},
		{name: "a proposal the limit known refuses", log: raisedLog{log: 6},
			events:    []Event{posted(alice, roomA, msgA1, "v1"), edited(alice, msgA1, 1, "v2"), edited(alice, msgA1, 2, "v3")},
			propose:   &Event{Type: MessageEdited, Actor: alice, RoomID: roomA, MessageID: msgA1, Version: 3, Text: "v4"},
			wantLimit: 6, wantReads: 1},
		{name: "a proposal the raised limit refuses too", log: raisedLog{log: 3},
			events:  []Event{posted(alice, roomA, msgA1, "v1"), edited(alice, msgA1, 1, "v2"), edited(alice, msgA1, 2, "v3")},
			propose: &Event{Type: MessageEdited, Actor: alice, RoomID: roomA, MessageID: msgA1, Version: 3, Text: "v4"},
			wantErr: true, wantLimit: 3, wantReads: 1},
		{name: "refused for another reason: no read", log: raisedLog{log: 6},
			events:    []Event{memberRemoved(alice, roomA, "bob")},
			wantErr:   true,
			wantLimit: 3},
		{name: "a proposal refused for another reason: no read", log: raisedLog{log: 6},
			propose: &Event{Type: MessageEdited, Actor: bob, RoomID: roomA, MessageID: msgA1, Version: 1, Text: "x"},
			wantErr: true, wantLimit: 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := tt.log
			limit := &historyLimit{reread: log.reread}
			limit.n.Store(3)
			rs := newRoomStateJudgedBy(room, limit)
			x := newMemberIndexJudgedBy(0, limit)
			x.roomCreated(room)
			var last *Error
			for i, e := range tt.events {
				seq := uint64(i + 1)
				last = rs.apply(seq, t0(seq), e)
				if isMemberEvent(e.Type) {
					_ = x.apply(memberLogEntry(t, seq, e))
				}
			}
			if tt.propose != nil {
				last = rs.judgeProposal(*tt.propose)
			}
			if (last != nil) != tt.wantErr {
				t.Errorf("judged %v, want an error: %v", last, tt.wantErr)
			}
			if got := limit.get(); got != tt.wantLimit {
				t.Errorf("limit %d, want %d", got, tt.wantLimit)
			}
			if log.reads != tt.wantReads {
				t.Errorf("the log's limit read %d times, want %d", log.reads, tt.wantReads)
			}
			if got := rs.isMember("bob"); got != tt.wantBob {
				t.Errorf("bob a member of the room: %v, want %v", got, tt.wantBob)
			}
			rooms, _ := x.roomsOf("bob")
			if got := slices.Contains(rooms, roomA); got != tt.wantBob {
				t.Errorf("bob a member in the member index: %v, want %v", got, tt.wantBob)
			}
		})
	}
}
