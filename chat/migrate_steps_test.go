package chat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// memLegacyLog is an in-memory LegacyLog: a legacy stream, the migration
// record's compare-and-set, and a layout that counts what is copied into
// it. Hooks let a test play another replica at a chosen step.
type memLegacyLog struct {
	mu sync.Mutex

	legacy  pubsub.LegacyStream
	entries []pubsub.Entry
	// lookUps counts LookUpLegacy calls; onLookUp may change legacy.
	lookUps  int
	onLookUp func(l *memLegacyLog, n int)
	// afterRead runs once ReadLegacy has handed out every entry.
	afterRead func(l *memLegacyLog)

	rec    *pubsub.MigrationRecord
	rev    uint64
	layout int // entries in the directory and partitions
	seq    uint64

	appendErr error
	dropped   bool
	resets    int
	copied    int
}

func (l *memLegacyLog) HasLegacy() bool { return true }

func (l *memLegacyLog) LookUpLegacy(ctx context.Context) (pubsub.LegacyStream, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lookUps++
	if l.onLookUp != nil {
		l.onLookUp(l, l.lookUps)
	}
	if l.dropped {
		return pubsub.LegacyStream{Name: l.legacy.Name}, nil
	}
	return l.legacy, nil
}

func (l *memLegacyLog) ReadLegacy(ctx context.Context, fn func(pubsub.Entry) error) error {
	for _, e := range l.entries {
		if err := fn(e); err != nil {
			return err
		}
	}
	if l.afterRead != nil {
		l.mu.Lock()
		l.afterRead(l)
		l.mu.Unlock()
	}
	return nil
}

func (l *memLegacyLog) AddToDirectory(ctx context.Context, key string, data []byte) (pubsub.AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.layout++
	l.copied++
	return pubsub.AppendResult{Seq: l.seq}, nil
}

func (l *memLegacyLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.appendErr != nil {
		return pubsub.AppendResult{}, l.appendErr
	}
	l.seq++
	l.layout++
	l.copied++
	return pubsub.AppendResult{Seq: l.seq}, nil
}

func (l *memLegacyLog) DropLegacy(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropped = true
	return nil
}

func (l *memLegacyLog) LayoutEmpty(ctx context.Context) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.layout == 0, nil
}

func (l *memLegacyLog) ResetLayout(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.layout = 0
	l.resets++
	return nil
}

func (l *memLegacyLog) MigrationRecord(ctx context.Context) (pubsub.MigrationRecord, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rec == nil {
		return pubsub.MigrationRecord{}, false, nil
	}
	return *l.rec, true, nil
}

func (l *memLegacyLog) RecordMigration(ctx context.Context, rec pubsub.MigrationRecord, prev uint64) (pubsub.MigrationRecord, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.recordLocked(rec, prev)
}

func (l *memLegacyLog) recordLocked(rec pubsub.MigrationRecord, prev uint64) (pubsub.MigrationRecord, error) {
	cur := uint64(0)
	if l.rec != nil {
		cur = l.rec.Revision
	}
	if cur != prev {
		return rec, pubsub.ErrMigrationClaimed
	}
	l.rev++
	rec.Revision = l.rev
	l.rec = &rec
	return rec, nil
}

func (l *memLegacyLog) DeleteMigrationRecord(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec = nil
	return nil
}

// newMemLegacyLog holds a legacy stream of one room with one post.
func newMemLegacyLog(t *testing.T) *memLegacyLog {
	t.Helper()
	var entries []pubsub.Entry
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, le := range []legacyEntry{
		legacyCreated("rold", "General"),
		legacyOf(Event{Type: MessagePosted, Actor: alice, RoomID: "rold", MessageID: "rold_m1", Text: "hello"}),
	} {
		data, err := le.e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, pubsub.Entry{Seq: uint64(i + 1), Subject: le.subject, Partition: -1, Data: data, Time: at})
	}
	return &memLegacyLog{
		legacy:  pubsub.LegacyStream{Exists: true, Name: "HERALD", Created: time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC), Entries: uint64(len(entries))},
		entries: entries,
	}
}

// TestMigrateRecordSteps: Migrate's decisions, over an in-memory log with
// another replica played at a chosen step: which migration record it takes
// over, when it waits, when it purges what an earlier attempt copied, when
// it leaves a legacy stream alone, and when it must not delete the old
// stream.
func TestMigrateRecordSteps(t *testing.T) {
	// staleAfter is far beyond each case's bound: a case that waits for a
	// record to go stale fails by its deadline.
	slowStale := migrationTiming{heartbeat: time.Hour, staleAfter: time.Hour, poll: 10 * time.Millisecond, waitLog: time.Hour}
	for _, tc := range []struct {
		name   string
		timing migrationTiming
		bound  time.Duration
		set    func(l *memLegacyLog)
		check  func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error)
	}{
		{
			name: "a record left over from another legacy stream is no migration of this one",
			set: func(l *memLegacyLog) {
				_, _ = l.recordLocked(pubsub.MigrationRecord{Legacy: l.legacy.Created.Add(-time.Hour), Owner: "gone-replica"}, 0)
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err != nil || !rep.Migrated || !l.dropped {
					t.Fatalf("a record naming another legacy stream must not be waited for: migrate = %+v, %v; old stream dropped %v", rep, err, l.dropped)
				}
			},
		},
		{
			name: "a record given up (owner empty) is taken over at once, and what it copied purged",
			set: func(l *memLegacyLog) {
				_, _ = l.recordLocked(pubsub.MigrationRecord{Legacy: l.legacy.Created, Owner: ""}, 0)
				l.layout = 3 // what the attempt given up copied
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err != nil || !rep.Migrated {
					t.Fatalf("a given-up migration must be taken over at once, not after staleAfter: migrate = %+v, %v", rep, err)
				}
				if l.resets != 1 || l.layout != l.copied {
					t.Fatalf("taking a migration over must purge what the earlier attempt copied: resets %d, layout %d entries, copied %d", l.resets, l.layout, l.copied)
				}
			},
		},
		{
			name: "a record whose migrator stopped rewriting it is taken over after staleAfter",
			// bound leaves a loaded machine ample time past staleAfter, but
			// not enough to wait many times staleAfter.
			timing: migrationTiming{heartbeat: time.Hour, staleAfter: 300 * time.Millisecond, poll: 10 * time.Millisecond, waitLog: time.Hour},
			bound:  2500 * time.Millisecond,
			set: func(l *memLegacyLog) {
				_, _ = l.recordLocked(pubsub.MigrationRecord{Legacy: l.legacy.Created, Owner: "dead-replica"}, 0)
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err != nil || !rep.Migrated || !l.dropped {
					t.Fatalf("a record unchanged for staleAfter must be taken over soon after staleAfter: migrate = %+v, %v", rep, err)
				}
			},
		},
		{
			name: "the old stream deleted and created again after the claim",
			set: func(l *memLegacyLog) {
				l.onLookUp = func(l *memLegacyLog, n int) {
					if n == 2 { // migrateClaimed's look-up
						l.legacy.Created = l.legacy.Created.Add(time.Minute)
					}
				}
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err == nil || !strings.Contains(err.Error(), "created again") || l.copied != 0 {
					t.Fatalf("a legacy stream re-created after the claim must not be copied: err %v, copied %d", err, l.copied)
				}
			},
		},
		{
			name: "the old stream migrated by another replica just before the claim took effect",
			set: func(l *memLegacyLog) {
				l.onLookUp = func(l *memLegacyLog, n int) {
					if n == 2 {
						l.dropped = true
					}
				}
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err != nil || !rep.ByAnother || rep.Migrated || l.copied != 0 || l.rec != nil {
					t.Fatalf("a stream gone by the claim is migrated by another: migrate = %+v, %v; copied %d, record %+v", rep, err, l.copied, l.rec)
				}
			},
		},
		{
			name: "taken over after the copy, before the heartbeat noticed: the old stream stays",
			set: func(l *memLegacyLog) {
				l.afterRead = func(l *memLegacyLog) {
					_, _ = l.recordLocked(pubsub.MigrationRecord{Legacy: l.legacy.Created, Owner: "other-replica"}, l.rec.Revision)
				}
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if !errors.Is(err, errMigrationTakenOver) || l.dropped {
					t.Fatalf("a migrator taken over must not delete the old stream the new owner copies from: err %v, dropped %v", err, l.dropped)
				}
				if l.rec == nil || l.rec.Owner != "other-replica" {
					t.Fatalf("the new owner's record must be left as it is: %+v", l.rec)
				}
			},
		},
		{
			name: "an empty legacy stream next to a log in use is left alone",
			set: func(l *memLegacyLog) {
				l.layout, l.legacy.Entries = 5, 0
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err != nil || rep.Migrated || l.dropped || l.copied != 0 || l.resets != 0 {
					t.Fatalf("an empty legacy stream next to the log in use must be left alone, and start go on: migrate = %+v, %v; dropped %v, copied %d, resets %d", rep, err, l.dropped, l.copied, l.resets)
				}
			},
		},
		{
			name: "a legacy stream holding entries next to a log in use",
			set: func(l *memLegacyLog) {
				l.layout = 5
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if !errors.Is(err, ErrLegacyConflict) || l.dropped || l.copied != 0 || l.resets != 0 {
					t.Fatalf("a legacy stream with entries next to the log in use must fail the start with ErrLegacyConflict and touch nothing: %v; dropped %v, copied %d, resets %d", err, l.dropped, l.copied, l.resets)
				}
			},
		},
		{
			name: "migrated by another replica between the look-up and the layout check",
			set: func(l *memLegacyLog) {
				l.layout = 5 // what the other replica copied
				l.onLookUp = func(l *memLegacyLog, n int) {
					if n == 2 {
						l.dropped = true
					}
				}
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err != nil || !rep.ByAnother {
					t.Fatalf("a legacy stream gone by the second look-up was migrated by another replica: migrate = %+v, %v", rep, err)
				}
			},
		},
		{
			name: "a failed copy marks the record given up",
			set: func(l *memLegacyLog) {
				l.appendErr = errors.New("the disk is full")
			},
			check: func(t *testing.T, l *memLegacyLog, rep MigrationReport, err error) {
				if err == nil || l.dropped {
					t.Fatalf("a failed copy must fail the migration and keep the old stream: err %v, dropped %v", err, l.dropped)
				}
				if l.rec == nil || l.rec.Owner != "" {
					t.Fatalf("a failed migration must leave its record given up (owner \"\") so the next start takes it over at once: %+v", l.rec)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newMemLegacyLog(t)
			l.mu.Lock()
			tc.set(l)
			l.mu.Unlock()
			timing, bound := tc.timing, tc.bound
			if timing == (migrationTiming{}) {
				timing = slowStale
			}
			if bound == 0 {
				bound = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			rep, err := migrate(ctx, l, quiet, timing)
			l.mu.Lock()
			defer l.mu.Unlock()
			tc.check(t, l, rep, err)
		})
	}
}
