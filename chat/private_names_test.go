package chat

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heraldhq/herald/pubsub"
)

// TestPrivateNamesAndList: a private room's name never conflicts (with a
// public room's, or another private room's), a public name is taken in any
// case, and the room list shows each viewer what they may see, handing on
// a position that reveals no private room they may not see.
func TestPrivateNamesAndList(t *testing.T) {
	ctx := context.Background()
	svc := startService(t, openLog(t, pubsub.Options{Partitions: 1}), Options{})
	general := mustRoom(t, svc, "General")
	var conflict *Error
	if _, err := svc.CreateRoom(ctx, bob, "GENERAL"); !errors.As(err, &conflict) || conflict.Code != CodeConflict {
		t.Fatalf("a public name taken in another case: %v; want CONFLICT", err)
	}
	// Private rooms named as the public one, and as each other.
	p1, err := svc.CreatePrivateRoom(ctx, alice, "General")
	if err != nil {
		t.Fatalf("a private room named as a public one must be created (its name is never taken): %v", err)
	}
	p2, err := svc.CreatePrivateRoom(ctx, bob, "general")
	if err != nil {
		t.Fatalf("a second private room of a name: %v", err)
	}
	// A public room named as a private one, created last.
	plans, err := svc.CreatePrivateRoom(ctx, alice, "Plans")
	if err != nil {
		t.Fatal(err)
	}
	public2 := mustRoom(t, svc, "Plans")

	ids := func(p Page[Room]) []string {
		var out []string
		for _, r := range p.Items {
			out = append(out, r.ID)
		}
		return out
	}
	for _, tc := range []struct {
		viewer string
		want   []string
	}{
		{"", []string{general.ID, public2.ID}},
		{"alice", []string{general.ID, p1.ID, plans.ID, public2.ID}},
		{"bob", []string{general.ID, p2.ID, public2.ID}},
		{"carol", []string{general.ID, public2.ID}},
	} {
		page, err := svc.Rooms(ctx, tc.viewer, Window{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(page); !slices.Equal(got, tc.want) {
			t.Errorf("Rooms(%q) = %q, want %q", tc.viewer, got, tc.want)
		}
		if page.TotalCount != len(tc.want) {
			t.Errorf("Rooms(%q).TotalCount = %d, want %d (private rooms of others must not be counted)", tc.viewer, page.TotalCount, len(tc.want))
		}
	}
	// The newest room is public2; a private room created after it must not
	// move the position a non-member is handed.
	if _, err := svc.CreatePrivateRoom(ctx, alice, "later"); err != nil {
		t.Fatal(err)
	}
	page, err := svc.Rooms(ctx, "bob", Window{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Last != public2.Seq {
		t.Errorf("bob's room list hands on position %d, want %d, that of the newest room he may see (a later one reveals alice's private room)", page.Last, public2.Seq)
	}
}

// positionReadsLog counts the reads of the directory's position.
type positionReadsLog struct {
	EventLog
	reads atomic.Int64
}

func (l *positionReadsLog) DirectoryLastSeq(ctx context.Context) (uint64, error) {
	l.reads.Add(1)
	return l.EventLog.DirectoryLastSeq(ctx)
}

// TestLookupOfInvalidIDAsksNothing: an ID that can be no room's (not 1–64
// characters of [a-z0-9_]) is not found at once: no read of the log, no
// wait for the directory, whatever a client sends.
func TestLookupOfInvalidIDAsksNothing(t *testing.T) {
	log := &positionReadsLog{EventLog: openLog(t, pubsub.Options{Partitions: 1})}
	svc := startService(t, log, Options{})
	before := log.reads.Load()
	for _, id := range []string{"", "R1", "a.b", "a b", strings.Repeat("a", 65)} {
		if _, ok, err := svc.LookupRoom(context.Background(), id); ok || err != nil {
			t.Errorf("LookupRoom(%q) = %v, %v; want not found", id, ok, err)
		}
	}
	if n := log.reads.Load() - before; n != 0 {
		t.Errorf("looking up invalid room IDs read the directory's position %d times; want none", n)
	}
	if _, ok, err := svc.LookupRoom(context.Background(), "rnosuchroom"); ok || err != nil {
		t.Errorf("LookupRoom of a valid unknown ID = %v, %v", ok, err)
	}
	if n := log.reads.Load() - before; n != 1 {
		t.Errorf("looking up a valid unknown ID read the directory's position %d times; want 1", n)
	}
}
