package chat

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// finishingLegacyLog lets another replica run its whole migration right
// before this replica's first call of one of its steps: the migration ends
// (the old stream, then the record deleted) between two of this replica's
// requests.
type finishingLegacyLog struct {
	*pubsub.Log
	before string // "MigrationRecord" or "LayoutEmpty"
	other  func() // the other replica's migration
	once   sync.Once
}

func (l *finishingLegacyLog) step(name string) {
	if name == l.before {
		l.once.Do(l.other)
	}
}

func (l *finishingLegacyLog) MigrationRecord(ctx context.Context) (pubsub.MigrationRecord, bool, error) {
	l.step("MigrationRecord")
	return l.Log.MigrationRecord(ctx)
}

func (l *finishingLegacyLog) LayoutEmpty(ctx context.Context) (bool, error) {
	l.step("LayoutEmpty")
	return l.Log.LayoutEmpty(ctx)
}

// TestMigrateWhileAnotherFinishes: a replica that saw the legacy stream,
// and then finds no record (the migrator deleted it as it finished, or had
// not written it yet) and a new layout holding entries, was migrated by
// another replica: it carries on (ByAnother), rather than taking the old
// stream it saw a moment ago for one an earlier Herald created next to the
// log in use (ErrLegacyConflict).
func TestMigrateWhileAnotherFinishes(t *testing.T) {
	legacy := []legacyEntry{
		legacyCreated("rgen", "general"),
		legacyOf(posted(alice, "rgen", "rgen_m1", "hello")),
	}
	for _, before := range []string{"MigrationRecord", "LayoutEmpty"} {
		t.Run("before "+before, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			first := openLog(t, pubsub.Options{})
			writeLegacyLog(t, first, legacy)
			a := openReplicaLog(t, first, pubsub.Options{})
			b := openReplicaLog(t, first, pubsub.Options{})
			l := &finishingLegacyLog{Log: a, before: before, other: func() {
				if r, err := migrate(ctx, b, quiet, fastMigrationTiming); err != nil || !r.Migrated {
					t.Errorf("the other replica's migration: %+v, %v", r, err)
				}
			}}
			report, err := migrate(ctx, l, quiet, fastMigrationTiming)
			if err != nil || !report.ByAnother || report.Migrated {
				t.Fatalf("Migrate = %+v, %v; want migrated by another replica", report, err)
			}
			if rooms, events, legacy := layoutCounts(t, first); rooms != 1 || events != 1 || legacy {
				t.Fatalf("after the migrations: %d rooms, %d events, legacy stream left: %v; want 1, 1, false", rooms, events, legacy)
			}
		})
	}
}
