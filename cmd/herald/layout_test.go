package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/pubsub"
)

// TestPartitionCountMismatchIsRefused: a replica started with another
// --partitions than the log was created with refuses to start, and says
// what the log has.
func TestPartitionCountMismatchIsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Partitions = 3
	stopTestApp(t, startTestApp(t, cfg))

	cfg.Partitions = 4
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := startApp(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		stopTestApp(t, a)
		t.Fatal("started with 4 partitions on a log created with 3")
	}
	for _, want := range []string{"--partitions 4", "created with 3 partitions", "start with 3 partitions"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// TestLegacyDataDirectoryIsMigrated: a data directory written by Herald
// before partitions (one HERALD stream on herald.>) is migrated at start
// and serves its rooms and messages.
func TestLegacyDataDirectoryIsMigrated(t *testing.T) {
	dir := t.TempDir()
	writeLegacyDataDir(t, dir, []struct{ subject, data string }{
		{"herald.room.rold.meta", `{"v":1,"type":"room.created","actor":{"id":"alice"},"roomId":"rold","name":"from before"}`},
		{"herald.room.rold.posts", `{"v":1,"type":"message.posted","actor":{"id":"alice"},"roomId":"rold","messageId":"rold_m1","text":"kept"}`},
		{"herald.room.rold.msg.rold_m1", `{"v":1,"type":"message.edited","actor":{"id":"alice"},"roomId":"rold","messageId":"rold_m1","version":1,"text":"kept, edited"}`},
	})
	a := startTestApp(t, testConfig(t, dir))
	resp := gql(t, a.Addr(), "", `{ rooms { nodes { id name messageCount messages { nodes { text version } } } } }`, nil, nil)
	want := `{"rooms":{"nodes":[{"id":"rold","name":"from before","messageCount":1,"messages":{"nodes":[{"text":"kept, edited","version":2}]}}]}}`
	if len(resp.Errors) > 0 || string(resp.Data) != want {
		t.Fatalf("after the migration: %s %+v, want %s", resp.Data, resp.Errors, want)
	}
}

// writeLegacyDataDir leaves dir as an embedded Herald of the single-stream
// layout left it: a HERALD stream capturing herald.> holding entries.
func writeLegacyDataDir(t *testing.T, dir string, entries []struct{ subject, data string }) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	log, err := pubsub.Open(ctx, pubsub.Options{DataDir: dir, ListenAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	nc, err := nats.Connect(log.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := js.Publish(ctx, e.subject, []byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLongMigrationIsNotCutShortByTheStartTimeout: the start timeout
// bounds connecting and setting up, not the migration of a legacy log,
// which takes as long as the log is big; a migration cut short is redone
// from the start next time, so a log too big to migrate within the start
// timeout would never be migrated. Here the migration starts only once
// the start timeout has passed (beforeMigrate waits it out), which is what
// a migration longer than the timeout meets, whatever the machine's speed;
// the set-up before it has the whole timeout, as in production.
func TestLongMigrationIsNotCutShortByTheStartTimeout(t *testing.T) {
	dir := t.TempDir()
	entries := []struct{ subject, data string }{
		{"herald.room.rbig.meta", `{"v":1,"type":"room.created","actor":{"id":"alice"},"roomId":"rbig","name":"big"}`},
	}
	const n = 500
	for i := range n {
		entries = append(entries, struct{ subject, data string }{"herald.room.rbig.posts",
			fmt.Sprintf(`{"v":1,"type":"message.posted","actor":{"id":"alice"},"roomId":"rbig","messageId":"rbig_m%d","text":"m%d"}`, i, i)})
	}
	writeLegacyDataDir(t, dir, entries)

	cfg := testConfig(t, dir)
	cfg.startTimeout = 2 * time.Second
	began := time.Now()
	cfg.beforeMigrate = func() { time.Sleep(time.Until(began.Add(cfg.startTimeout + 500*time.Millisecond))) }
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, sig, err := start(cfg, logger, make(chan os.Signal))
	if err != nil || sig != nil {
		t.Fatalf("start after %s: %v (signal %v)", time.Since(began), err, sig)
	}
	t.Logf("started, migration included, in %s with a start timeout of %s", time.Since(began), cfg.startTimeout)
	t.Cleanup(func() { stopTestApp(t, a) })
	waitReady(t, a)
	var out struct{ Room struct{ MessageCount int } }
	gql(t, a.Addr(), "", `{ room(id: "rbig") { messageCount } }`, nil, &out)
	if out.Room.MessageCount != n {
		t.Fatalf("the migrated room has %d messages, want %d", out.Room.MessageCount, n)
	}
}
