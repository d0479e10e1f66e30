package chat

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestCatchUpPastDiscardedEntriesEndsWatchers: a replica holding a watched
// room misses live entries (a slow consumer or a NATS reconnect:
// Live.Lost, here the liveFilter hook) while other replicas post more to
// the room than its history keeps. README: "A room whose live event went
// missing ... is re-read from the log, with no loss and no duplicate for
// its subscribers." When what was missed has since been discarded by the
// log, the re-read cannot deliver it; the subscriber must then be told
// (its watcher ended with CURSOR_EXPIRED, as a resume from that far back
// is), not handed the retained tail as if nothing were missing. Both ways
// a re-read goes: the room's last event discarded too (a post: the room is
// read afresh, replaceLocked), or still held (an edit, on a subject of its
// own: the re-read goes on from it, applyReadLocked).
func TestCatchUpPastDiscardedEntriesEndsWatchers(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit bool // the last event the replica applied before the loss is an edit of m0
	}{
		{"last event discarded, room reloaded", false},
		{"last event held, re-read from it", true},
	} {
		t.Run(tc.name, func(t *testing.T) { testCatchUpPastDiscardedEntries(t, tc.edit) })
	}
}

func testCatchUpPastDiscardedEntries(t *testing.T, edit bool) {
	const history = 3
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	a := startService(t, first, Options{History: history})
	// b loses the live entries in (dropAfter, dropThrough]: by position,
	// so that entries still on their way when the loss ends are lost too.
	var dropAfter, dropThrough atomic.Uint64
	dropThrough.Store(math.MaxUint64)
	b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: history}), Options{History: history},
		func(s *Service) {
			s.liveFilter = func(e pubsub.Entry) bool {
				after := dropAfter.Load()
				return after == 0 || e.Seq <= after || e.Seq > dropThrough.Load()
			}
		})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	room := mustRoom(t, a, "busy")
	m0 := mustPost(t, a, room.ID, "m0")
	w, err := b.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	lastSeen := m0.Seq
	if edit {
		edited, err := a.EditMessage(ctx, alice, m0.ID, 1, "m0 edited")
		if err != nil {
			t.Fatal(err)
		}
		lastSeen = edited.UpdatedSeq
		if c, err := w.Next(ctx); err != nil || c.Type != MessageEdited {
			t.Fatalf("the edit of m0: %+v, %v", c, err)
		}
	}
	waitFor(t, "b to apply its last event before the loss", func() bool { return roomLast(t, b, room.ID) >= lastSeen })
	// The re-read b's load schedules a second later must not hide the loss:
	// let it run first.
	time.Sleep(1500 * time.Millisecond)
	waitFor(t, "the re-read after b's load", func() bool { return b.resyncer.idle() })
	time.Sleep(100 * time.Millisecond)

	dropAfter.Store(lastSeen)
	var m5 Message
	for i := 1; i <= 5; i++ { // m1..m5; the log keeps m3..m5 only
		m5 = mustPost(t, a, room.ID, fmt.Sprintf("m%d", i))
	}
	dropThrough.Store(m5.Seq)
	mustPost(t, a, room.ID, "m6") // b sees the gap and re-reads the room

	var got []string
	for len(got) < 6 {
		c, err := w.Next(ctx)
		if err != nil {
			if errors.Is(err, ErrWatcherClosed) || len(got) == 0 {
				t.Logf("watcher ended after %q: %v", got, err)
				var chatErr *Error
				if !errors.As(err, &chatErr) || chatErr.Code != CodeCursorExpired {
					t.Fatalf("the watcher ended with %v, want CURSOR_EXPIRED", err)
				}
				return // the subscriber was told (the watcher ended): no silent gap
			}
			t.Fatalf("after %q: %v", got, err)
		}
		if c.Message == nil {
			continue
		}
		got = append(got, c.Message.Text)
		if c.Message.Text == "m6" {
			break
		}
	}
	want := []string{"m1", "m2", "m3", "m4", "m5", "m6"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("the live subscriber on the replica that missed entries got %q after m0, want %q or its watcher ended: "+
			"the posts the log discarded meanwhile were skipped without a word (a resume from m0's cursor is CURSOR_EXPIRED)", got, want)
	}
}

// TestResumeFromCoveredCursorReplays: a resume from a cursor after which
// the log has discarded nothing must replay, not fail with CURSOR_EXPIRED.
// expiredBefore takes the first retained post's sequence - 1 as the floor
// once a room's history is full; but sequences are per partition, shared
// by every room in it (one partition by default), so other rooms' entries
// lie between a room's posts, and a cursor right at the last discarded
// post, or an empty room's resumeCursor (position 0) when exactly
// `history` posts followed, is refused though every event after it is
// still in the log. Both a replica that held the room and one that loads
// it answer so.
func TestResumeFromCoveredCursorReplays(t *testing.T) {
	const history = 3
	lg := openLog(t, pubsub.Options{MaxMsgsPerSubject: history, Partitions: 1})
	svc := startService(t, lg, Options{History: history})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other := mustRoom(t, svc, "other")
	mustPost(t, svc, other.ID, "elsewhere")

	// An empty room: its resumeCursor is position 0. Exactly `history`
	// posts follow, with another room's post in between: nothing of this
	// room was ever discarded.
	empty := mustRoom(t, svc, "empty")
	page, err := svc.Messages(ctx, empty.ID, Window{Last: 10})
	if err != nil || page.Last != 0 {
		t.Fatalf("empty room's page: %+v, %v", page, err)
	}
	mustPost(t, svc, other.ID, "elsewhere again")
	for i := range history {
		mustPost(t, svc, empty.ID, fmt.Sprintf("e%d", i))
	}

	// A room whose post p0 a subscriber saw last; then another room's
	// post, then exactly `history` posts: p0 is discarded, but nothing
	// after p0 is.
	busy := mustRoom(t, svc, "busy")
	p0 := mustPost(t, svc, busy.ID, "p0")
	mustPost(t, svc, other.ID, "elsewhere a third time")
	for i := 1; i <= history; i++ {
		mustPost(t, svc, busy.ID, fmt.Sprintf("p%d", i))
	}

	fresh := startService(t, openReplicaLog(t, lg, pubsub.Options{MaxMsgsPerSubject: history}), Options{History: history})
	var failures []string
	for _, c := range []struct {
		replica string
		svc     *Service
	}{{"the replica that held the rooms", svc}, {"a replica loading them", fresh}} {
		for _, r := range []struct {
			what  string
			room  string
			after uint64
		}{
			{"the empty room's resumeCursor (position 0)", empty.ID, 0},
			{"the cursor of p0, the last post discarded", busy.ID, p0.Seq},
		} {
			w, err := c.svc.WatchAfter(ctx, RoomTopic(r.room), r.after)
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s, resuming after %s: %v", c.replica, r.what, err))
				continue
			}
			c1, err := next(w)
			w.Close()
			if err != nil || c1.Message == nil {
				failures = append(failures, fmt.Sprintf("%s, resuming after %s: first change %+v, %v", c.replica, r.what, c1, err))
			}
		}
	}
	for _, f := range failures {
		t.Error(f)
	}
	if len(failures) > 0 {
		t.Log("every event after each cursor is still in the log (history ", history, "): the replay must deliver them, not CURSOR_EXPIRED")
	}
}

// TestPageAfterDiscardedCursorExpires: a client pages forward
// (messages(first:, after:)) from the cursor of the last message it read;
// meanwhile the room went on by more than its history, so the messages
// right after that cursor are gone from the log. The page silently starts
// at the oldest retained message, with hasPreviousPage false: the client
// cannot tell that messages between its cursor and the page were lost. A
// subscription resumed from the same cursor is refused with
// CURSOR_EXPIRED; the page answers as if nothing were missing.
func TestPageAfterDiscardedCursorExpires(t *testing.T) {
	const history = 3
	lg := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	svc := startService(t, lg, Options{History: history})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := mustRoom(t, svc, "paged")
	read := mustPost(t, svc, room.ID, "m0") // the last message the client read
	var m2 Message
	for i := 1; i <= 5; i++ {
		m := mustPost(t, svc, room.ID, fmt.Sprintf("m%d", i)) // m1, m2 are discarded
		if i == 2 {
			m2 = m
		}
	}
	if _, err := svc.WatchAfter(ctx, RoomTopic(room.ID), read.Seq); err == nil {
		t.Fatal("a resume from m0's cursor is accepted; this test assumes CURSOR_EXPIRED")
	}
	// After m2's cursor nothing is missing: m3, m4 and m5 are all kept.
	covered, err := svc.Messages(ctx, room.ID, Window{After: m2.Seq, First: 10})
	if err != nil || len(covered.Items) != 3 || covered.Items[0].Text != "m3" {
		t.Fatalf("messages(first: 10, after: <m2's cursor>) = %+v, %v; want m3, m4, m5", covered.Items, err)
	}
	page, err := svc.Messages(ctx, room.ID, Window{After: read.Seq, First: 10})
	if err != nil {
		wantCode(t, err, CodeCursorExpired) // refused: the client is told
		return
	}
	var texts []string
	for _, m := range page.Items {
		texts = append(texts, m.Text)
	}
	if len(texts) > 0 && texts[0] != "m1" && !page.HasPreviousPage {
		t.Fatalf("messages(first: 10, after: <m0's cursor>) = %q with hasPreviousPage false and no error: "+
			"m1 and m2, which followed the cursor, were discarded by the log and are skipped without a word", texts)
	}
}

// TestPageBackAfterDiscardedCursor: the page after a cursor whose
// following posts the log discarded is refused (CURSOR_EXPIRED) read
// forward (TestPageAfterDiscardedCursorExpires); read backward, with last
// (or with both cursors and no count, whose default is the last 50), it
// must not answer as if nothing were missing either: a page that starts at
// the oldest retained message with hasPreviousPage false says nothing lies
// between the cursor and it, when m1 and m2 did.
func TestPageBackAfterDiscardedCursor(t *testing.T) {
	const history = 3
	lg := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	svc := startService(t, lg, Options{History: history})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := mustRoom(t, svc, "paged back")
	read := mustPost(t, svc, room.ID, "m0") // the last message the client read
	var last Message
	for i := 1; i <= 5; i++ {
		last = mustPost(t, svc, room.ID, fmt.Sprintf("m%d", i)) // m1, m2 are discarded
	}
	for _, w := range []Window{
		{After: read.Seq, Last: 10},
		{After: read.Seq, Before: last.Seq + 1, Last: 50},
	} {
		page, err := svc.Messages(ctx, room.ID, w)
		if err != nil {
			wantCode(t, err, CodeCursorExpired)
			continue
		}
		var texts []string
		for _, m := range page.Items {
			texts = append(texts, m.Text)
		}
		if len(texts) > 0 && texts[0] != "m1" && !page.HasPreviousPage {
			t.Errorf("messages(%+v) = %q with hasPreviousPage false and no error: m1 and m2, which followed the cursor, "+
				"were discarded by the log and are skipped without a word", w, texts)
		}
	}
}
