package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestRaisedHistoryRefusedWhileAReplicaMigrates: replica A, upgrading a
// data directory from before partitions with --room-history 3, has opened
// the log and is migrating it (beforeMigrate stands for a long migration).
// README: "Other replicas starting meanwhile wait for it", and "a replica
// started with a different value while another is running is refused".
// B, started meanwhile with --room-history 6, must be refused; otherwise
// A goes on to serve judging by 3 a log that keeps 6.
func TestRaisedHistoryRefusedWhileAReplicaMigrates(t *testing.T) {
	dir := t.TempDir()
	writeLegacyDataDir(t, dir, []struct{ subject, data string }{
		{"herald.room.rold.meta", `{"v":1,"type":"room.created","actor":{"id":"alice"},"roomId":"rold","name":"from before"}`},
		{"herald.room.rold.posts", `{"v":1,"type":"message.posted","actor":{"id":"alice"},"roomId":"rold","messageId":"rold_m1","text":"hi"}`},
	})
	cfgA := testConfig(t, dir)
	cfgA.NATSListen = freeAddr(t)
	cfgA.RoomHistory = 3
	migrating := make(chan struct{})
	release := make(chan struct{})
	cfgA.beforeMigrate = func() {
		close(migrating)
		select {
		case <-release:
		case <-time.After(30 * time.Second):
		}
	}
	type started struct {
		a   *app
		err error
	}
	resA := make(chan started, 1)
	ctxA, cancelA := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelA()
	go func() {
		a, err := startApp(ctxA, cfgA, quietLogger(t))
		resA <- started{a, err}
	}()
	released := false
	defer func() {
		if !released {
			close(release)
		}
		if r := <-resA; r.err == nil {
			stopTestApp(t, r.a)
		}
	}()
	select {
	case <-migrating:
	case r := <-resA:
		resA <- r
		t.Fatalf("A ended before migrating: %v", r.err)
	case <-time.After(20 * time.Second):
		t.Fatal("A did not reach its migration within 20s")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	urls := []string{"nats://" + cfgA.NATSListen}
	cfgB := testConfig(t, t.TempDir())
	cfgB.NATSURLs = urls
	cfgB.RoomHistory = 6
	b, err := startApp(ctx, cfgB, quietLogger(t))
	if err == nil {
		defer stopTestApp(t, b)
		close(release)
		released = true
		r := <-resA
		resA <- r
		if r.err != nil {
			t.Fatalf("B with --room-history 6 started while A (3) was migrating; A then failed: %v", r.err)
		}
		t.Fatalf("B with --room-history 6 started while A (--room-history 3) was migrating the log; "+
			"A then serves judging by %d, B by %d, and the log keeps max_msgs_per_subject %d",
			r.a.log.MaxMsgsPerSubject(), b.log.MaxMsgsPerSubject(), streamConfig(t, ctx, urls, "HERALD_P0").MaxMsgsPerSubject)
	}
	t.Logf("B refused: %v", err)
	if !errors.Is(err, pubsub.ErrHistoryRaised) {
		t.Errorf("B refused with %v; want ErrHistoryRaised", err)
	}
}
