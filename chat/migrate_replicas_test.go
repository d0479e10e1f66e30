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

// fastMigrationTiming makes the replicas of a migration notice one another
// within a test's patience.
var fastMigrationTiming = migrationTiming{heartbeat: 20 * time.Millisecond, staleAfter: 400 * time.Millisecond, poll: 20 * time.Millisecond, waitLog: time.Hour}

// layoutCounts is how many entries the directory and the partitions of
// first's log hold, asked of the server directly; and whether a legacy
// stream exists.
func layoutCounts(t *testing.T, first *pubsub.Log) (rooms, events int, legacy bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	js := logJetStream(t, first)
	count := func(name string) (int, bool) {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return int(s.CachedInfo().State.Msgs), true
	}
	rooms, _ = count("HERALD_ROOMS")
	for k := range first.Partitions() {
		n, _ := count("HERALD_P" + string(rune('0'+k)))
		events += n
	}
	_, legacy = count("HERALD")
	return rooms, events, legacy
}

// TestMigrateLeavesALogInUseNextToALegacyStream: a partitioned log in use
// next to a stream named exactly HERALD that no migration wrote it from,
// as an earlier Herald creates when it starts and finds none (a rollback
// after the upgrade, an old replica restarting during it). The next start
// of a current replica must not take the log for a migration cut short
// and purge it: an empty old stream is left alone, one holding entries
// makes the start fail, saying what to do. The log keeps its rooms and
// messages, and a replica on it becomes ready (a purged directory keeps
// its last sequence, which no entry then carries).
func TestMigrateLeavesALogInUseNextToALegacyStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		legacy  []legacyEntry
		record  bool     // a record left by an earlier migration, of a stream since deleted
		wantErr []string // "": Migrate succeeds
	}{
		{name: "an empty legacy stream"},
		{name: "an empty legacy stream and an old record", record: true},
		{name: "a legacy stream with entries", legacy: []legacyEntry{legacyCreated("rold", "old")},
			wantErr: []string{`stream "HERALD" holds 1 entries`, "nats stream rm HERALD"}},
		{name: "a legacy stream with entries and an old record", record: true, legacy: []legacyEntry{legacyCreated("rold", "old")},
			wantErr: []string{`stream "HERALD" holds 1 entries`, "nats stream rm HERALD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			first := openLog(t, pubsub.Options{})
			svc := startService(t, first, Options{})
			room := mustRoom(t, svc, "general")
			mustPost(t, svc, room.ID, "hello")
			if tc.record {
				if _, err := first.RecordMigration(ctx, pubsub.MigrationRecord{Legacy: time.Now().Add(-time.Hour), Owner: "gone"}, 0); err != nil {
					t.Fatal(err)
				}
			}
			writeLegacyLog(t, first, tc.legacy)

			next := openReplicaLog(t, first, pubsub.Options{})
			report, err := migrate(ctx, next, quiet, fastMigrationTiming)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Migrate: %v", err)
			case tc.wantErr != nil && !errors.Is(err, ErrLegacyConflict):
				t.Fatalf("Migrate = %+v, %v; want ErrLegacyConflict", report, err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Migrate's error %q does not say %q", err, want)
				}
			}
			if report.Migrated || report.Rooms != 0 || report.Events != 0 {
				t.Errorf("report = %+v, want nothing migrated", report)
			}
			if rooms, events, legacy := layoutCounts(t, first); rooms != 1 || events != 1 || !legacy {
				t.Fatalf("after Migrate: %d rooms, %d partition entries, legacy stream kept: %v; want 1, 1 (the message), true", rooms, events, legacy)
			}
			if tc.wantErr != nil {
				return
			}
			again := startService(t, next, Options{})
			page, err := again.Messages(ctx, room.ID, Window{Last: 10})
			if err != nil || len(page.Items) != 1 || page.Items[0].Text != "hello" {
				t.Fatalf("messages after Migrate = %+v, %v", page, err)
			}
		})
	}
}

// slowLegacyLog holds every copied event until release is closed, and
// says on copying when the first one arrived.
type slowLegacyLog struct {
	*pubsub.Log
	copying chan struct{}
	release chan struct{}
}

func (l *slowLegacyLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	select {
	case <-l.copying:
	default:
		close(l.copying)
	}
	select {
	case <-l.release:
	case <-ctx.Done():
		return pubsub.AppendResult{}, context.Cause(ctx)
	}
	return l.Log.AppendKeyed(ctx, key, rest, data, o)
}

// TestMigrateByReplicasStartingTogether: replicas that open while the
// legacy stream exists all run Migrate; exactly one copies, and none
// purges a copy that is finished or under way. One that finds the
// migration done, or finishing while it waits, carries on; one that finds
// the migrator dead takes over and redoes it; a migrator taken over (for
// dead) stops without deleting the old stream.
func TestMigrateByReplicasStartingTogether(t *testing.T) {
	legacy := []legacyEntry{
		legacyCreated("rgen", "general"),
		legacyOf(posted(alice, "rgen", "rgen_m1", "hello")),
		legacyOf(posted(bob, "rgen", "rgen_m2", "again")),
	}
	setUp := func(t *testing.T) (first, a, b *pubsub.Log) {
		first = openLog(t, pubsub.Options{})
		writeLegacyLog(t, first, legacy)
		a = openReplicaLog(t, first, pubsub.Options{})
		b = openReplicaLog(t, first, pubsub.Options{})
		if !a.HasLegacy() || !b.HasLegacy() {
			t.Fatal("the replicas did not see the legacy stream")
		}
		return first, a, b
	}
	// migrated checks that the log holds the migration, once.
	migrated := func(t *testing.T, first *pubsub.Log) {
		t.Helper()
		if rooms, events, legacy := layoutCounts(t, first); rooms != 1 || events != 2 || legacy {
			t.Fatalf("after the migration: %d rooms, %d events, legacy stream left: %v; want 1, 2, false", rooms, events, legacy)
		}
		if _, found, err := first.MigrationRecord(context.Background()); err != nil || found {
			t.Fatalf("the migration record after the migration: found %v, %v", found, err)
		}
	}

	t.Run("after the other finished", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		first, a, b := setUp(t)
		if report, err := migrate(ctx, b, quiet, fastMigrationTiming); err != nil || report.Rooms != 1 || report.Events != 2 {
			t.Fatalf("first migration: %+v, %v", report, err)
		}
		report, err := migrate(ctx, a, quiet, fastMigrationTiming)
		if err != nil || !report.ByAnother || report.Migrated {
			t.Fatalf("second replica's Migrate = %+v, %v; want migrated by another replica", report, err)
		}
		migrated(t, first)
		if a.HasLegacy() {
			t.Error("HasLegacy after another replica migrated")
		}
	})

	t.Run("while the other copies", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		first, a, b := setUp(t)
		slow := &slowLegacyLog{Log: b, copying: make(chan struct{}), release: make(chan struct{})}
		type result struct {
			report MigrationReport
			err    error
		}
		bDone := make(chan result, 1)
		go func() {
			r, err := migrate(ctx, slow, quiet, fastMigrationTiming)
			bDone <- result{r, err}
		}()
		<-slow.copying
		aDone := make(chan result, 1)
		go func() {
			r, err := migrate(ctx, a, quiet, fastMigrationTiming)
			aDone <- result{r, err}
		}()
		// Longer than staleAfter: the copy is alive, and a waits.
		select {
		case r := <-aDone:
			t.Fatalf("the second replica did not wait for the migration under way: %+v, %v", r.report, r.err)
		case <-time.After(3 * fastMigrationTiming.staleAfter):
		}
		close(slow.release)
		if r := <-bDone; r.err != nil || r.report.Rooms != 1 || r.report.Events != 2 {
			t.Fatalf("the migrator: %+v, %v", r.report, r.err)
		}
		if r := <-aDone; r.err != nil || !r.report.ByAnother {
			t.Fatalf("the replica that waited: %+v, %v; want migrated by another replica", r.report, r.err)
		}
		migrated(t, first)
	})

	t.Run("after the other died", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		first, a, b := setUp(t)
		// b recorded the migration as its own, copied the room, and died.
		found, err := b.LookUpLegacy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.RecordMigration(ctx, pubsub.MigrationRecord{Legacy: found.Created, Owner: "dead"}, 0); err != nil {
			t.Fatal(err)
		}
		data, err := Event{Format: eventFormat, Type: RoomCreated, Actor: alice, RoomID: "rgen", Name: "general"}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddToDirectory(ctx, directoryKey("general"), data); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		report, err := migrate(ctx, a, quiet, fastMigrationTiming)
		if err != nil || !report.Migrated || report.Rooms != 1 || report.Events != 2 {
			t.Fatalf("taking over: %+v, %v", report, err)
		}
		if waited := time.Since(began); waited < fastMigrationTiming.staleAfter {
			t.Errorf("took over after %s, before the record was stale (%s)", waited, fastMigrationTiming.staleAfter)
		}
		migrated(t, first)
	})

	t.Run("the migrator taken over stops", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		first, _, b := setUp(t)
		slow := &slowLegacyLog{Log: b, copying: make(chan struct{}), release: make(chan struct{})}
		defer close(slow.release)
		bDone := make(chan error, 1)
		go func() {
			_, err := migrate(ctx, slow, quiet, fastMigrationTiming)
			bDone <- err
		}()
		<-slow.copying
		// The migrator rewrites its record every heartbeat (20 ms), which
		// two requests may well take under load: read and rewrite again
		// until a rewrite wins, as a replica taking it over would.
		takeOver, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		for {
			rec, found, err := first.MigrationRecord(takeOver)
			if err != nil || !found {
				t.Fatalf("the migrator's record: %v, %v", found, err)
			}
			rec.Owner = "another"
			_, err = first.RecordMigration(takeOver, rec, rec.Revision)
			if err == nil {
				break
			}
			if !errors.Is(err, pubsub.ErrMigrationClaimed) || takeOver.Err() != nil {
				t.Fatalf("taking the record over: %v", err)
			}
		}
		if err := <-bDone; !errors.Is(err, errMigrationTakenOver) {
			t.Fatalf("the migrator taken over: %v, want errMigrationTakenOver", err)
		}
		if _, _, legacy := layoutCounts(t, first); !legacy {
			t.Fatal("a migrator taken over deleted the old stream")
		}
		if rec, _, err := first.MigrationRecord(ctx); err != nil || rec.Owner != "another" {
			t.Fatalf("the record after the migrator stopped: %+v, %v; want the new owner's", rec, err)
		}
	})
}
