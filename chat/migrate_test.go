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
	raw     string // if set, stored instead of e's encoding
}

func legacyCreated(room, name string) legacyEntry {
	return legacyEntry{subject: "herald.room." + room + ".meta", e: Event{Format: legacyEventFormat, Type: RoomCreated, Actor: alice, RoomID: room, Name: name}}
}

func legacyOf(e Event) legacyEntry {
	e.Format = legacyEventFormat
	return legacyEntry{subject: "herald.room." + e.RoomID + "." + e.rest(), e: e}
}

// logJetStream is a JetStream client of log's server, of its own
// connection, closed when the test ends: what an operator's nats CLI, or
// an earlier Herald, would do to the log.
func logJetStream(t *testing.T, log *pubsub.Log) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(log.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// writeLegacyLog creates the single-stream layout's stream on log's server
// and stores entries in it, as an old Herald did; it returns the time the
// stream stored each entry.
func writeLegacyLog(t *testing.T, log *pubsub.Log, entries []legacyEntry) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := logJetStream(t, log)
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Time
	for _, le := range entries {
		data, err := []byte(le.raw), error(nil)
		if le.raw == "" {
			data, err = le.e.Encode()
		}
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

// TestDecodeLegacyEventRefusesLaterFields: the replicas of the legacy
// layout refused the fields that came after it as unknown, whatever their
// value, so a migration must skip such entries as they did; the same
// fields are part of format 2.
func TestDecodeLegacyEventRefusesLaterFields(t *testing.T) {
	const (
		created = `"type":"room.created","actor":{"id":"alice"},"roomId":"rgen","name":"general"`
		post    = `"type":"message.posted","actor":{"id":"alice"},"roomId":"rgen","messageId":"rgen_m1","text":"hi"`
	)
	for _, tc := range []struct {
		name, subject, fields string
		legacyOK              bool
	}{
		{"a room", "herald.room.rgen.meta", created, true},
		{"a post", "herald.room.rgen.posts", post, true},
		{"a private room", "herald.room.rgen.meta", created + `,"private":true`, false},
		{"a room not private", "herald.room.rgen.meta", created + `,"private":false`, false},
		{"a post with prev", "herald.room.rgen.posts", post + `,"prev":7`, false},
		{"a post with prev 0", "herald.room.rgen.posts", post + `,"prev":0`, false},
		{"a post with at", "herald.room.rgen.posts", post + `,"at":5`, false},
		{"a post with an escaped at", "herald.room.rgen.posts", post + `,"\u0061t":5`, false},
		{"a post with no user", "herald.room.rgen.posts", post + `,"userId":null`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeLegacyEvent(tc.subject, []byte(`{"v":1,`+tc.fields+`}`))
			if (err == nil) != tc.legacyOK {
				t.Errorf("format 1: err = %v, want accepted: %v", err, tc.legacyOK)
			}
			if _, err := decodeEvent([]byte(`{"v":2,`+tc.fields+`}`), eventFormat); err != nil {
				t.Errorf("format 2: %v", err)
			}
		})
	}
}

// TestMigrateSkipsWhatOldReplicasRefused: entries the legacy layout's
// replicas refused for fields they did not know are not copied. A room
// marked private would otherwise be stored under its name's directory key,
// which every directory refuses for a private room: the name would be
// taken by no room, and the real room of that name skipped with its
// messages.
func TestMigrateSkipsWhatOldReplicasRefused(t *testing.T) {
	const post = `{"v":1,"type":"message.posted","actor":{"id":"alice"},"roomId":"rgen","messageId":"%s","text":"%s"%s}`
	entries := []legacyEntry{
		{subject: "herald.room.rpriv.meta", raw: `{"v":1,"type":"room.created","actor":{"id":"mallory"},"roomId":"rpriv","name":"general","private":true}`},
		legacyCreated("rgen", "general"),
		legacyOf(posted(alice, "rgen", "rgen_m1", "hello")),
		{subject: "herald.room.rgen.posts", raw: fmt.Sprintf(post, "rgen_m2", "with prev", `,"prev":0`)},
		{subject: "herald.room.rgen.posts", raw: fmt.Sprintf(post, "rgen_m3", "with at", `,"at":1`)},
	}
	dir := t.TempDir()
	first := openLog(t, pubsub.Options{DataDir: dir})
	writeLegacyLog(t, first, entries)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	log := openLog(t, pubsub.Options{DataDir: dir})
	ctx := context.Background()
	report, err := Migrate(ctx, log, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if report.Rooms != 1 || report.Events != 1 || report.Skipped != 3 {
		t.Errorf("report = %+v, want 1 room, 1 event, 3 skipped", report)
	}
	svc := startService(t, log, Options{})
	rooms, err := svc.Rooms(ctx, "alice", Window{First: 10})
	if err != nil || len(rooms.Items) != 1 || rooms.Items[0].ID != "rgen" {
		t.Fatalf("rooms = %+v, %v; want general (rgen)", rooms.Items, err)
	}
	page, err := svc.Messages(ctx, "rgen", Window{Last: 10})
	if err != nil || len(page.Items) != 1 || page.Items[0].Text != "hello" {
		t.Fatalf("messages = %+v, %v; want hello alone", page.Items, err)
	}
}
