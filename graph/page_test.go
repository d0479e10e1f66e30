package graph

import (
	"errors"
	"strings"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// TestWindow: pagination arguments become the window chat pages by, and
// bad ones are refused with BAD_USER_INPUT.
func TestWindow(t *testing.T) {
	r := &Resolver{epoch: 7}
	scope := roomScope("room1")
	curIn := func(scope cursorScope, seq uint64) *string { c := r.encodeCursor(scope, seq); return &c }
	cur := func(seq uint64) *string { return curIn(scope, seq) }
	n := func(v int) *int { return &v }
	tests := []struct {
		name          string
		first, last   *int
		after, before *string
		def           chat.Window
		want          chat.Window
		empty         bool
		wantErr       string
	}{
		{name: "default latest", def: defaultMessagesPage, want: chat.Window{Last: 50}},
		{name: "default first", def: defaultRoomsPage, want: chat.Window{First: 50}},
		{name: "first after", first: n(10), after: cur(5), def: defaultMessagesPage, want: chat.Window{After: 5, First: 10}},
		{name: "last before", last: n(10), before: cur(9), def: defaultMessagesPage, want: chat.Window{Before: 9, Last: 10}},
		{name: "first zero", first: n(0), def: defaultMessagesPage, empty: true},
		{name: "last zero", last: n(0), def: defaultMessagesPage, empty: true},
		{name: "first max", first: n(MaxPageSize), def: defaultMessagesPage, want: chat.Window{First: MaxPageSize}},
		// Paging forward from a cursor without a count must continue right
		// after it, not jump to the latest messages and leave a gap.
		{name: "only after pages forward", after: cur(5), def: defaultMessagesPage, want: chat.Window{After: 5, First: 50}},
		{name: "only before pages back", before: cur(9), def: defaultMessagesPage, want: chat.Window{Before: 9, Last: 50}},
		{name: "after and before keep the default", after: cur(5), before: cur(9), def: defaultMessagesPage,
			want: chat.Window{After: 5, Before: 9, Last: 50}},
		{name: "rooms after", after: cur(5), def: defaultRoomsPage, want: chat.Window{After: 5, First: 50}},

		{name: "both counts", first: n(1), last: n(1), wantErr: "pass first or last, not both"},
		{name: "negative first", first: n(-1), wantErr: "first must be between 0 and 100, got -1"},
		{name: "huge last", last: n(1 << 30), wantErr: "last must be between 0 and 100, got 1073741824"},
		{name: "bad after", first: n(1), after: new(string), wantErr: "after: invalid cursor"},
		{name: "bad before", last: n(1), before: new(string), wantErr: "before: invalid cursor"},
		// A position of another list may fall within this one's range: it
		// must not be taken for one of this list's.
		{name: "legacy after", first: n(10), after: legacyCursor(7, 5), def: defaultMessagesPage,
			want: chat.Window{After: 5, First: 10}},
		{name: "after of another room", first: n(1), after: curIn(roomScope("room2"), 5),
			wantErr: "after: the cursor belongs to another room, not room room1"},
		{name: "before of another room", last: n(1), before: curIn(roomScope("room2"), 5),
			wantErr: "before: the cursor belongs to another room, not room room1"},
		{name: "after of the room list", after: curIn(directoryScope(), 5),
			wantErr: "after: the cursor belongs to the room list (rooms, roomCreated), not room room1"},
		{name: "after of the room's members", after: curIn(membersScope("room1"), 5),
			wantErr: "after: the cursor belongs to the members of room room1, not room room1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, empty, err := r.window(scope, tt.first, tt.last, tt.after, tt.before, tt.def)
			if tt.wantErr != "" {
				chatErr, ok := errors.AsType[*chat.Error](err)
				if !ok || chatErr.Code != chat.CodeBadUserInput || !strings.Contains(chatErr.Message, tt.wantErr) {
					t.Fatalf("err = %v, want BAD_USER_INPUT containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || w != tt.want || empty != tt.empty {
				t.Fatalf("window = %+v, empty %v, err %v; want %+v, empty %v", w, empty, err, tt.want, tt.empty)
			}
		})
	}
}
