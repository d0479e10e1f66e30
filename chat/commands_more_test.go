package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestIdempotentRetryAfterRestart shows that a retry after the log's
// server restarted (same data directory) still returns the first post.
func TestIdempotentRetryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	log1 := openLog(t, pubsub.Options{DataDir: dir})
	svc1 := NewService(log1, Options{Logger: quiet})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = svc1.Run(runCtx) }()
	waitFor(t, "ready", func() bool { ok, _ := svc1.Ready(); return ok })
	room := mustRoom(t, svc1, "restart")
	first, err := svc1.PostMessage(ctx, alice, room.ID, "once", "k")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	_ = log1.Close()

	log2 := openLog(t, pubsub.Options{DataDir: dir})
	svc2 := startService(t, log2, Options{})
	retry, err := svc2.PostMessage(ctx, alice, room.ID, "once", "k")
	if err != nil || retry.ID != first.ID {
		t.Fatalf("retry after restart = %+v, %v; want %s", retry, err, first.ID)
	}
	b := startService(t, openReplicaLog(t, log2, pubsub.Options{}), Options{})
	retry, err = b.PostMessage(ctx, alice, room.ID, "once", "k")
	if err != nil || retry.ID != first.ID {
		t.Fatalf("retry on another replica = %+v, %v; want %s", retry, err, first.ID)
	}
	if stats, _ := b.RoomStats(ctx, room.ID); stats.MessageCount != 1 {
		t.Fatalf("messageCount = %d", stats.MessageCount)
	}
}

// TestLoadingChangesOfDiscardedMessagesIsQuiet shows that a replica
// loading a room whose log holds the changes of messages that aged out of
// its history (their reactions stay on subjects of their own) does not
// warn about each: every load of a busy room logged one warning per such
// change, for events Herald itself stored.
func TestLoadingChangesOfDiscardedMessagesIsQuiet(t *testing.T) {
	const history = 3
	lg := openLog(t, pubsub.Options{MaxMsgsPerSubject: history})
	svc := startService(t, lg, Options{History: history})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	room := mustRoom(t, svc, "busy")
	for i := range 30 {
		m := mustPost(t, svc, room.ID, "hello")
		if _, err := svc.React(ctx, bob, m.ID, "👍"); err != nil {
			t.Fatalf("react %d: %v", i, err)
		}
	}
	warnings := &countingHandler{}
	b := startService(t, openReplicaLog(t, lg, pubsub.Options{MaxMsgsPerSubject: history}),
		Options{History: history, Logger: slog.New(warnings)})
	page, err := b.Messages(ctx, room.ID, Window{First: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != history {
		t.Fatalf("the room shows %d messages, want its history of %d", len(page.Items), history)
	}
	if n := warnings.warnings(); n > 0 {
		t.Errorf("loading the room logged %d warnings for events Herald itself stored", n)
	}
}

// countingHandler counts the log records at warning level or above.
type countingHandler struct {
	mu sync.Mutex
	n  int
}

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }
func (h *countingHandler) warnings() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// TestConcurrentReactionsFromTwoReplicas shows that toggles from two replicas
// at once are judged one after the other and agree.
func TestConcurrentReactionsFromTwoReplicas(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room := mustRoom(t, a, "react")
	m := mustPost(t, a, room.ID, "hi")
	const n = 15
	done := make(chan error, 2*n)
	for i := range n {
		go func() { _, err := a.React(ctx, Actor{ID: fmt.Sprintf("a%d", i)}, m.ID, "👍"); done <- err }()
		go func() { _, err := b.React(ctx, Actor{ID: fmt.Sprintf("b%d", i)}, m.ID, "👍"); done <- err }()
	}
	for range 2 * n {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	for _, svc := range []*Service{a, b} {
		waitFor(t, "all reactions", func() bool {
			got, _, _ := svc.Message(ctx, "", m.ID)
			return len(got.Reactions) == 1 && len(got.Reactions[0].UserIDs) == 2*n
		})
	}
}

// TestPrivateCreatorRemovedAndReadded shows the creator removed and
// added again; both replicas and the member index agree.
func TestPrivateCreatorRemovedAndReadded(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	room, err := a.CreatePrivateRoom(ctx, alice, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, alice, room.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.RemoveMember(ctx, bob, room.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddMember(ctx, alice, room.ID, "carol"); err == nil {
		t.Fatal("a removed creator added a member")
	} else {
		wantCode(t, err, CodeForbidden)
	}
	if _, err := b.RemoveMember(ctx, bob, room.ID, "bob"); err == nil {
		t.Fatal("removed the last member")
	}
	if _, err := b.AddMember(ctx, bob, room.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	// The member index follows the log on its own, so a replica's room
	// list may show the change a moment after the room does.
	for _, svc := range []*Service{a, b} {
		waitFor(t, "alice back", func() bool {
			ok, err := svc.CanSee(ctx, "alice", room.ID)
			return err == nil && ok
		})
		waitFor(t, "alice's rooms to list the room again", func() bool {
			page, err := svc.Rooms(ctx, "alice", Window{First: 10})
			return err == nil && page.TotalCount == 1
		})
	}
}

// TestIdempotencyKeyReusedForAnotherText shows that a post of another text
// with the key of an unedited post a moment ago is refused with CONFLICT,
// while a retry of the same text still returns the first post. The new
// text was answered with the first post and lost without a word.
func TestIdempotencyKeyReusedForAnotherText(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	room := mustRoom(t, svc, "reuse")
	first, err := svc.PostMessage(ctx, alice, room.ID, "first", "k")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := svc.PostMessage(ctx, alice, room.ID, "first", "k"); err != nil || again.ID != first.ID {
		t.Fatalf("a retry of the same post: %+v, %v; want the first post", again, err)
	}
	_, err = svc.PostMessage(ctx, alice, room.ID, "second", "k")
	var cerr *Error
	if !errors.As(err, &cerr) || cerr.Code != CodeConflict {
		t.Fatalf("another text with the key of the first post: %v, want CONFLICT", err)
	}
	page, err := svc.Messages(ctx, room.ID, Window{First: 10})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("the room holds %d messages (%v), want the first post alone", len(page.Items), err)
	}
}
