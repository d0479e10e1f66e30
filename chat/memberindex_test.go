package chat

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/internal/testrig"
	"github.com/heraldhq/herald/pubsub"
)

// memberLogEntry is e as a partition stores it at seq.
func memberLogEntry(t *testing.T, seq uint64, e Event) pubsub.Entry {
	t.Helper()
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return pubsub.Entry{Seq: seq, Key: e.RoomID, Rest: e.rest(), Data: data}
}

// TestMemberIndexSweepsPending: the member index keeps events of a room the
// directory has not created yet, and a sweep drops those of rooms still
// missing once the directory has caught up (here: the sweep's mark, then
// the directory's entries, then dropPending), however many there are;
// events of a room created before the sweep ends are folded, and events
// that arrived after the sweep began wait for the next one.
func TestMemberIndexSweepsPending(t *testing.T) {
	const garbageRooms, eventsPerRoom = 1000, 5
	private := Room{ID: "rp", Private: true, CreatedBy: alice}
	public := Room{ID: "rpub", CreatedBy: alice}
	for _, tc := range []struct {
		name string
		// run feeds the index and returns what its sweeps dropped.
		run         func(t *testing.T, x *memberIndex) []droppedRoom
		wantDropped map[string]int // room → events
		wantPending []string
		wantBob     []string // bob's rooms
	}{
		{
			name: "rooms never created",
			run: func(t *testing.T, x *memberIndex) []droppedRoom {
				seq := uint64(0)
				for i := range garbageRooms {
					for j := range eventsPerRoom {
						seq++
						e := memberAdded(alice, fmt.Sprintf("rg%d", i), fmt.Sprintf("u%d", j))
						_ = x.apply(memberLogEntry(t, seq, e))
					}
				}
				return x.dropPending(x.beginSweep())
			},
			wantDropped: func() map[string]int {
				m := make(map[string]int)
				for i := range garbageRooms {
					m[fmt.Sprintf("rg%d", i)] = eventsPerRoom
				}
				return m
			}(),
		},
		{
			name: "a room created before the sweep ends",
			run: func(t *testing.T, x *memberIndex) []droppedRoom {
				_ = x.apply(memberLogEntry(t, 2, memberAdded(alice, private.ID, "bob")))
				mark := x.beginSweep()
				x.roomCreated(private) // the directory catching up
				return x.dropPending(mark)
			},
			wantBob: []string{private.ID},
		},
		{
			name: "an event that arrived after the sweep began",
			run: func(t *testing.T, x *memberIndex) []droppedRoom {
				mark := x.beginSweep()
				_ = x.apply(memberLogEntry(t, 2, memberAdded(alice, private.ID, "bob")))
				return x.dropPending(mark)
			},
			wantPending: []string{private.ID},
		},
		{
			name: "an event that arrived after the sweep began, then the room",
			run: func(t *testing.T, x *memberIndex) []droppedRoom {
				mark := x.beginSweep()
				_ = x.apply(memberLogEntry(t, 2, memberAdded(alice, private.ID, "bob")))
				dropped := x.dropPending(mark)
				x.roomCreated(private)
				return append(dropped, x.dropPending(x.beginSweep())...)
			},
			wantBob: []string{private.ID},
		},
		{
			name: "a public room",
			run: func(t *testing.T, x *memberIndex) []droppedRoom {
				_ = x.apply(memberLogEntry(t, 2, memberAdded(alice, public.ID, "bob")))
				mark := x.beginSweep()
				x.roomCreated(public)
				return x.dropPending(mark)
			},
			wantDropped: map[string]int{public.ID: 1},
		},
		{
			// Only a writer that bypasses the proposers stores a room's
			// directory entry after its member events.
			name: "a room created after its events were dropped",
			run: func(t *testing.T, x *memberIndex) []droppedRoom {
				_ = x.apply(memberLogEntry(t, 2, memberAdded(alice, private.ID, "bob")))
				dropped := x.dropPending(x.beginSweep())
				x.roomCreated(private)
				_ = x.apply(memberLogEntry(t, 3, memberAdded(alice, private.ID, "carol")))
				return dropped
			},
			wantDropped: map[string]int{private.ID: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newMemberIndex(0, 0)
			got := make(map[string]int)
			for _, d := range tc.run(t, x) {
				got[d.id] += d.events
			}
			if !maps.Equal(got, tc.wantDropped) {
				t.Errorf("dropped %d rooms (%d events), want %d (%d events)",
					len(got), sum(maps.Values(got)), len(tc.wantDropped), sum(maps.Values(tc.wantDropped)))
			}
			if pending := slices.Sorted(maps.Keys(x.pending)); !slices.Equal(pending, tc.wantPending) {
				t.Errorf("%d rooms pending (%q...), want %q", len(pending), pending[:min(len(pending), 3)], tc.wantPending)
			}
			bob, ok := x.roomsOf("bob")
			if !ok || !slices.Equal(bob, tc.wantBob) {
				t.Errorf("bob's rooms %q, %v; want %q", bob, ok, tc.wantBob)
			}
		})
	}
}

func sum(values iter.Seq[int]) int {
	n := 0
	for v := range values {
		n += v
	}
	return n
}

// gatedDirectoryLog holds back the directory entries a replica follows
// while hold is set, until release is closed: a directory stream lagging
// behind the partitions.
type gatedDirectoryLog struct {
	EventLog
	hold    atomic.Bool
	release chan struct{}
}

func (l *gatedDirectoryLog) FollowDirectory(ctx context.Context, from uint64, fn func(pubsub.Entry) error) error {
	return l.EventLog.FollowDirectory(ctx, from, func(e pubsub.Entry) error {
		if l.hold.Load() {
			select {
			case <-l.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return fn(e)
	})
}

// TestMemberIndexDropsEventsOfRoomsNeverCreated: member events another
// writer stored for rooms that do not exist, or for a public room, do not
// stay in a replica's member index for good; each such room is logged once.
// A legitimate member event that reaches the index before its room's
// directory entry (the streams differ; here the replica's directory is
// held back while a sweep is under way) is still folded.
func TestMemberIndexDropsEventsOfRoomsNeverCreated(t *testing.T) {
	const garbage = 100
	ctx := context.Background()
	first := openLog(t, pubsub.Options{Partitions: 1})
	a := startService(t, first, Options{})
	gated := &gatedDirectoryLog{EventLog: openReplicaLog(t, first, pubsub.Options{}), release: make(chan struct{})}
	var logged testrig.LogBuffer
	b := startService(t, gated, Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	gated.hold.Store(true)

	early, err := a.CreatePrivateRoom(ctx, alice, "early")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, alice, early.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	public := mustRoom(t, a, "public")
	forge := func(e Event) {
		t.Helper()
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := first.AppendKeyed(ctx, e.RoomID, e.rest(), data, pubsub.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	forge(memberAdded(alice, public.ID, "bob"))
	for i := range garbage {
		forge(memberAdded(alice, fmt.Sprintf("rnever%d", i), "bob"))
	}

	pending := func(x *memberIndex) (n int, earlyCovered bool) {
		x.mu.Lock()
		defer x.mu.Unlock()
		p := x.pending[early.ID]
		return len(x.pending), p != nil && x.sweeps > p.sweep
	}
	waitFor(t, "b's index to hold every event back, and a sweep to begin after the early one", func() bool {
		n, covered := pending(b.members)
		return n == garbage+2 && covered
	})
	close(gated.release)
	for name, svc := range map[string]*Service{"a": a, "b": b} {
		waitFor(t, name+"'s pending events to be dropped or folded", func() bool { n, _ := pending(svc.members); return n == 0 })
		rooms, ok := svc.members.roomsOf("bob")
		if !ok || !slices.Equal(rooms, []string{early.ID}) {
			t.Errorf("%s: bob's rooms %q, %v; want only %s", name, rooms, ok, early.ID)
		}
	}
	page, err := b.Rooms(ctx, "bob", Window{First: 10})
	if err != nil || len(page.Items) != 2 || page.Items[0].ID != early.ID || page.Items[1].ID != public.ID {
		t.Fatalf("b lists for bob %+v, %v; want early and public", page.Items, err)
	}
	// The rooms are logged once dropped.
	skipped := func() int { return strings.Count(logged.String(), "skipped member events") }
	waitFor(t, "b to log every room whose events it dropped", func() bool { return skipped() >= garbage+1 })
	out := logged.String()
	if n := skipped(); n != garbage+1 {
		t.Errorf("b logged %d skipped rooms, want %d:\n%s", n, garbage+1, out)
	}
	if !strings.Contains(out, "room="+public.ID+" events=1 reason=\"the room is public and has no members\"") {
		t.Errorf("b's log does not say the public room's event was skipped:\n%s", out)
	}
}
