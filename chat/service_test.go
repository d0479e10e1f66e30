package chat

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// memLog is an in-memory EventLog. Delivery to followers can be held back
// to simulate a replica that lags or a log that fails.
type memLog struct {
	mu        sync.Mutex
	entries   []pubsub.Entry
	dedup     map[string]uint64
	changed   chan struct{}
	held      bool // followers see nothing while held
	appendErr error
}

func newMemLog() *memLog {
	return &memLog{dedup: map[string]uint64{}, changed: make(chan struct{})}
}

func (l *memLog) Append(ctx context.Context, subject string, data []byte, dedupID string) (pubsub.AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.appendErr != nil {
		return pubsub.AppendResult{}, l.appendErr
	}
	if seq, ok := l.dedup[dedupID]; ok && dedupID != "" {
		return pubsub.AppendResult{Seq: seq, Duplicate: true}, nil
	}
	seq := uint64(len(l.entries) + 1)
	l.entries = append(l.entries, pubsub.Entry{Seq: seq, Subject: subject, Data: data, Time: time.Unix(int64(seq), 0)})
	if dedupID != "" {
		l.dedup[dedupID] = seq
	}
	l.notify()
	return pubsub.AppendResult{Seq: seq}, nil
}

func (l *memLog) notify() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *memLog) hold(held bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = held
	l.notify()
}

func (l *memLog) LastSeq(context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries)), nil
}

func (l *memLog) Follow(ctx context.Context, from uint64, fn func(pubsub.Entry) error) error {
	next := max(from, 1)
	for {
		l.mu.Lock()
		var batch []pubsub.Entry
		if !l.held && int(next) <= len(l.entries) {
			batch = append(batch, l.entries[next-1:]...)
		}
		wake := l.changed
		l.mu.Unlock()
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
			next = e.Seq + 1
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// runService runs svc until the test ends.
func runService(t *testing.T, svc *Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestServiceReadYourWrites(t *testing.T) {
	svc := NewService(newMemLog(), Options{})
	runService(t, svc)
	room, err := svc.CreateRoom(context.Background(), alice, "general")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := svc.PostMessage(context.Background(), alice, room.ID, "hi", "")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := svc.Room(room.ID); !ok || got.MessageCount != 1 || msg.Text != "hi" || msg.Seq != 2 {
		t.Fatalf("room = %+v, msg = %+v", got, msg)
	}
}

func TestServiceReadinessWaitsForReplay(t *testing.T) {
	log := newMemLog()
	writer := NewService(log, Options{})
	runService(t, writer)
	room, _ := writer.CreateRoom(context.Background(), alice, "general")
	if _, err := writer.PostMessage(context.Background(), alice, room.ID, "hi", ""); err != nil {
		t.Fatal(err)
	}

	log.hold(true)
	reader := NewService(log, Options{})
	if ok, _ := reader.Ready(); ok {
		t.Fatal("ready before running")
	}
	runService(t, reader)
	time.Sleep(20 * time.Millisecond)
	if ok, why := reader.Ready(); ok {
		t.Fatal("ready before replaying the log")
	} else if why == "" {
		t.Fatal("not ready without saying why")
	}
	log.hold(false)
	waitFor(t, "readiness after replay", func() bool { ok, _ := reader.Ready(); return ok })
	if r, _ := reader.Room(room.ID); r.MessageCount != 1 {
		t.Fatalf("replayed room = %+v", r)
	}
}

func TestServiceCommandFailures(t *testing.T) {
	log := newMemLog()
	svc := NewService(log, Options{ApplyTimeout: 100 * time.Millisecond})
	runService(t, svc)
	room, _ := svc.CreateRoom(context.Background(), alice, "general")

	log.hold(true)
	_, err := svc.PostMessage(context.Background(), alice, room.ID, "stuck", "")
	var chatErr *Error
	if !errors.As(err, &chatErr) || chatErr.Code != CodeUnavailable {
		t.Fatalf("post while the replica lags: %v, want UNAVAILABLE", err)
	}
	log.hold(false)

	log.mu.Lock()
	log.appendErr = errors.New("nats: no responders")
	log.mu.Unlock()
	_, err = svc.PostMessage(context.Background(), alice, room.ID, "lost", "")
	if !errors.As(err, &chatErr) || chatErr.Code != CodeUnavailable {
		t.Fatalf("post while the log fails: %v, want UNAVAILABLE", err)
	}
}

func TestServiceRejectsBeforeAppending(t *testing.T) {
	log := newMemLog()
	svc := NewService(log, Options{MaxTextLength: 10})
	runService(t, svc)
	room, _ := svc.CreateRoom(context.Background(), alice, "general")
	tests := []struct {
		name string
		call func() error
		code Code
	}{
		{"anonymous", func() error { _, err := svc.CreateRoom(context.Background(), Actor{}, "x"); return err }, CodeUnauthenticated},
		{"duplicate name", func() error { _, err := svc.CreateRoom(context.Background(), bob, "GENERAL"); return err }, CodeConflict},
		{"bad room id", func() error { _, err := svc.PostMessage(context.Background(), bob, "R!", "x", ""); return err }, CodeNotFound},
		{"empty text", func() error { _, err := svc.PostMessage(context.Background(), bob, room.ID, "", ""); return err }, CodeBadUserInput},
		{"long key", func() error {
			_, err := svc.PostMessage(context.Background(), bob, room.ID, "x", string(make([]byte, MaxIdempotencyKeyLength+1)))
			return err
		}, CodeBadUserInput},
		{"bad message id", func() error { _, err := svc.EditMessage(context.Background(), bob, "nounderscore", 1, "x"); return err }, CodeNotFound},
		{"bad emoji", func() error { _, err := svc.React(context.Background(), bob, room.ID+"_mx", " "); return err }, CodeBadUserInput},
		{"anonymous post", func() error { _, err := svc.PostMessage(context.Background(), Actor{}, room.ID, "x", ""); return err }, CodeUnauthenticated},
		{"text over this replica's limit", func() error {
			_, err := svc.PostMessage(context.Background(), bob, room.ID, "élévations!", "")
			return err
		}, CodeBadUserInput},
		{"edit over this replica's limit", func() error {
			_, err := svc.EditMessage(context.Background(), bob, room.ID+"_mx", 1, "élévations!")
			return err
		}, CodeBadUserInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := log.LastSeq(context.Background())
			var chatErr *Error
			if err := tt.call(); !errors.As(err, &chatErr) || chatErr.Code != tt.code {
				t.Fatalf("err = %v, want %s", err, tt.code)
			}
			if after, _ := log.LastSeq(context.Background()); after != before {
				t.Fatal("an invalid command was appended to the log")
			}
		})
	}
}

func TestWatchDeliversChangesInOrder(t *testing.T) {
	svc := NewService(newMemLog(), Options{})
	runService(t, svc)
	ctx := context.Background()
	rooms := svc.Watch(RoomsTopic)
	defer rooms.Close()
	room, _ := svc.CreateRoom(ctx, alice, "general")
	other, _ := svc.CreateRoom(ctx, alice, "other")

	w := svc.Watch(RoomTopic(room.ID))
	m1, _ := svc.PostMessage(ctx, alice, room.ID, "one", "")
	if _, err := svc.PostMessage(ctx, alice, other.ID, "elsewhere", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.EditMessage(ctx, bob, m1.ID, 1, "stolen"); err == nil {
		t.Fatal("a rejected edit was accepted")
	}
	if _, err := svc.EditMessage(ctx, alice, m1.ID, 1, "uno"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.React(ctx, bob, m1.ID, "👍"); err != nil {
		t.Fatal(err)
	}

	want := []struct {
		typ  EventType
		text string
	}{{MessagePosted, "one"}, {MessageEdited, "uno"}, {ReactionToggled, "uno"}}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var last uint64
	for i, wnt := range want {
		c, err := w.Next(wctx)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if c.Type != wnt.typ || c.Message == nil || c.Message.Text != wnt.text || c.Seq <= last || c.Room.ID != room.ID {
			t.Fatalf("change %d = %+v, want %s %q after seq %d (rejected events and other rooms never show)", i, c, wnt.typ, wnt.text, last)
		}
		last = c.Seq
	}
	quiet, cancelQuiet := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelQuiet()
	if c, err := w.Next(quiet); err == nil {
		t.Fatalf("unexpected extra change %+v", c)
	}
	for _, name := range []string{"general", "other"} {
		c, err := rooms.Next(wctx)
		if err != nil || c.Type != RoomCreated || c.Room.Name != name {
			t.Fatalf("rooms topic: %+v, %v, want %s created", c, err, name)
		}
	}

	w.Close()
	if _, err := w.Next(ctx); !errors.Is(err, ErrWatcherClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
	if svc.hub.watched(RoomTopic(room.ID)) {
		t.Fatal("a closed watcher is still registered")
	}
}
