package chat

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/pubsub"
)

// legacyEntry is an event as Herald wrote it before rooms were partitioned.
type legacyEntry struct {
	subject string
	e       Event
}

func legacyCreated(room, name string) legacyEntry {
	return legacyEntry{"herald.room." + room + ".meta", Event{Format: legacyEventFormat, Type: RoomCreated, Actor: alice, RoomID: room, Name: name}}
}

func legacyOf(e Event) legacyEntry {
	e.Format = legacyEventFormat
	return legacyEntry{"herald.room." + e.RoomID + "." + e.rest(), e}
}

// writeLegacyLog creates the single-stream layout's stream on log's server
// and stores entries in it, as an old Herald did; it returns the time the
// stream stored each entry.
func writeLegacyLog(t *testing.T, log *pubsub.Log, entries []legacyEntry) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := nats.Connect(log.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, le := range entries {
		data, err := le.e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		ack, err := js.Publish(ctx, le.subject, data)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.GetMsg(ctx, ack.Sequence)
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, msg.Time)
	}
	return times
}

// failingLegacyLog stops copying after a number of room events, as a
// migration cut short would.
type failingLegacyLog struct {
	*pubsub.Log
	left atomic.Int64
}

func (l *failingLegacyLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	if l.left.Add(-1) < 0 {
		return pubsub.AppendResult{}, errors.New("the process was killed")
	}
	return l.Log.AppendKeyed(ctx, key, rest, data, o)
}

// TestMigrateLegacyDataDirectory: a data directory of the single-stream
// layout is migrated at start, even after a first attempt stopped half-way:
// every room and what the old replicas accepted, with the original times,
// versions and reactions; what they rejected stays out; the old stream is
// gone.
func TestMigrateLegacyDataDirectory(t *testing.T) {
	dir := t.TempDir()
	entries := []legacyEntry{
		legacyCreated("rgen", "general"),
		legacyOf(posted(alice, "rgen", "rgen_m1", "hello")),
		legacyCreated("rdup", "GENERAL"), // rejected: the name is taken
		legacyCreated("rran", "random"),
		legacyOf(posted(bob, "rran", "rran_m1", "elsewhere")),
		legacyOf(edited(alice, "rgen_m1", 1, "hello!")),
		legacyOf(edited(alice, "rgen_m1", 1, "stale")),  // rejected: stale version
		legacyOf(edited(bob, "rgen_m1", 2, "not mine")), // rejected: forbidden
		legacyOf(posted(bob, "rgen", "rgen_m2", "second")),
		legacyOf(reacted(bob, "rgen_m1", "👍")),
		legacyOf(posted(bob, "rdup", "rdup_m1", "no room")), // rejected: no such room
		legacyOf(deleted(bob, "rgen_m2", 1)),
	}
	first := openLog(t, pubsub.Options{DataDir: dir})
	times := writeLegacyLog(t, first, entries)
	if first.HasLegacy() {
		t.Fatal("HasLegacy before the legacy stream existed")
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	cut := &failingLegacyLog{Log: openLog(t, pubsub.Options{DataDir: dir})}
	cut.left.Store(2)
	if _, err := Migrate(ctx, cut, quiet); err == nil {
		t.Fatal("a migration whose copy failed reported success")
	}
	if !cut.HasLegacy() {
		t.Fatal("the legacy stream is gone after a failed migration")
	}
	if err := cut.Close(); err != nil {
		t.Fatal(err)
	}

	log := openLog(t, pubsub.Options{DataDir: dir})
	report, err := Migrate(ctx, log, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !report.Migrated || report.Rooms != 2 || report.Events != 6 || report.Skipped != 4 {
		t.Fatalf("report = %+v, want 2 rooms, 6 events, 4 skipped", report)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}

	log = openLog(t, pubsub.Options{DataDir: dir})
	if log.HasLegacy() {
		t.Fatal("the legacy stream survived the migration")
	}
	if report, err := Migrate(ctx, log, quiet); err != nil || report.Migrated {
		t.Fatalf("second start: %+v, %v; want nothing to migrate", report, err)
	}
	svc := startService(t, log, Options{})
	rooms, err := svc.Rooms(ctx, "", Window{First: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rooms.TotalCount != 2 || rooms.Items[0].Name != "general" || rooms.Items[1].Name != "random" {
		t.Fatalf("rooms = %+v", rooms)
	}
	if !rooms.Items[0].CreatedAt.Equal(times[0]) || rooms.Items[0].CreatedBy != alice {
		t.Errorf("general created %v by %v, want %v by alice", rooms.Items[0].CreatedAt, rooms.Items[0].CreatedBy, times[0])
	}
	page, err := svc.Messages(ctx, "rgen", Window{Last: 10})
	if err != nil || len(page.Items) != 2 {
		t.Fatalf("messages = %+v, %v", page, err)
	}
	m1, m2 := page.Items[0], page.Items[1]
	if m1.Text != "hello!" || m1.Version != 2 || !m1.CreatedAt.Equal(times[1]) || !m1.EditedAt.Equal(times[5]) ||
		fmt.Sprint(m1.Reactions) != "[{👍 [bob]}]" {
		t.Errorf("migrated m1 = %+v", m1)
	}
	if !m2.Deleted || m2.Version != 2 || m2.Author != bob {
		t.Errorf("migrated m2 = %+v", m2)
	}
	if stats, _ := svc.RoomStats(ctx, "rgen"); stats.MessageCount != 1 || !stats.LastMessageAt.Equal(times[8]) {
		t.Errorf("stats = %+v", stats)
	}
	// The migrated rooms take new events.
	if _, err := svc.EditMessage(ctx, alice, "rgen_m1", 2, "after the migration"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateRoom(ctx, bob, "General"); err == nil {
		t.Fatal("a migrated name was created again")
	}
}
