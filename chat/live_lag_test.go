package chat

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestLiveLagPastHistoryKeepsWatchers: a replica whose live handling of a
// watched room merely lags (its live entries wait, in order, behind a slow
// live handler; none is dropped) while the room goes on by more than the
// history it retains must deliver every change in order. The README ends a
// subscription only when a live event went missing and the log discarded
// what it missed. The re-read that checks a room's position (the one a
// load schedules a second later, see load) used to run while the entries
// were still queued: it found the room's last entry discarded, or a gap
// after it, took the room for ahead of the log or for one that missed
// entries, and ended its watchers with CURSOR_EXPIRED. The check due
// while the live handler is held, the room's last event discarded by the
// log (the room's creation) or held (an edit, on a subject of its own,
// with a gap after it), and the check done before the lag.
func TestLiveLagPastHistoryKeepsWatchers(t *testing.T) {
	for _, tc := range []struct {
		name         string
		checkedFirst bool // the check after the load ran before the live handler was held
		lastHeld     bool // b's last event before the lag is an edit, which the log keeps
	}{
		{"check due while the live handler lags, last event discarded", false, false},
		{"check due while the live handler lags, last event held", false, true},
		{"check done before the lag", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) { testLiveLagPastHistory(t, tc.checkedFirst, tc.lastHeld) })
	}
}

func testLiveLagPastHistory(t *testing.T, checkedFirst, lastHeld bool) {
	const history, posts = 6, 10
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	a := startService(t, first, Options{History: history})
	var hold atomic.Bool
	release := make(chan struct{})
	var blocked atomic.Int32
	b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: history}), Options{History: history},
		func(s *Service) {
			s.liveFilter = func(e pubsub.Entry) bool {
				if hold.Load() {
					blocked.Add(1)
					<-release // a slow live handler: entries queue behind it, none is dropped
				}
				return true
			}
		})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	room := mustRoom(t, a, "watched")
	w, err := b.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if lastHeld {
		m0 := mustPost(t, a, room.ID, "m0")
		if _, err := a.EditMessage(ctx, alice, m0.ID, 1, "m0 edited"); err != nil {
			t.Fatal(err)
		}
		for _, want := range []EventType{MessagePosted, MessageEdited} {
			if c, err := w.Next(ctx); err != nil || c.Type != want {
				t.Fatalf("before the lag: %+v, %v; want %s", c, err, want)
			}
		}
	}
	if checkedFirst {
		time.Sleep(1500 * time.Millisecond)
		waitFor(t, "the check after b's load", func() bool { return b.resyncer.idle() })
	}
	hold.Store(true)
	for i := range posts { // more than the history: the log discards b's position
		mustPost(t, a, room.ID, fmt.Sprintf("w%d", i))
	}
	if !checkedFirst {
		time.Sleep(1500 * time.Millisecond) // the check, a second after the load, runs now
	}
	hold.Store(false)
	close(release)
	for i := range posts {
		c, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("after %d changes: %v (b: %+v, live handler held %d time(s))", i, err, b.Stats(), blocked.Load())
		}
		if c.Message == nil || c.Message.Text != fmt.Sprintf("w%d", i) {
			t.Fatalf("change %d = %+v (message %+v), want the post w%d", i, c, c.Message, i)
		}
	}
}

// TestResyncerPicksTheEarliestDue: re-reads are made earliest due first,
// also after a merge moved one earlier or kept one's time, and a room not
// due yet is waited for.
func TestResyncerPicksTheEarliestDue(t *testing.T) {
	now := time.Now()
	r := newResyncer()
	r.add("a", reread{at: now.Add(-time.Second)})
	r.add("b", reread{at: now.Add(-3 * time.Second), probe: true})
	r.add("c", reread{at: now.Add(-2 * time.Second), check: true})
	r.add("d", reread{at: now.Add(time.Hour)})
	r.add("e", reread{at: now.Add(-4 * time.Second)})
	r.add("a", reread{at: now.Add(-5 * time.Second)}) // moves a first
	r.add("c", reread{at: now.Add(2 * time.Hour)})    // a repair, at c's time
	r.add("e", reread{at: now.Add(-6 * time.Second)}) // moves e first
	want := []struct {
		room string
		due  reread
	}{
		{"e", reread{at: now.Add(-6 * time.Second)}},
		{"a", reread{at: now.Add(-5 * time.Second)}},
		{"b", reread{at: now.Add(-3 * time.Second), probe: true}},
		{"c", reread{at: now.Add(-2 * time.Second)}},
	}
	for i, w := range want {
		room, due, wait := r.next()
		if room != w.room || due != w.due || wait != 0 {
			t.Fatalf("pick %d: %q %+v (wait %v), want %q %+v", i, room, due, wait, w.room, w.due)
		}
	}
	if room, _, wait := r.next(); room != "" || wait < 59*time.Minute || wait > time.Hour {
		t.Fatalf("with only d due in an hour: %q, wait %v", room, wait)
	}
	if len(r.due) != 1 || len(r.queue) != 1 || r.queue[0].room != "d" {
		t.Fatalf("left due %v, queued %d, want d alone", r.due, len(r.queue))
	}
}

// BenchmarkResyncerNext picks one due room among many that are not due
// yet, as after a leader election of a partition holding them all.
func BenchmarkResyncerNext(b *testing.B) {
	for _, rooms := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("%d rooms", rooms), func(b *testing.B) {
			r := newResyncer()
			later := time.Now().Add(time.Hour)
			for i := range rooms {
				r.add(fmt.Sprintf("room-%d", i), reread{at: later.Add(time.Duration(i) * 2 * time.Millisecond), probe: true})
			}
			past := time.Now().Add(-time.Second)
			b.ResetTimer()
			for b.Loop() {
				r.add("due", reread{at: past})
				if room, _, _ := r.next(); room != "due" {
					b.Fatalf("picked %q", room)
				}
			}
		})
	}
}

// TestResyncerMergesRereads: a room has one re-read due: the earlier time,
// a repair if any re-read asked for is one (a check or a probe must not
// weaken a repair, nor a probe a check), and a check's deferrals kept, so
// that their bound holds.
func TestResyncerMergesRereads(t *testing.T) {
	now := time.Now()
	later := now.Add(time.Second)
	for _, tc := range []struct {
		name  string
		first reread
		then  reread
		want  reread
	}{
		{"repair, then a later check", reread{at: now}, reread{at: later, check: true}, reread{at: now}},
		{"check, then a later repair", reread{at: now, check: true}, reread{at: later}, reread{at: now}},
		{"check, then an earlier check", reread{at: later, check: true}, reread{at: now, check: true}, reread{at: now, check: true}},
		{"deferred check, then a fresh one", reread{at: later, check: true, deferred: 3}, reread{at: now, check: true},
			reread{at: now, check: true, deferred: 3}},
		// A probe (after a leader election) never weakens what is due.
		{"repair, then an earlier probe", reread{at: later}, reread{at: now, probe: true}, reread{at: now}},
		{"probe, then a later repair", reread{at: now, probe: true}, reread{at: later}, reread{at: now}},
		{"probe, then a later check", reread{at: now, probe: true}, reread{at: later, check: true}, reread{at: now, check: true}},
		{"deferred check, then an earlier probe", reread{at: later, check: true, deferred: 2}, reread{at: now, probe: true},
			reread{at: now, check: true, deferred: 2}},
		{"probe, then an earlier probe", reread{at: later, probe: true}, reread{at: now, probe: true}, reread{at: now, probe: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newResyncer()
			r.add("room", tc.first)
			r.add("room", tc.then)
			if got := r.due["room"].reread; got != tc.want {
				t.Fatalf("due %+v, want %+v", got, tc.want)
			}
		})
	}
}
