package chat

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// stressTestCheckHeld compares every room svc holds with a fresh read of
// the log, and the cache's byte count with the rooms' estimates.
func stressTestCheckHeld(t *testing.T, svc *Service) {
	t.Helper()
	svc.rooms.mu.Lock()
	var hs []*heldRoom
	for _, h := range svc.rooms.held {
		hs = append(hs, h)
	}
	svc.rooms.mu.Unlock()
	var sum int64
	for _, h := range hs {
		<-h.ready
		h.mu.Lock()
		st := h.st
		sum += st.bytes
		last, bytes, n := st.last, st.bytes, len(st.messages)
		exp, stats := st.expiredBefore(), st.stats
		meta := st.room
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		fresh, err := svc.readRoom(ctx, meta, newEventStrings(meta.ID))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if fresh.expiredBefore() != exp || fresh.stats.MessageCount != stats.MessageCount || !fresh.stats.LastMessageAt.Equal(stats.LastMessageAt) {
			t.Errorf("room %s held: expiredBefore %d, stats %+v; the log: %d, %+v", meta.Name, exp, stats, fresh.expiredBefore(), fresh.stats)
		}
		if fresh.last != last || fresh.bytes != bytes || len(fresh.messages) != n {
			t.Errorf("room %s held: last %d, %d bytes, %d messages; the log: last %d, %d bytes, %d messages",
				meta.Name, last, bytes, n, fresh.last, fresh.bytes, len(fresh.messages))
		}
	}
	if got := svc.Stats().BytesHeld; got != sum {
		t.Errorf("Stats().BytesHeld = %d; the held rooms' estimates sum to %d", got, sum)
	}
	if st := svc.Stats(); st.RoomsHeld != len(hs) || st.LiveSubscriptions != len(hs) {
		t.Errorf("Stats() = %+v with %d rooms held", st, len(hs))
	}
}

// stressTestRetained reports whether the log still holds message id of
// room, read afresh: not svc's held room, which may be what lost it.
func stressTestRetained(ctx context.Context, svc *Service, room Room, id string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := svc.readRoom(ctx, room, newEventStrings(room.ID))
	if err != nil {
		return false, err
	}
	return st.byID[id] != nil, nil
}

// TestTinyCacheUnderLoad: a replica with a tiny cache keeps a watched room
// while it writes to, reads and resumes in rooms it evicts and reloads,
// while another replica writes to all of them.
func TestTinyCacheUnderLoad(t *testing.T) {
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: 6})
	a := startService(t, first, Options{History: 6})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: 6}), Options{History: 6, RoomCache: 3000})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	watched := mustRoom(t, a, "watched")
	var rooms []Room
	for i := range 8 {
		rooms = append(rooms, mustRoom(t, a, fmt.Sprintf("r%d", i)))
	}
	w, err := b.Watch(ctx, RoomTopic(watched.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const n = 120
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() {
		for i := range n {
			if _, err := a.PostMessage(ctx, alice, watched.ID, fmt.Sprintf("w%d", i), ""); err != nil {
				errs <- fmt.Errorf("post to watched: %w", err)
				return
			}
		}
	})
	wg.Go(func() { // a writes into the cold rooms
		for i := range n {
			r := rooms[i%len(rooms)]
			m, err := a.PostMessage(ctx, alice, r.ID, fmt.Sprintf("a%d", i), "")
			if err != nil {
				errs <- err
				return
			}
			if i%3 == 0 {
				if _, err := a.React(ctx, bob, m.ID, "👍"); err != nil {
					errs <- err
					return
				}
			}
		}
	})
	wg.Go(func() { // b writes into the cold rooms
		for i := range n {
			r := rooms[(i*3)%len(rooms)]
			text := fmt.Sprintf("b%d", i)
			m, err := b.PostMessage(ctx, bob, r.ID, text, fmt.Sprintf("k%d", i))
			if err != nil {
				errs <- fmt.Errorf("b post: %w", err)
				return
			}
			if m.Text != text || m.Author.ID != bob.ID {
				errs <- fmt.Errorf("b post %q answered %+v", text, m)
				return
			}
			if i%4 == 0 {
				e, err := b.EditMessage(ctx, bob, m.ID, 1, text+"e")
				if ce := (*Error)(nil); errors.As(err, &ce) && ce.Code == CodeNotFound {
					// a posts into the room too: six of its posts between
					// b's post and edit leave the message out of the room's
					// history, as the log discards it. Only a message the
					// log still holds must be found.
					if retained, rerr := stressTestRetained(ctx, b, r, m.ID); rerr != nil || retained {
						errs <- fmt.Errorf("b edit of a message the log retains: %w (reading the room: %v)", err, rerr)
						return
					}
					continue
				}
				if err != nil {
					errs <- fmt.Errorf("b edit: %w", err)
					return
				}
				if e.Text != text+"e" || e.Version != 2 {
					errs <- fmt.Errorf("b edit answered %+v", e)
					return
				}
			}
		}
	})
	wg.Go(func() { // b resumes in cold rooms
		for i := range 40 {
			r := rooms[(i*5)%len(rooms)]
			page, err := b.Messages(ctx, r.ID, Window{Last: 2})
			if err != nil {
				errs <- err
				return
			}
			if len(page.Items) == 0 {
				continue
			}
			after := page.Items[0].UpdatedSeq
			for _, m := range page.Items {
				after = min(after, m.Seq)
			}
			rw, err := b.WatchAfter(ctx, RoomTopic(r.ID), page.Last)
			if err != nil {
				if ce := (*Error)(nil); !errors.As(err, &ce) || ce.Code != CodeCursorExpired {
					errs <- fmt.Errorf("resume: %w", err)
					return
				}
				continue
			}
			var lastSeq uint64
			deadline, c2 := context.WithTimeout(ctx, 150*time.Millisecond)
			for {
				c, err := rw.Next(deadline)
				if err != nil {
					break
				}
				if c.Seq <= page.Last || c.Seq <= lastSeq {
					errs <- fmt.Errorf("resume after %d in %s: change %d after %d", page.Last, r.Name, c.Seq, lastSeq)
				}
				lastSeq = c.Seq
			}
			c2()
			rw.Close()
		}
	})
	wg.Go(func() { // b reads cold rooms
		for i := range 300 {
			r := rooms[(i*7)%len(rooms)]
			if _, err := b.RoomStats(ctx, r.ID); err != nil {
				errs <- err
				return
			}
		}
	})
	var got []string
	var lastSeq uint64
	for len(got) < n {
		c, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("watcher after %d changes: %v", len(got), err)
		}
		if c.Seq <= lastSeq {
			t.Fatalf("watcher: change %d after %d", c.Seq, lastSeq)
		}
		lastSeq = c.Seq
		got = append(got, c.Message.Text)
	}
	for i, text := range got {
		if text != fmt.Sprintf("w%d", i) {
			t.Fatalf("watcher change %d = %q", i, text)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	time.Sleep(1500 * time.Millisecond) // let confirm re-reads settle
	stressTestCheckHeld(t, b)
	stressTestCheckHeld(t, a)
	t.Logf("b: %+v", b.Stats())
}
