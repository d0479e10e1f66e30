package chat

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/pubsub"
)

// TestLoweredHistoryIsRefused: an operator lowers --room-history (README:
// "messages each room keeps") and restarts. Were Open to reconcile the
// partitions' max_msgs_per_subject to the new value, NATS would apply it to
// every subject at once: not only to rooms' posts, but to each message's
// msg.<id> subject and each user's member.<hash> subject, which the old
// limit let grow up to the old history (README: "every change is kept, so
// a replica loading the room judges it the same way"). Once their first
// entries were gone, a replica loading the room would judge the rest
// differently: a deleted message would come back with its first text, and
// a member removed from a private room would be a member again. So Open
// refuses, naming the limit in force, and the log stays as it was.
func TestLoweredHistoryIsRefused(t *testing.T) {
	const before, after = 4, 2
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	carol := Actor{ID: "carol", Name: "Carol"}

	log1 := openLog(t, pubsub.Options{DataDir: dir, MaxMsgsPerSubject: before})
	svc1 := NewService(log1, Options{Logger: quiet, History: int(log1.MaxMsgsPerSubject())})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = svc1.Run(runCtx) }()
	waitFor(t, "ready", func() bool { ok, _ := svc1.Ready(); return ok })

	// A message edited twice, then deleted: three entries on its msg subject.
	room := mustRoom(t, svc1, "general")
	m := mustPost(t, svc1, room.ID, "first text")
	for v, text := range []string{"second text", "third text"} {
		if _, err := svc1.EditMessage(ctx, alice, m.ID, v+1, text); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc1.DeleteMessage(ctx, alice, m.ID, 3); err != nil {
		t.Fatal(err)
	}

	// A private room: carol, a member, removes bob; later carol leaves and
	// comes back. Her member subject holds three entries, bob's two.
	secret, err := svc1.CreatePrivateRoom(ctx, alice, "secret")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		add   bool
		actor Actor
		user  string
	}{
		{true, alice, bob.ID},
		{true, alice, carol.ID},
		{false, carol, bob.ID},
		{false, alice, carol.ID},
		{true, alice, carol.ID},
	}
	for i, s := range steps {
		var err error
		if s.add {
			_, err = svc1.AddMember(ctx, s.actor, secret.ID, s.user)
		} else {
			_, err = svc1.RemoveMember(ctx, s.actor, secret.ID, s.user)
		}
		if err != nil {
			t.Fatalf("membership step %d: %v", i, err)
		}
	}
	held, _, _ := svc1.Message(ctx, alice.ID, m.ID)
	bobBefore, _ := svc1.CanSee(ctx, bob.ID, secret.ID)
	if !held.Deleted || bobBefore {
		t.Fatalf("before the restart: message %+v, bob sees the private room %v", held, bobBefore)
	}
	stop()
	<-done
	_ = log1.Close()

	// The restart with a lower --room-history (cmd/herald passes the log's
	// limit as History) is refused, naming the limit in force.
	openCtx, cancelOpen := context.WithTimeout(ctx, 20*time.Second)
	defer cancelOpen()
	lowered, err := pubsub.Open(openCtx, pubsub.Options{DataDir: dir, Partitions: 2, ListenAddr: "127.0.0.1:0", Logger: quiet, MaxMsgsPerSubject: after})
	if err == nil {
		_ = lowered.Close()
		t.Fatalf("Open lowered the history from %d to %d on a log that holds rooms: their message changes and member entries would be trimmed", before, after)
	}
	if !errors.Is(err, pubsub.ErrHistoryLowered) || !errors.Is(err, pubsub.ErrStreamConflict) ||
		!strings.Contains(err.Error(), "max_msgs_per_subject 4") {
		t.Fatalf("Open with a lower history = %v; want ErrHistoryLowered (an ErrStreamConflict) naming max_msgs_per_subject 4", err)
	}

	// The log is as it was: a restart with the history in force finds the
	// message deleted and bob removed.
	log2 := openLog(t, pubsub.Options{DataDir: dir, MaxMsgsPerSubject: before})
	svc2 := startService(t, log2, Options{History: int(log2.MaxMsgsPerSubject())})
	got, found, err := svc2.Message(ctx, alice.ID, m.ID)
	if err != nil || !found {
		t.Fatalf("message after the restart: %v %v", found, err)
	}
	if !got.Deleted || got.Text != "" {
		t.Errorf("after the refused lowering of the history from %d to %d, the deleted message is back: deleted=%v text=%q version=%d (was deleted at version 4)",
			before, after, got.Deleted, got.Text, got.Version)
	}
	if sees, err := svc2.CanSee(ctx, bob.ID, secret.ID); err != nil || sees {
		t.Errorf("after the refused lowering of the history from %d to %d, bob, removed from the private room, is a member again: sees=%v err=%v",
			before, after, sees, err)
	}
}

// TestPartitionLimitIsRefused: Open refuses a directory with max_age,
// max_msgs or max_bytes (checkDirectoryKeepsAll), and a partition with one
// alike: such a limit discards a private room's member.* entries, which
// Herald relies on never losing (ARCHITECTURE: "a user's latest membership
// change is never discarded"), and a replica loading the room would then
// know only its creator, from the directory: a member would lose access,
// and a creator who left would regain it, while a replica that held the
// room throughout answered the opposite. A replica started while the
// limit is set is refused, naming it; once it is removed, one loads the
// room as the replica that held it answers.
func TestPartitionLimitIsRefused(t *testing.T) {
	for _, tc := range []struct {
		limit string
		set   func(*jetstream.StreamConfig)
	}{
		{"max_msgs 1000", func(c *jetstream.StreamConfig) { c.MaxMsgs = 1000 }},
		{"max_bytes 1048576", func(c *jetstream.StreamConfig) { c.MaxBytes = 1 << 20 }},
		{"max_age 1h0m0s", func(c *jetstream.StreamConfig) { c.MaxAge = time.Hour }},
	} {
		t.Run(tc.limit, func(t *testing.T) { testPartitionLimitIsRefused(t, tc.limit, tc.set) })
	}
}

func testPartitionLimitIsRefused(t *testing.T, limit string, set func(*jetstream.StreamConfig)) {
	lg := openLog(t, pubsub.Options{Partitions: 1})
	held := startService(t, lg, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	secret, err := held.CreatePrivateRoom(ctx, alice, "secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := held.AddMember(ctx, alice, secret.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := held.RemoveMember(ctx, alice, secret.ID, alice.ID); err != nil { // the creator leaves
		t.Fatal(err)
	}

	// An operator caps the partition (nats stream edit HERALD_P0
	// --max-msgs ..., or --max-bytes, --max-age: any limit but the
	// per-subject one).
	js := logJetStream(t, lg)
	update := func(change func(*jetstream.StreamConfig)) {
		t.Helper()
		s, err := js.Stream(ctx, "HERALD_P0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		change(&cfg)
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	update(set)

	// A replica started now refuses the stream as it is.
	openCtx, cancelOpen := context.WithTimeout(ctx, 20*time.Second)
	defer cancelOpen()
	refused, err := pubsub.Open(openCtx, pubsub.Options{URLs: []string{lg.ClientURL()}, Partitions: 1, Logger: quiet})
	if err == nil {
		_ = refused.Close()
		t.Fatalf("Open accepted partition HERALD_P0 with %s: it would discard rooms' member entries", limit)
	}
	if !errors.Is(err, pubsub.ErrStreamConflict) || !strings.Contains(err.Error(), `stream "HERALD_P0"`) || !strings.Contains(err.Error(), limit) {
		t.Fatalf("Open with %s on the partition = %v; want ErrStreamConflict naming the stream and the limit", limit, err)
	}

	// The operator removes the limit, as the error says.
	update(func(c *jetstream.StreamConfig) { c.MaxMsgs, c.MaxBytes, c.MaxAge = -1, -1, 0 })
	fresh := startService(t, openReplicaLog(t, lg, pubsub.Options{}), Options{})
	for _, c := range []struct {
		replica string
		svc     *Service
	}{{"held the room throughout", held}, {"loads the room now", fresh}} {
		bobSees, err1 := c.svc.CanSee(ctx, bob.ID, secret.ID)
		aliceSees, err2 := c.svc.CanSee(ctx, alice.ID, secret.ID)
		if err1 != nil || err2 != nil || !bobSees || aliceSees {
			t.Errorf("replica that %s: bob (a member) sees the room %v (%v), alice (creator, removed herself) sees it %v (%v); want true, false",
				c.replica, bobSees, err1, aliceSees, err2)
		}
	}
}
