package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openLog opens a log on an embedded NATS server that also listens on
// loopback, so that other "replicas" can connect to it (openReplicaLog).
func openLog(t *testing.T, opts pubsub.Options) *pubsub.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Partitions == 0 {
		opts.Partitions = 2
	}
	opts.ListenAddr = "127.0.0.1:0"
	opts.Logger = quiet
	log, err := pubsub.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	t.Cleanup(func() { _ = log.Close() })
	return log
}

// openReplicaLog is a second NATS connection to first's server, as another
// replica has.
func openReplicaLog(t *testing.T, first *pubsub.Log, opts pubsub.Options) *pubsub.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts.URLs = []string{first.ClientURL()}
	opts.Partitions = first.Partitions()
	opts.Logger = quiet
	log, err := pubsub.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	t.Cleanup(func() { _ = log.Close() })
	return log
}

// startService runs a Service until the test ends and waits until it is
// ready; configure tweaks it before it runs.
func startService(t *testing.T, log EventLog, opts Options, configure ...func(*Service)) *Service {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	svc := NewService(log, opts)
	for _, c := range configure {
		c(svc)
	}
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
	waitFor(t, "the service to be ready", func() bool { ok, _ := svc.Ready(); return ok })
	return svc
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func mustRoom(t *testing.T, svc *Service, name string) Room {
	t.Helper()
	room, err := svc.CreateRoom(context.Background(), alice, name)
	if err != nil {
		t.Fatalf("create room %q: %v", name, err)
	}
	return room
}

func mustPost(t *testing.T, svc *Service, roomID, text string) Message {
	t.Helper()
	m, err := svc.PostMessage(context.Background(), alice, roomID, text, "")
	if err != nil {
		t.Fatalf("post %q: %v", text, err)
	}
	return m
}

func wantCode(t *testing.T, err error, code Code) {
	t.Helper()
	var chatErr *Error
	if !errors.As(err, &chatErr) || chatErr.Code != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

func TestServiceReadYourWrites(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx := context.Background()
	room := mustRoom(t, svc, "general")
	if got, ok := svc.RoomInfo(room.ID); !ok || got.Name != "general" || got.CreatedBy != alice {
		t.Fatalf("room info right after creating it = %+v, %v", got, ok)
	}
	msg := mustPost(t, svc, room.ID, "hi")
	stats, err := svc.RoomStats(ctx, room.ID)
	if err != nil || stats.MessageCount != 1 || msg.Text != "hi" || msg.Version != 1 {
		t.Fatalf("stats = %+v, %v; msg = %+v", stats, err, msg)
	}
	edited, err := svc.EditMessage(ctx, alice, msg.ID, 1, "hello")
	if err != nil || edited.Version != 2 || edited.Text != "hello" {
		t.Fatalf("edit = %+v, %v", edited, err)
	}
	got, ok, err := svc.Message(ctx, "", msg.ID)
	if err != nil || !ok || got.Text != "hello" || got.Version != 2 {
		t.Fatalf("message right after the edit = %+v, %v, %v", got, ok, err)
	}
}

// TestServiceStartsWithoutReplayingRooms: a fresh replica is ready once it
// has the room directory, holds no room until one is used, and loads just
// that one.
func TestServiceStartsWithoutReplayingRooms(t *testing.T) {
	first := openLog(t, pubsub.Options{Partitions: 1}) // one partition: its live entries arrive in order
	writer := startService(t, first, Options{})
	var rooms []Room
	for i := range 3 {
		room := mustRoom(t, writer, fmt.Sprintf("room %d", i))
		for j := range 20 {
			mustPost(t, writer, room.ID, fmt.Sprintf("m%d", j))
		}
		rooms = append(rooms, room)
	}

	fresh := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	if st := fresh.Stats(); st.RoomsHeld != 0 || fresh.Applied() != 3 || st.LiveSubscriptions != 0 {
		t.Fatalf("a fresh replica holds %+v and applied %d entries; want only the 3 directory entries", st, fresh.Applied())
	}
	if page, _ := fresh.Rooms(context.Background(), "", Window{First: 10}); page.TotalCount != 3 {
		t.Fatalf("rooms = %+v", page)
	}
	page, err := fresh.Messages(context.Background(), rooms[1].ID, Window{Last: 50})
	if err != nil || page.TotalCount != 20 || page.Items[0].Text != "m0" {
		t.Fatalf("messages of a room loaded on demand = %+v, %v", page, err)
	}
	if st := fresh.Stats(); st.RoomsHeld != 1 || st.Loads != 1 || st.LiveSubscriptions != 1 {
		t.Fatalf("after one room was used: %+v, want it alone held", st)
	}
	if _, err := fresh.Messages(context.Background(), "rnosuchroom", Window{Last: 1}); err == nil {
		t.Fatal("messages of an unknown room: no error")
	}

	// Traffic in rooms it does not hold costs the replica nothing: of 21
	// posts it applies only the last, in the room it holds.
	applied := fresh.Applied()
	for j := range 20 {
		mustPost(t, writer, rooms[0].ID, fmt.Sprintf("elsewhere %d", j))
	}
	mustPost(t, writer, rooms[1].ID, "held")
	waitFor(t, "the held room's post", func() bool {
		page, _ := fresh.Messages(context.Background(), rooms[1].ID, Window{Last: 1})
		return len(page.Items) == 1 && page.Items[0].Text == "held"
	})
	if got := fresh.Applied() - applied; got != 1 {
		t.Fatalf("applied %d entries for 20 posts elsewhere and 1 in the held room, want 1", got)
	}
}

// countingLog counts appends and can make them fail.
type countingLog struct {
	*pubsub.Log
	appends atomic.Int64
	fail    atomic.Pointer[error]
}

func (l *countingLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	if err := l.fail.Load(); err != nil {
		return pubsub.AppendResult{}, *err
	}
	l.appends.Add(1)
	return l.Log.AppendKeyed(ctx, key, rest, data, o)
}

func (l *countingLog) AddToDirectory(ctx context.Context, key string, data []byte) (pubsub.AppendResult, error) {
	if err := l.fail.Load(); err != nil {
		return pubsub.AppendResult{}, *err
	}
	l.appends.Add(1)
	return l.Log.AddToDirectory(ctx, key, data)
}

func TestServiceRejectsBeforeAppending(t *testing.T) {
	log := &countingLog{Log: openLog(t, pubsub.Options{})}
	svc := startService(t, log, Options{MaxTextLength: 10})
	room := mustRoom(t, svc, "general")
	msg := mustPost(t, svc, room.ID, "mine")
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		code Code
	}{
		{"anonymous", func() error { _, err := svc.CreateRoom(ctx, Actor{}, "x"); return err }, CodeUnauthenticated},
		{"duplicate name", func() error { _, err := svc.CreateRoom(ctx, bob, "GENERAL"); return err }, CodeConflict},
		{"bad room name", func() error { _, err := svc.CreateRoom(ctx, bob, " padded"); return err }, CodeBadUserInput},
		{"bad room id", func() error { _, err := svc.PostMessage(ctx, bob, "R!", "x", ""); return err }, CodeNotFound},
		{"unknown room", func() error { _, err := svc.PostMessage(ctx, bob, "rnosuchroom", "x", ""); return err }, CodeNotFound},
		{"empty text", func() error { _, err := svc.PostMessage(ctx, bob, room.ID, "", ""); return err }, CodeBadUserInput},
		{"long key", func() error {
			_, err := svc.PostMessage(ctx, bob, room.ID, "x", string(make([]byte, MaxIdempotencyKeyLength+1)))
			return err
		}, CodeBadUserInput},
		{"bad message id", func() error { _, err := svc.EditMessage(ctx, bob, "nounderscore", 1, "x"); return err }, CodeNotFound},
		{"message of an unknown room", func() error { _, err := svc.EditMessage(ctx, bob, "rnosuchroom_mx", 1, "x"); return err }, CodeNotFound},
		{"unknown message", func() error { _, err := svc.EditMessage(ctx, alice, room.ID+"_mx", 1, "x"); return err }, CodeNotFound},
		{"someone else's message", func() error { _, err := svc.EditMessage(ctx, bob, msg.ID, 1, "x"); return err }, CodeForbidden},
		{"stale version", func() error { _, err := svc.DeleteMessage(ctx, alice, msg.ID, 2); return err }, CodeConflict},
		// No message is ever at a version below 1: a bad argument, not a
		// stale one to refetch.
		{"version 0", func() error { _, err := svc.DeleteMessage(ctx, alice, msg.ID, 0); return err }, CodeBadUserInput},
		{"negative version", func() error { _, err := svc.EditMessage(ctx, alice, msg.ID, -1, "x"); return err }, CodeBadUserInput},
		{"bad emoji", func() error { _, err := svc.React(ctx, bob, msg.ID, " "); return err }, CodeBadUserInput},
		{"anonymous post", func() error { _, err := svc.PostMessage(ctx, Actor{}, room.ID, "x", ""); return err }, CodeUnauthenticated},
		{"text over this replica's limit", func() error {
			_, err := svc.PostMessage(ctx, bob, room.ID, "élévations!", "")
			return err
		}, CodeBadUserInput},
		{"edit over this replica's limit", func() error {
			_, err := svc.EditMessage(ctx, alice, msg.ID, 1, "élévations!")
			return err
		}, CodeBadUserInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := log.appends.Load()
			wantCode(t, tt.call(), tt.code)
			if log.appends.Load() != before {
				t.Fatal("a command the rules refuse was appended to the log")
			}
		})
	}
}

func TestServiceLogFailureIsUnavailable(t *testing.T) {
	log := &countingLog{Log: openLog(t, pubsub.Options{})}
	svc := startService(t, log, Options{ApplyTimeout: 300 * time.Millisecond})
	room := mustRoom(t, svc, "general")
	fail := fmt.Errorf("append: %w", pubsub.ErrUnreachable)
	log.fail.Store(&fail)
	_, err := svc.PostMessage(context.Background(), alice, room.ID, "lost", "")
	wantCode(t, err, CodeUnavailable)
	_, err = svc.CreateRoom(context.Background(), alice, "other")
	wantCode(t, err, CodeUnavailable)
	log.fail.Store(nil)
	mustPost(t, svc, room.ID, "back")
}

func TestServiceIdempotentRetry(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	room := mustRoom(t, svc, "general")
	ctx := context.Background()
	first, err := svc.PostMessage(ctx, alice, room.ID, "once", "k1")
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, svc, room.ID, "in between") // the retry's expected position is stale
	retry, err := svc.PostMessage(ctx, alice, room.ID, "once", "k1")
	if err != nil || retry.ID != first.ID || retry.Seq != first.Seq {
		t.Fatalf("retry = %+v, %v; want the first post %+v", retry, err, first)
	}
	if stats, _ := svc.RoomStats(ctx, room.ID); stats.MessageCount != 2 {
		t.Fatalf("messageCount = %d, want 2", stats.MessageCount)
	}
	other, err := svc.PostMessage(ctx, bob, room.ID, "once", "k1") // another author's key
	if err != nil || other.ID == first.ID {
		t.Fatalf("another author's post = %+v, %v", other, err)
	}
}

func TestWatchDeliversChangesInOrder(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx := context.Background()
	rooms, err := svc.Watch(ctx, RoomsTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	room := mustRoom(t, svc, "general")
	other := mustRoom(t, svc, "other")

	w, err := svc.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	m1 := mustPost(t, svc, room.ID, "one")
	mustPost(t, svc, other.ID, "elsewhere")
	if _, err := svc.EditMessage(ctx, bob, m1.ID, 1, "stolen"); err == nil {
		t.Fatal("a refused edit was accepted")
	}
	if _, err := svc.EditMessage(ctx, alice, m1.ID, 1, "uno"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.React(ctx, bob, m1.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	expectChanges(t, w, svc, []EventType{MessagePosted, MessageEdited, ReactionToggled}, []string{"one", "uno", "uno"})
	for _, name := range []string{"general", "other"} {
		c, err := next(rooms)
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

func next(w *Watcher) (Change, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.Next(ctx)
}

// expectChanges reads len(types) changes and checks them. Then it posts a
// fence message to the watched room on svc and checks that the fence is
// the next change: a watcher gets a room's changes in the room's order, so
// anything more (a duplicate, a change of another room) would come before
// the fence. Waiting a while for silence instead would pass whenever the
// replica is merely slow.
func expectChanges(t *testing.T, w *Watcher, svc *Service, types []EventType, texts []string) []Change {
	t.Helper()
	var got []Change
	var last uint64
	for i := range types {
		c, err := next(w)
		if err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
		if c.Type != types[i] || c.Message == nil || c.Message.Text != texts[i] || c.Seq <= last {
			t.Fatalf("change %d = %+v (message %+v), want %s %q after seq %d", i, c, c.Message, types[i], texts[i], last)
		}
		last = c.Seq
		got = append(got, c)
	}
	roomID, _ := roomOfMessage(got[0].Message.ID)
	fence := mustPost(t, svc, roomID, "fence")
	c, err := next(w)
	if err != nil {
		t.Fatalf("the fence: %v", err)
	}
	if c.Type != MessagePosted || c.Message == nil || c.Message.ID != fence.ID {
		t.Fatalf("unexpected extra change %+v (message %+v) before the fence", c, c.Message)
	}
	return got
}

// TestTwoReplicasJudgeConflictingEditsIdentically: two replicas edit the
// same messages at the same version at the same moment; exactly one edit of
// each wins, the other is refused with CONFLICT, and both replicas agree on
// every message afterwards.
func TestTwoReplicasJudgeConflictingEditsIdentically(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	room := mustRoom(t, a, "general")
	ctx := context.Background()
	const n = 20
	var msgs []Message
	for i := range n {
		msgs = append(msgs, mustPost(t, a, room.ID, fmt.Sprintf("m%d", i)))
	}
	for i, m := range msgs {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for r, svc := range []*Service{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[r] = svc.EditMessage(ctx, alice, m.ID, 1, fmt.Sprintf("edit %d by replica %d", i, r))
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
				continue
			}
			wantCode(t, err, CodeConflict)
		}
		if won != 1 {
			t.Fatalf("message %d: %d edits at version 1 won (errors %v), want exactly 1", i, won, errs)
		}
	}
	for _, m := range msgs {
		var got [2]Message
		for r, svc := range []*Service{a, b} {
			waitFor(t, "the edit on both replicas", func() bool {
				msg, _, _ := svc.Message(ctx, "", m.ID)
				got[r] = msg
				return msg.Version == 2
			})
		}
		if got[0].Text != got[1].Text || got[0].UpdatedSeq != got[1].UpdatedSeq {
			t.Fatalf("replicas disagree on %s: %+v vs %+v", m.ID, got[0], got[1])
		}
	}
}

func TestTwoReplicasRaceTheSameRoomName(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx := context.Background()
	for i := range 20 {
		names := []string{fmt.Sprintf("race %d", i), fmt.Sprintf("RACE %d", i)}
		var wg sync.WaitGroup
		rooms := make([]Room, 2)
		errs := make([]error, 2)
		for r, svc := range []*Service{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rooms[r], errs[r] = svc.CreateRoom(ctx, alice, names[r])
			}()
		}
		wg.Wait()
		winner := -1
		for r, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: both replicas created the name: %+v", i, rooms)
				}
				winner = r
				continue
			}
			wantCode(t, err, CodeConflict)
		}
		if winner < 0 {
			t.Fatalf("round %d: neither replica created the room: %v", i, errs)
		}
		for _, svc := range []*Service{a, b} {
			got, ok, err := svc.LookupRoom(ctx, rooms[winner].ID)
			if err != nil || !ok || got.Name != names[winner] {
				t.Fatalf("round %d: replica sees %+v, %v, %v; want %q", i, got, ok, err, names[winner])
			}
		}
	}
	pa, _ := a.Rooms(ctx, "", Window{First: 100})
	pb, _ := b.Rooms(ctx, "", Window{First: 100})
	if pa.TotalCount != 20 || pb.TotalCount != 20 {
		t.Fatalf("rooms: %d on a, %d on b, want 20", pa.TotalCount, pb.TotalCount)
	}
}

// TestDroppedLiveEventIsResynced: a replica that loses one live entry of a
// held room notices at the next one (its Prev is not the room's last) and
// reads the room from the log: its subscriber gets every event once, in
// order. A command on that replica right after a lost entry catches up the
// same way.
func TestDroppedLiveEventIsResynced(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	room := mustRoom(t, a, "general")
	var seen, dropped atomic.Int64
	dropSecond := func(e pubsub.Entry) bool {
		if e.Key != room.ID {
			return true
		}
		if seen.Add(1) == 2 {
			dropped.Add(1)
			return false
		}
		return true
	}
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{}, func(s *Service) { s.liveFilter = dropSecond })
	w, err := b.Watch(context.Background(), RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var texts []string
	var types []EventType
	for i := range 10 {
		text := fmt.Sprintf("m%d", i)
		mustPost(t, a, room.ID, text)
		texts, types = append(texts, text), append(types, MessagePosted)
	}
	expectChanges(t, w, a, types, texts)
	if dropped.Load() != 1 || b.Stats().Resyncs == 0 {
		t.Fatalf("dropped %d live entries, %d re-syncs; want 1 and at least 1", dropped.Load(), b.Stats().Resyncs)
	}

	// Now lose the last entry before b itself posts: b's append is refused
	// (the room moved on), b catches up from the log and posts after it.
	seen.Store(0)
	mustPost(t, a, room.ID, "lost live")
	mustPost(t, a, room.ID, "also lost") // seen 2: dropped
	m, err := b.PostMessage(context.Background(), bob, room.ID, "from b", "")
	if err != nil {
		t.Fatalf("post on the replica that lost an entry: %v", err)
	}
	page, err := b.Messages(context.Background(), room.ID, Window{Last: 3})
	if err != nil || len(page.Items) != 3 || page.Items[1].Text != "also lost" || page.Items[2].ID != m.ID {
		t.Fatalf("b's last messages = %+v, %v", page.Items, err)
	}
	expectChanges(t, w, a, []EventType{MessagePosted, MessagePosted, MessagePosted}, []string{"lost live", "also lost", "from b"})
}

// TestEvictionNeverDropsWatchedRoom: over its budget, a replica evicts the
// rooms nobody watches, least recently used first, and keeps the watched
// one current.
func TestEvictionNeverDropsWatchedRoom(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{RoomCache: 1})
	ctx := context.Background()
	watched := mustRoom(t, a, "watched")
	var others []Room
	for i := range 3 {
		others = append(others, mustRoom(t, a, fmt.Sprintf("other %d", i)))
		mustPost(t, a, others[i].ID, "x")
	}
	w, err := b.Watch(ctx, RoomTopic(watched.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, r := range others {
		if _, err := b.Messages(ctx, r.ID, Window{Last: 1}); err != nil {
			t.Fatal(err)
		}
	}
	st := b.Stats()
	if st.RoomsHeld != 1 || st.Evictions != 3 || b.rooms.get(watched.ID) == nil || st.LiveSubscriptions != 1 {
		t.Fatalf("after using 3 other rooms over budget: %+v; want only the watched room held", st)
	}
	mustPost(t, a, watched.ID, "still live")
	expectChanges(t, w, a, []EventType{MessagePosted}, []string{"still live"})
	w.Close()
	if _, err := b.Messages(ctx, others[0].ID, Window{Last: 1}); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.RoomsHeld != 0 || st.LiveSubscriptions != 0 {
		t.Fatalf("after the watcher closed: %+v; want nothing held over budget", st)
	}
}

// TestEvictedRoomReloadsWithTheSameAnswers: a room evicted and loaded again
// answers exactly as before, and as a replica that held it all along.
func TestEvictedRoomReloadsWithTheSameAnswers(t *testing.T) {
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: 5})
	a := startService(t, first, Options{History: 5})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: 5}), Options{History: 5, RoomCache: 1})
	ctx := context.Background()
	room := mustRoom(t, a, "general")
	// a holds the room throughout (a subscriber keeps it).
	w, err := a.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var msgs []Message
	for i := range 8 { // 3 more than the history keeps
		msgs = append(msgs, mustPost(t, a, room.ID, fmt.Sprintf("m%d", i)))
	}
	if _, err := a.EditMessage(ctx, alice, msgs[5].ID, 1, "edited"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.React(ctx, bob, msgs[6].ID, "👍"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteMessage(ctx, alice, msgs[7].ID, 1); err != nil {
		t.Fatal(err)
	}
	type answers struct {
		page    Page[Message]
		stats   RoomStats
		changes []Change
		expired bool
	}
	ask := func(svc *Service) answers {
		t.Helper()
		var ans answers
		var err error
		if ans.page, err = svc.Messages(ctx, room.ID, Window{Last: 50}); err != nil {
			t.Fatal(err)
		}
		if ans.stats, err = svc.RoomStats(ctx, room.ID); err != nil {
			t.Fatal(err)
		}
		rw, err := svc.WatchAfter(ctx, RoomTopic(room.ID), msgs[4].Seq)
		if err != nil {
			t.Fatal(err)
		}
		for range 6 { // posts of m5..m7, the edit, the reaction, the deletion
			c, err := next(rw)
			if err != nil {
				t.Fatal(err)
			}
			ans.changes = append(ans.changes, c)
		}
		rw.Close()
		_, err = svc.WatchAfter(ctx, RoomTopic(room.ID), msgs[1].Seq)
		ans.expired = err != nil
		return ans
	}
	before := ask(b)
	other := mustRoom(t, a, "other")
	if _, err := b.Messages(ctx, other.ID, Window{Last: 1}); err != nil {
		t.Fatal(err)
	}
	if b.rooms.get(room.ID) != nil {
		t.Fatal("the room was not evicted")
	}
	after := ask(b)
	held := ask(a)
	canon := func(ans answers) string {
		out := fmt.Sprintf("total %d, %d not deleted, last %s, old cursor expired %v\n", ans.page.TotalCount,
			ans.stats.MessageCount, utc(ans.stats.LastMessageAt), ans.expired)
		for _, m := range ans.page.Items {
			out += canonMessage(m) + "\n"
		}
		for _, c := range ans.changes {
			out += fmt.Sprintf("change %d %s at %s: %s\n", c.Seq, c.Type, utc(c.At), canonMessage(*c.Message))
		}
		return out
	}
	for name, got := range map[string]answers{"after reloading": after, "on the replica that held it": held} {
		if canon(got) != canon(before) {
			t.Errorf("%s:\n%s\nbefore:\n%s", name, canon(got), canon(before))
		}
	}
	if before.page.TotalCount != 5 || before.stats.MessageCount != 4 || !before.expired {
		t.Errorf("answers = %+v; want 5 retained, 4 not deleted, an expired old cursor", before)
	}
}

// TestWatchAfterResumesOnAnotherReplica: a cursor from one replica resumes
// on another with no gap and no duplicate at the seam.
func TestWatchAfterResumesOnAnotherReplica(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	room := mustRoom(t, a, "general")
	var msgs []Message
	for i := range 5 {
		msgs = append(msgs, mustPost(t, a, room.ID, fmt.Sprintf("m%d", i)))
	}
	w, err := b.WatchAfter(context.Background(), RoomTopic(room.ID), msgs[1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mustPost(t, a, room.ID, "m5")
	p := MessagePosted
	expectChanges(t, w, a, []EventType{p, p, p, p}, []string{"m2", "m3", "m4", "m5"})

	rooms, err := b.WatchAfter(context.Background(), RoomsTopic, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	if c, err := next(rooms); err != nil || c.Room.ID != room.ID {
		t.Fatalf("roomCreated replay = %+v, %v", c, err)
	}
}

// TestPageLastResumesOnAnotherReplica: a page's Last, read on one replica,
// resumes on another with exactly what the page does not show: for an
// empty room (Last 0) every post since, for a room whose last change is an
// edit of an older message only what came after the edit, and for the room
// directory the rooms created since.
func TestPageLastResumesOnAnotherReplica(t *testing.T) {
	ctx := context.Background()
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	room := mustRoom(t, a, "general")
	empty, err := a.Messages(ctx, room.ID, Window{Last: 50})
	if err != nil {
		t.Fatal(err)
	}
	listed, err := a.Rooms(ctx, "", Window{First: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(empty.Items) != 0 || empty.Last != 0 || len(listed.Items) != 1 || listed.Last != room.Seq {
		t.Fatalf("empty room's page: %d items, Last %d; room list: %d items, Last %d (room at %d)",
			len(empty.Items), empty.Last, len(listed.Items), listed.Last, room.Seq)
	}
	m0 := mustPost(t, a, room.ID, "m0")
	mustPost(t, a, room.ID, "m1")
	if _, err := a.EditMessage(ctx, alice, m0.ID, 1, "m0 edited"); err != nil {
		t.Fatal(err)
	}
	edited, err := a.Messages(ctx, room.ID, Window{Last: 50})
	if err != nil {
		t.Fatal(err)
	}
	later := mustRoom(t, a, "later")
	mustPost(t, a, room.ID, "m2")

	p, e := MessagePosted, MessageEdited
	fromEmpty, err := b.WatchAfter(ctx, RoomTopic(room.ID), empty.Last)
	if err != nil {
		t.Fatal(err)
	}
	defer fromEmpty.Close()
	fromEdited, err := b.WatchAfter(ctx, RoomTopic(room.ID), edited.Last)
	if err != nil {
		t.Fatal(err)
	}
	defer fromEdited.Close()
	expectChanges(t, fromEdited, a, []EventType{p}, []string{"m2"}) // then a fence
	expectChanges(t, fromEmpty, a, []EventType{p, p, e, p, p}, []string{"m0 edited", "m1", "m0 edited", "m2", "fence"})
	rooms, err := b.WatchAfter(ctx, RoomsTopic, listed.Last)
	if err != nil {
		t.Fatal(err)
	}
	defer rooms.Close()
	if c, err := next(rooms); err != nil || c.Room.ID != later.ID {
		t.Fatalf("roomCreated after the list's Last = %+v, %v; want room %q", c, err, later.Name)
	}
}

func utc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// canonMessage writes a message with its times in UTC, so that equal
// instants compare equal whichever way they were read.
func canonMessage(m Message) string {
	return fmt.Sprintf("%s by %v %q v%d created %s edited %s deleted %v reactions %v seq %d/%d",
		m.ID, m.Author, m.Text, m.Version, utc(m.CreatedAt), utc(m.EditedAt), m.Deleted, m.Reactions, m.Seq, m.UpdatedSeq)
}

// TestPrivateRoomMembershipAcrossReplicas: a private room's members are
// the same on a replica that loads it from the log; its watchers' gate
// refuses a removed member before the removal reaches them; names of
// private rooms are never taken.
func TestPrivateRoomMembershipAcrossReplicas(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx := context.Background()

	room, err := a.CreatePrivateRoom(ctx, alice, "Secret")
	if err != nil {
		t.Fatal(err)
	}
	if !room.Private {
		t.Fatalf("created %+v, want a private room", room)
	}
	if _, err := a.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	// Names: a private room's neither conflicts nor is taken.
	if _, err := b.CreatePrivateRoom(ctx, bob, "secret"); err != nil {
		t.Fatalf("a second private room of the same name: %v", err)
	}
	if _, err := b.CreateRoom(ctx, bob, "SECRET"); err != nil {
		t.Fatalf("a public room named like private ones: %v", err)
	}
	if _, err := a.CreateRoom(ctx, alice, "secret"); err == nil {
		t.Fatal("two public rooms of one name")
	}

	w, err := b.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	gate := w.Gate()
	if gate == nil {
		t.Fatal("a private room's watcher has no gate")
	}
	for _, tc := range []struct {
		user  string
		since uint64
		ok    bool
	}{{"alice", 0, true}, {"bob", 0, true}, {"carol", 0, false}, {"", 0, false}} {
		since, ok := gate.Access(tc.user)
		if ok != tc.ok || (tc.user == "alice" && since != 0) || (tc.user == "bob" && since == 0) {
			t.Errorf("Access(%q) = %d, %v on the replica that loaded the room", tc.user, since, ok)
		}
	}
	if _, err := b.RemoveMember(ctx, bob, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	c, err := next(w)
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != MemberRemoved || c.UserID != "bob" || c.Message != nil {
		t.Fatalf("change %+v, want bob's removal", c)
	}
	if _, ok := gate.Access("bob"); ok {
		t.Fatal("the gate admits bob once his removal was delivered")
	}

	pubWatcher, err := a.Watch(ctx, RoomTopic(mustRoom(t, a, "lobby").ID))
	if err != nil {
		t.Fatal(err)
	}
	defer pubWatcher.Close()
	if pubWatcher.Gate() != nil {
		t.Fatal("a public room's watcher has a gate")
	}

	lobby := mustRoom(t, a, "lobby2")
	// b removed bob: it lists rooms as its write left them (read-your-writes).
	if _, ok, err := b.LookupRoom(ctx, lobby.ID); !ok || err != nil { // b's directory has every room
		t.Fatalf("look up %s: %v, %v", lobby.ID, ok, err)
	}
	for _, tc := range []struct {
		viewer string
		want   int // rooms listed: alice's, bob's (left one, created one), the 3 public
	}{{"alice", 4}, {"bob", 4}, {"carol", 3}, {"", 3}} {
		page, err := b.Rooms(ctx, tc.viewer, Window{First: 10})
		if err != nil || page.TotalCount != tc.want || len(page.Items) != tc.want {
			t.Errorf("Rooms as %q: %d of %d, %v; want %d", tc.viewer, len(page.Items), page.TotalCount, err, tc.want)
		}
	}
	if _, _, err := a.VisibleRoom(ctx, "bob", room.ID); err == nil {
		t.Error("bob sees the room he left")
	} else {
		wantCode(t, err, CodeForbidden)
	}
	if _, err := a.PostMessage(ctx, bob, room.ID, "hi", ""); err == nil {
		t.Error("bob posts in the room he left")
	} else {
		wantCode(t, err, CodeForbidden)
	}
}

// TestWatchAfterForStartsAtJoining: a member's resume replays nothing of a
// private room from before they joined; the same resume for nobody in
// particular replays everything after the cursor.
func TestWatchAfterForStartsAtJoining(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx := context.Background()
	room, err := svc.CreatePrivateRoom(ctx, alice, "late")
	if err != nil {
		t.Fatal(err)
	}
	mustPost(t, svc, room.ID, "before carol")
	if _, err := svc.AddMember(ctx, alice, room.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	mustPost(t, svc, room.ID, "after carol")
	for _, tc := range []struct {
		viewer string
		first  string
	}{{"carol", "after carol"}, {"alice", "before carol"}} {
		w, err := svc.WatchAfterFor(ctx, RoomTopic(room.ID), 0, tc.viewer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := next(w)
		w.Close()
		if err != nil || c.Message == nil || c.Message.Text != tc.first {
			t.Errorf("%q's replay begins with %+v (%v), want %q", tc.viewer, c, err, tc.first)
		}
	}
}

// TestRoomsListsPrivateRoomsWithoutLoadingThem: a replica started after
// private rooms and membership changes were stored lists each viewer's
// rooms from its member index, loading no room; it then follows changes
// made on another replica, and lists its own at once.
func TestRoomsListsPrivateRoomsWithoutLoadingThem(t *testing.T) {
	first := openLog(t, pubsub.Options{Partitions: 3})
	a := startService(t, first, Options{})
	ctx := context.Background()
	carol := Actor{ID: "carol"}
	var private []Room
	for i := range 6 {
		r, err := a.CreatePrivateRoom(ctx, alice, fmt.Sprintf("p%d", i))
		if err != nil {
			t.Fatal(err)
		}
		private = append(private, r)
		mustRoom(t, a, fmt.Sprintf("public %d", i))
	}
	must := func(_ Room, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range private[:4] {
		must(a.AddMember(ctx, alice, r.ID, "bob"))
	}
	must(a.RemoveMember(ctx, bob, private[1].ID, "bob"))   // bob left
	must(a.AddMember(ctx, bob, private[2].ID, "carol"))    // added by a member who is not the creator
	must(a.RemoveMember(ctx, bob, private[3].ID, "alice")) // the creator removed
	// A forged event the rules refuse (carol is no member of p5): the room
	// skips it, and so must the index.
	forged := Event{Type: MemberAdded, Actor: carol, RoomID: private[5].ID, UserID: "carol"}
	if err := a.withRoom(ctx, forged.RoomID, func(rs *roomState) { forged.Prev = rs.last }); err != nil {
		t.Fatal(err)
	}
	data, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.AppendKeyed(ctx, forged.RoomID, forged.rest(), data, pubsub.AppendOptions{ExpectLast: forged.Prev}); err != nil {
		t.Fatal(err)
	}

	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	waitFor(t, "b's member index to catch up", func() bool { _, ok := b.members.roomsOf("x"); return ok })
	names := func(svc *Service, viewer string) string {
		t.Helper()
		page, err := svc.Rooms(ctx, viewer, Window{First: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range page.Items {
			if r.Private {
				out = append(out, r.Name)
			}
		}
		return strings.Join(out, ",")
	}
	for _, tc := range []struct{ viewer, want string }{
		{"alice", "p0,p1,p2,p4,p5"},
		{"bob", "p0,p2,p3"},
		{"carol", "p2"},
		{"", ""},
	} {
		if got := names(b, tc.viewer); got != tc.want {
			t.Errorf("%q sees private rooms %q, want %q", tc.viewer, got, tc.want)
		}
	}
	if st := b.Stats(); st.Loads != 0 || st.RoomsHeld != 0 {
		t.Fatalf("listing rooms loaded rooms: %+v", st)
	}

	must(a.AddMember(ctx, alice, private[4].ID, "carol"))
	waitFor(t, "b to list carol's new room", func() bool { return names(b, "carol") == "p2,p4" })
	must(b.RemoveMember(ctx, carol, private[2].ID, "carol"))
	if got := names(b, "carol"); got != "p4" {
		t.Fatalf("right after leaving p2 on b, carol sees %q on b, want p4", got)
	}
}

// TestMemberIndexCatchesUpPastOtherEntries: a replica's member index
// follows only member entries, so it must count as caught up once it has
// folded every member entry stored when it started, whatever else (posts,
// edits, or nothing but posts) the partitions hold after them.
func TestMemberIndexCatchesUpPastOtherEntries(t *testing.T) {
	for _, tc := range []struct {
		name string
		fill func(t *testing.T, svc *Service)
	}{
		{"posts after the member events", func(t *testing.T, svc *Service) {
			ctx := context.Background()
			r, err := svc.CreatePrivateRoom(ctx, alice, "private")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.AddMember(ctx, alice, r.ID, "bob"); err != nil {
				t.Fatal(err)
			}
			mustPost(t, svc, r.ID, "after bob joined")
		}},
		{"no member events at all", func(t *testing.T, svc *Service) {
			mustPost(t, svc, mustRoom(t, svc, "public").ID, "hello")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := openLog(t, pubsub.Options{Partitions: 1})
			tc.fill(t, startService(t, first, Options{}))
			b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
			waitFor(t, "b's member index to catch up", func() bool { _, ok := b.members.roomsOf("bob"); return ok })
		})
	}
}

// TestMessageChangesStayWithinHistory: a message's edits, reactions and
// deletion share one log subject (msg.<id>), which keeps at most History
// entries. A change beyond that would make the log discard the message's
// first change, so that a replica loading the room afterwards would judge
// the rest differently (an edit's or deletion's version no longer follows)
// and disagree with the replica that applied them live. The room refuses
// such changes (CONFLICT), keeping the last one for a deletion.
func TestMessageChangesStayWithinHistory(t *testing.T) {
	const history = 3
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	a := startService(t, first, Options{History: history})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		changes []func(m Message) (Message, error)
	}{
		{name: "edits", changes: []func(Message) (Message, error){
			func(m Message) (Message, error) { return a.EditMessage(ctx, alice, m.ID, m.Version, "e1") },
			func(m Message) (Message, error) { return a.EditMessage(ctx, alice, m.ID, m.Version, "e2") },
			func(m Message) (Message, error) { return a.EditMessage(ctx, alice, m.ID, m.Version, "e3") },
		}},
		{name: "reactions then an edit", changes: []func(Message) (Message, error){
			func(m Message) (Message, error) { return a.EditMessage(ctx, alice, m.ID, m.Version, "e1") },
			func(m Message) (Message, error) { return a.React(ctx, bob, m.ID, "👍") },
			func(m Message) (Message, error) { return a.React(ctx, alice, m.ID, "🎉") },
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			room := mustRoom(t, a, "changes "+tc.name)
			m := mustPost(t, a, room.ID, "hello")
			for i, change := range tc.changes {
				next, err := change(m)
				if i < history-1 {
					if err != nil {
						t.Fatalf("change %d: %v", i+1, err)
					}
					m = next
					continue
				}
				// The last entry of the subject is kept for a deletion.
				var chatErr *Error
				if !errors.As(err, &chatErr) || chatErr.Code != CodeConflict {
					t.Errorf("change %d: err = %v, want CONFLICT", i+1, err)
				}
				if err == nil {
					m = next
				}
			}
			deleted, err := a.DeleteMessage(ctx, alice, m.ID, m.Version)
			if err != nil {
				t.Fatalf("deleting a message with %d changes: %v", history-1, err)
			}
			// A replica that loads the room now reads what the log retained.
			b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: history}), Options{History: history})
			loaded, ok, err := b.Message(ctx, "", m.ID)
			if err != nil || !ok {
				t.Fatalf("message on a replica loading the room: %v, %v", ok, err)
			}
			if canonMessage(loaded) != canonMessage(deleted) {
				t.Errorf("loaded from the log:\n%s\nas applied live:\n%s", canonMessage(loaded), canonMessage(deleted))
			}
		})
	}
}

// TestMembershipChangesStayWithinHistory: a user's member events in a room
// share one log subject (member.<user hash>), which keeps at most History
// entries. Were the first discarded, a replica loading the room would not
// know the user had been a member then, and would refuse what they did as
// one: here bob adding carol, so carol would be a member on one replica and
// not on another. The room refuses an addition beyond the limit
// (CONFLICT), keeping the last entry for a removal, so that a member can
// always be removed.
func TestMembershipChangesStayWithinHistory(t *testing.T) {
	const history = 3
	first := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	a := startService(t, first, Options{History: history})
	ctx := context.Background()
	room, err := a.CreatePrivateRoom(ctx, alice, "churn")
	if err != nil {
		t.Fatal(err)
	}
	carol := Actor{ID: "carol"}
	for i, step := range []struct {
		by     Actor
		add    bool
		user   string
		refuse Code // "" = accepted
	}{
		{by: alice, add: true, user: "bob"},
		{by: bob, add: true, user: "carol"},
		{by: alice, user: "bob"},
		{by: alice, add: true, user: "bob", refuse: CodeConflict}, // bob's third: only a removal may follow
		{by: carol, user: "alice"},
		{by: carol, add: true, user: "alice"},
		{by: carol, user: "alice"}, // alice's third, a removal: still allowed
	} {
		change := a.RemoveMember
		if step.add {
			change = a.AddMember
		}
		_, err := change(ctx, step.by, room.ID, step.user)
		var chatErr *Error
		switch {
		case step.refuse == "" && err != nil:
			t.Fatalf("step %d: %v", i+1, err)
		case step.refuse != "" && (!errors.As(err, &chatErr) || chatErr.Code != step.refuse):
			t.Errorf("step %d: err = %v, want %s", i+1, err, step.refuse)
			if err == nil { // as before the limit: the next removal pushes bob's first event out of the log
				if _, err := a.RemoveMember(ctx, alice, room.ID, step.user); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	b := startService(t, openReplicaLog(t, first, pubsub.Options{MaxMsgsPerSubject: history}), Options{History: history})
	members := func(svc *Service) string {
		t.Helper()
		page, err := svc.Members(ctx, room.ID, Window{First: 50})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, m := range page.Items {
			out = append(out, fmt.Sprintf("%s since %d", m.User.ID, m.Since))
		}
		return strings.Join(out, ", ")
	}
	if live, loaded := members(a), members(b); live != loaded {
		t.Errorf("members loaded from the log: %s; as applied live: %s", loaded, live)
	}
	for _, svc := range []*Service{a, b} {
		if _, ok, err := svc.VisibleRoom(ctx, carol.ID, room.ID); err != nil || !ok {
			t.Errorf("carol, added by bob while a member, cannot see the room: %v, %v", ok, err)
		}
		page, err := svc.Rooms(ctx, carol.ID, Window{First: 50})
		if err != nil || page.TotalCount != 1 {
			t.Errorf("carol's rooms = %+v, %v; want the private room", page, err)
		}
	}
}

// TestIdempotencyKeysNATSWouldConflate: the key goes into a NATS header
// (Nats-Msg-Id), whose value NATS trims of white space and whose line breaks
// it turns into spaces, so keys differing only there would be taken for one:
// a post would silently return another. Such keys are refused instead.
func TestIdempotencyKeysNATSWouldConflate(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	room := mustRoom(t, svc, "keys")
	ctx := context.Background()
	first, err := svc.PostMessage(ctx, alice, room.ID, "first", "a b")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a\nb", "a\rb", "a\tb", "a b ", " a b", "a b\n", "a\x00b"} {
		m, err := svc.PostMessage(ctx, alice, room.ID, "another", key)
		if err == nil && m.ID == first.ID {
			t.Errorf("key %q: returned the post of key %q", key, "a b")
			continue
		}
		wantCode(t, err, CodeBadUserInput)
	}
	if m, err := svc.PostMessage(ctx, alice, room.ID, "first", "a b"); err != nil || m.ID != first.ID {
		t.Errorf("retry = %+v, %v; want the first post", m, err)
	}
}

// TestResumeOfPrivateRoomNeedsMembership: a subscriber resuming a private
// room they are not a member of (anonymous, never one, or removed) is
// refused with FORBIDDEN whatever their cursor, at once: not
// CURSOR_EXPIRED for an old one, nor UNAVAILABLE after a wait for one
// ahead of the room, both of which would tell a non-member how far the
// room has gone (and send a removed member's client refetching or retrying
// instead of stopping).
func TestResumeOfPrivateRoomNeedsMembership(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{MaxMsgsPerSubject: 3}), Options{History: 3, ApplyTimeout: 2 * time.Second})
	ctx := context.Background()
	room, err := svc.CreatePrivateRoom(ctx, alice, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	first := mustPost(t, svc, room.ID, "m0")
	for i := range 4 {
		mustPost(t, svc, room.ID, fmt.Sprint("m", i+1))
	}
	if _, err := svc.RemoveMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	last := mustPost(t, svc, room.ID, "m5")
	cursors := []struct {
		name  string
		after uint64
	}{
		{"expired", first.Seq},
		{"current", last.Seq},
		{"ahead of the room", last.Seq + 1000},
	}
	for _, viewer := range []string{"", "eve", "bob"} {
		for _, c := range cursors {
			t.Run(fmt.Sprintf("%q/%s", viewer, c.name), func(t *testing.T) {
				start := time.Now()
				w, err := svc.WatchAfterFor(ctx, RoomTopic(room.ID), c.after, viewer)
				if err == nil {
					w.Close()
				}
				wantCode(t, err, CodeForbidden)
				if took := time.Since(start); took > time.Second {
					t.Errorf("refused after %v: the wait tells how far the room has gone", took)
				}
			})
		}
	}
	// A member is not affected.
	w, err := svc.WatchAfterFor(ctx, RoomTopic(room.ID), last.Seq, alice.ID)
	if err != nil {
		t.Fatalf("alice resumes: %v", err)
	}
	w.Close()
}

// TestResumeFromACursorPastTheRoom: a resume from a cursor past a room's
// last event in the log (forged, or another room's) is refused with
// BAD_USER_INPUT once the replica has read the rest of the room, rather
// than waited for until UNAVAILABLE, which clients retry forever; the
// same for roomCreated and a cursor past the directory. A cursor this
// replica has not applied but the log holds is still waited for.
func TestResumeFromACursorPastTheRoom(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	const applyTimeout = 3 * time.Second
	a := startService(t, first, Options{ApplyTimeout: applyTimeout})
	var dropLive atomic.Bool
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{ApplyTimeout: applyTimeout},
		func(s *Service) { s.liveFilter = func(pubsub.Entry) bool { return !dropLive.Load() } })
	ctx := context.Background()
	room := mustRoom(t, a, "general")
	mustPost(t, a, room.ID, "m0")
	if _, err := b.Messages(ctx, room.ID, Window{Last: 1}); err != nil { // b holds the room
		t.Fatal(err)
	}
	dropLive.Store(true) // b misses what follows
	last := mustPost(t, a, room.ID, "m1")

	tests := []struct {
		name  string
		topic string
		after uint64
		want  Code // "" for a watcher
	}{
		{"a position b has not applied", RoomTopic(room.ID), last.Seq, ""},
		{"past the room", RoomTopic(room.ID), last.Seq + 1000, CodeBadUserInput},
		{"past the directory", RoomsTopic, room.Seq + 1000, CodeBadUserInput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			w, err := b.WatchAfterFor(ctx, tt.topic, tt.after, "bob")
			took := time.Since(start)
			if err == nil {
				w.Close()
			}
			if tt.want == "" {
				if err != nil {
					t.Fatalf("resume: %v", err)
				}
				return
			}
			wantCode(t, err, tt.want)
			if took >= applyTimeout {
				t.Errorf("refused after %v, the whole apply timeout", took)
			}
		})
	}
}

// TestProposalsRefuseInvisibleInput: a text, room name or emoji that
// shows nothing (only white space, zero-width or other invisible
// characters), a room name or emoji that begins or ends with an invisible
// character (so that it looks like another: "general" and
// "general\u200b"), and a text with control characters other than tab
// and line breaks are refused with BAD_USER_INPUT before anything is
// appended; what real text, names and emoji use is not.
func TestProposalsRefuseInvisibleInput(t *testing.T) {
	log := &countingLog{Log: openLog(t, pubsub.Options{})}
	svc := startService(t, log, Options{})
	ctx := context.Background()
	room := mustRoom(t, svc, "general")
	msg := mustPost(t, svc, room.ID, "mine")
	post := func(text string) error { _, err := svc.PostMessage(ctx, alice, room.ID, text, ""); return err }
	edit := func(text string) error { _, err := svc.EditMessage(ctx, alice, msg.ID, msg.Version, text); return err }
	create := func(name string) error { _, err := svc.CreateRoom(ctx, alice, name); return err }
	react := func(emoji string) error { _, err := svc.React(ctx, alice, msg.ID, emoji); return err }
	tests := []struct {
		name    string
		call    func(string) error
		arg     string
		refused bool
	}{
		{"zero-width space text", post, "\u200b", true},
		{"invisible text", post, " \u200b\u2060\ufeff\u00ad\u3164\ufe0f ", true},
		{"NUL in text", post, "a\x00b", true},
		{"escape sequence in text", post, "\x1b[31mred", true},
		{"C1 control in text", post, "a\u009bb", true},
		{"invisible edit", edit, "\u200b", true},
		{"control in edit", edit, "a\x07", true},
		{"invisible room name", create, "\u200b\u200b", true},
		{"name ending invisibly", create, "general\u200b", true},
		{"name beginning invisibly", create, "\ufeffgeneral", true},
		{"private name ending invisibly", func(n string) error { _, err := svc.CreatePrivateRoom(ctx, alice, n); return err }, "plans\u2060", true},
		{"invisible emoji", react, "\u200b", true},
		{"emoji beginning invisibly", react, "\u200b👍", true},
		{"emoji ending invisibly", react, "👍\u200b", true},
		{"variation selector alone", react, "\ufe0f", true},
		// Shown as "general", which is taken (see TestHiddenEdge).
		{"name ending with an emoji style", create, "general\ufe0f", true},
		{"name ending with a stray tag", create, "general\U000e0067", true},
		{"emoji ending with a stray tag", react, "👍\U000e0067", true},

		{"lines and tabs", post, "a\tb\nc\r\nd", false},
		{"joined emoji and Persian", post, "👨\u200d👩\u200d👧 می\u200cخواهم", false},
		{"edit with a line break", edit, "new\ntext", false},
		{"name with an emoji", create, "family 👨\u200d👩\u200d👧", false},
		{"name ending with a variation selector", create, "love ❤\ufe0f", false},
		{"emoji with a variation selector", react, "❤\ufe0f", false},
		{"flag of a subdivision", react, "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := log.appends.Load()
			err := tt.call(tt.arg)
			if !tt.refused {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			wantCode(t, err, CodeBadUserInput)
			if log.appends.Load() != before {
				t.Fatal("a command the rules refuse was appended to the log")
			}
		})
	}
}
