package server

import (
	"slices"
	"testing"
)

// TestLiveSockets: the keeper's table of acknowledged sockets hands out
// only the sockets due, reuses freed slots, and keeps a wake that arrives
// while a socket is being checked.
func TestLiveSockets(t *testing.T) {
	var l liveSockets
	a, b, c := &wsConn{}, &wsConn{}, &wsConn{}
	for _, s := range []*wsConn{a, b, c} {
		l.add(s)
	}
	// Newly acknowledged sockets are due at once.
	if got := l.collect(nil, 0); !slices.Equal(got, []*wsConn{a, b, c}) {
		t.Fatalf("first collect = %v, want all three", got)
	}
	if got := l.collect(nil, 1<<62); len(got) != 0 {
		t.Fatalf("collect while being checked = %d sockets, want none", len(got))
	}
	l.reschedule(a, 100)
	l.reschedule(b, 200)
	l.reschedule(c, 300)

	tests := []struct {
		name string
		now  int64
		want []*wsConn
	}{
		{"none due yet", 99, nil},
		{"the first due exactly at its instant", 100, []*wsConn{a}},
		{"taken out, not handed out twice", 250, []*wsConn{b}},
	}
	for _, tt := range tests {
		if got := l.collect(nil, tt.now); !slices.Equal(got, tt.want) {
			t.Errorf("%s: collect(%d) = %v, want %v", tt.name, tt.now, got, tt.want)
		}
	}

	// A wake during the check survives the reschedule that follows it.
	l.due[a.slot] = 0 // as keeper.wake does
	l.reschedule(a, 1000)
	if got := l.collect(nil, 1); !slices.Equal(got, []*wsConn{a}) {
		t.Fatalf("after a wake during its check: collect = %v, want a", got)
	}

	// A removed socket is never handed out, and its slot is reused.
	slot := b.slot
	l.remove(b)
	l.reschedule(b, 0)
	if got := l.collect(nil, 1<<62); slices.Contains(got, b) {
		t.Fatalf("a removed socket was handed out")
	}
	d := &wsConn{}
	l.add(d)
	if d.slot != slot || len(l.conns) != 3 {
		t.Fatalf("new socket in slot %d of %d, want the freed slot %d of 3", d.slot, len(l.conns), slot)
	}
	l.remove(b) // a second removal of b leaves d alone
	if l.conns[slot] != d {
		t.Fatalf("removing b twice took d's slot")
	}
	// A socket never added (slot -1, or a slot past the table's end) is
	// left alone rather than indexing out of range.
	var empty liveSockets
	empty.remove(&wsConn{slot: -1})
	empty.remove(&wsConn{})
	empty.reschedule(&wsConn{}, 0)
}
