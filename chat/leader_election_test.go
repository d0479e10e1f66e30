package chat

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldhq/herald/pubsub"
)

// announceLeaderElected publishes, as JetStream does, the advisory that
// the partition stream holding roomID elected a leader.
func announceLeaderElected(t *testing.T, log *pubsub.Log, roomID string) {
	t.Helper()
	nc, err := nats.Connect(log.ClientURL())
	if err != nil {
		t.Fatalf("connect to announce: %v", err)
	}
	defer nc.Close()
	subject := "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.HERALD_P" + strconv.Itoa(log.PartitionOf(roomID))
	if err := nc.Publish(subject, []byte(`{"type":"io.nats.jetstream.advisory.v1.stream_leader_elected"}`)); err != nil {
		t.Fatalf("announce: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("announce: %v", err)
	}
}

// TestLeaderElectionRepairsAPostNeverRepublished: only a partition's
// leader republishes an entry, as it stores it, so a post stored while the
// leader changed may never reach another replica's live subscription, and
// in a quiet room no later event would reveal the gap. When the partition
// elects a leader, a replica asks the log about each room it holds there
// and re-reads those behind: its subscriber gets the post.
func TestLeaderElectionRepairsAPostNeverRepublished(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	var drop atomic.Uint64 // the sequence b's live subscription misses
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{}, func(s *Service) {
		s.liveFilter = func(e pubsub.Entry) bool { return e.Seq != drop.Load() }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	room := mustRoom(t, a, "quiet")
	m0 := mustPost(t, a, room.ID, "m0")
	w, err := b.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	waitFor(t, "b to hold the room at m0", func() bool { return roomLast(t, b, room.ID) >= m0.Seq })
	// The re-read b's load schedules a second later would find the post:
	// let it run first.
	time.Sleep(1500 * time.Millisecond)
	waitFor(t, "the re-read after b's load", func() bool { return b.resyncer.idle() })

	drop.Store(m0.Seq + 1) // nothing else is stored in the room's partition
	m1 := mustPost(t, a, room.ID, "m1")
	if m1.Seq != drop.Load() {
		t.Fatalf("m1 stored at seq %d, want %d", m1.Seq, drop.Load())
	}
	quiet, cancelQuiet := context.WithTimeout(ctx, 500*time.Millisecond)
	c, err := w.Next(quiet)
	cancelQuiet()
	if err == nil {
		t.Fatalf("b's watcher got %+v though b's live subscription missed m1 and the room stayed quiet", c)
	}
	resyncs := b.Stats().Resyncs

	announceLeaderElected(t, first, room.ID)
	c, err = w.Next(ctx)
	if err != nil || c.Message == nil || c.Message.Text != "m1" || c.Seq != m1.Seq {
		t.Fatalf("after the partition's leader election b's watcher got %+v, %v; want the post m1 (seq %d)", c, err, m1.Seq)
	}
	if got := b.Stats().Resyncs; got != resyncs+1 {
		t.Errorf("b re-synced %d rooms, want 1", got-resyncs)
	}

	// A room not behind the log is asked about, not re-read.
	announceLeaderElected(t, first, room.ID)
	waitFor(t, "the probe after the second election", func() bool { return b.resyncer.idle() })
	time.Sleep(200 * time.Millisecond)
	if got := b.Stats().Resyncs; got != resyncs+1 {
		t.Errorf("b re-synced %d rooms after an election that left it up to date, want none more", got-resyncs-1)
	}
}
