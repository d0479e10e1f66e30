package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HasLegacy reports whether a stream named exactly Options.Stream (the
// pre-partition event log) existed when Open ran and DropLegacy has not
// deleted it since.
func (l *Log) HasLegacy() bool { return l.hasLegacy.Load() }

// ReadLegacy calls fn, in order and one at a time, for every entry of the
// legacy stream up to its last sequence when ReadLegacy started. Entries
// have Partition -1 and no Key or Rest; their Subject is the one stored
// (herald.room.<room>.meta|posts|msg.<id>).
func (l *Log) ReadLegacy(ctx context.Context, fn func(Entry) error) error {
	if !l.hasLegacy.Load() {
		return fmt.Errorf("read legacy stream %q: there is none", l.lay.base)
	}
	_, err := l.read(ctx, l.legacy, l.lay.base, "", 0, legacyEntry, fn)
	return err
}

// DropLegacy deletes the legacy stream; afterwards HasLegacy is false. It is
// a no-op when there is none.
func (l *Log) DropLegacy(ctx context.Context) error {
	if !l.hasLegacy.Load() {
		return nil
	}
	if err := l.js.DeleteStream(ctx, l.lay.base); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("delete legacy stream %q: %w", l.lay.base, err)
	}
	l.hasLegacy.Store(false)
	l.log.Info("deleted the legacy event log stream", "legacy_stream", l.lay.base)
	return nil
}

// LayoutEmpty reports whether the directory and every partition hold no
// entries.
func (l *Log) LayoutEmpty(ctx context.Context) (bool, error) {
	streams, names := l.layoutStreams()
	counts := make([]uint64, len(streams))
	err := forEach(len(streams), func(i int) error {
		info, err := streams[i].Info(ctx)
		if err != nil {
			return fmt.Errorf("check whether the event log is empty: stream %q info: %w", names[i], err)
		}
		counts[i] = info.State.Msgs
		return nil
	})
	if err != nil {
		return false, err
	}
	for _, n := range counts {
		if n > 0 {
			return false, nil
		}
	}
	return true, nil
}

// ResetLayout purges the directory and every partition stream, to redo an
// interrupted migration. Sequences are not restarted (a purge keeps them
// going) and Epoch does not change.
func (l *Log) ResetLayout(ctx context.Context) error {
	streams, names := l.layoutStreams()
	err := forEach(len(streams), func(i int) error {
		if err := streams[i].Purge(ctx); err != nil {
			return fmt.Errorf("reset the event log: purge stream %q: %w", names[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.log.Warn("purged the directory and every partition stream")
	return nil
}

// layoutStreams is the directory followed by the partitions, and their names.
func (l *Log) layoutStreams() ([]jetstream.Stream, []string) {
	return append([]jetstream.Stream{l.dir}, l.parts...), append([]string{l.lay.dirStream}, l.lay.partStreams...)
}

// LegacyStream is what a fresh look-up found of the legacy stream.
type LegacyStream struct {
	Exists  bool
	Name    string
	Created time.Time // what tells it from a stream of that name created again
	Entries uint64
}

// LookUpLegacy looks the legacy stream up again (HasLegacy says what Open
// found): another replica may have migrated and deleted it since, or an
// earlier Herald created it again. When it is gone, HasLegacy turns false.
func (l *Log) LookUpLegacy(ctx context.Context) (LegacyStream, error) {
	found := LegacyStream{Name: l.lay.base}
	ctx, cancel := context.WithTimeout(ctx, migrationRequestTimeout)
	defer cancel()
	s, err := l.lookUpStream(ctx, l.lay.base)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		l.hasLegacy.Store(false)
		return found, nil
	case err != nil:
		return found, fmt.Errorf("look up legacy stream %q on %s: %w", l.lay.base, l.where, err)
	}
	info := s.CachedInfo()
	found.Exists, found.Created, found.Entries = true, info.Created, info.State.Msgs
	return found, nil
}

// The migration record says which replica is migrating which legacy
// stream. It is written before the migration copies anything and deleted
// once the legacy stream is, so that a start finding both a legacy stream
// and entries in the new layout can tell a migration cut short (the record
// names that very stream: redo it) from a legacy stream that appeared next
// to a log in use (no record, or one naming another stream: the log must
// not be touched). It lives in a key-value bucket of its own because a
// key's revision is the one compare-and-set JetStream offers (stream
// metadata has none: an update replaces it whatever it was): creating the
// record, or replacing the revision read, is what makes exactly one
// replica the migrator, and the migrator rewrites it as a heartbeat, which
// tells the others it is alive.
const (
	migrationBucketSuffix = "_MIGRATION" // the bucket is <Stream>_MIGRATION
	migrationKey          = "legacy"
	// migrationRequestTimeout bounds each request about the legacy stream
	// or the record; the migration itself has no bound.
	migrationRequestTimeout = 10 * time.Second
)

// ErrMigrationClaimed means the migration record was created or rewritten
// by another replica first.
var ErrMigrationClaimed = errors.New("the migration record was changed by another replica")

// MigrationRecord is the record of a migration of the legacy stream.
type MigrationRecord struct {
	Legacy   time.Time // the Created of the legacy stream being migrated
	Owner    string    // the replica migrating it; "" once it gave up
	Revision uint64    // changed by every write; the compare-and-set token
}

// migrationValue is a MigrationRecord as stored.
type migrationValue struct {
	Legacy string `json:"legacy"` // RFC 3339 with nanoseconds
	Owner  string `json:"owner"`
}

func (l *Log) migrationBucket() string { return l.lay.base + migrationBucketSuffix }

// MigrationRecord reads the migration record; ok is false when there is
// none.
func (l *Log) MigrationRecord(ctx context.Context) (rec MigrationRecord, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, migrationRequestTimeout)
	defer cancel()
	kv, err := l.js.KeyValue(ctx, l.migrationBucket())
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("read the migration record (bucket %s): %w", l.migrationBucket(), err)
	}
	return l.readMigrationRecord(ctx, kv)
}

// readMigrationRecord reads the record from kv, its bucket as looked up a
// moment before. The migrator deletes the bucket when it is done, maybe in
// that moment: the read then fails with whatever NATS answers about a
// stream that is gone (no responders to a direct get, stream not found),
// which means no record, as a look-up a moment later says.
func (l *Log) readMigrationRecord(ctx context.Context, kv jetstream.KeyValue) (rec MigrationRecord, ok bool, err error) {
	e, err := kv.Get(ctx, migrationKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || (err != nil && l.migrationBucketGone(ctx)) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("read the migration record (bucket %s): %w", l.migrationBucket(), err)
	}
	var v migrationValue
	err = json.Unmarshal(e.Value(), &v)
	if err == nil {
		rec.Legacy, err = time.Parse(time.RFC3339Nano, v.Legacy)
	}
	if err != nil {
		return rec, false, newError(ErrStreamConflict, err,
			"bucket %s holds %s=%q, which herald did not write: delete the bucket (nats kv rm %s) only if no replica is migrating the legacy stream %q",
			l.migrationBucket(), migrationKey, e.Value(), l.migrationBucket(), l.lay.base)
	}
	rec.Owner, rec.Revision = v.Owner, e.Revision()
	return rec, true, nil
}

// RecordMigration writes rec (its Revision is ignored) provided the record's
// revision is still prev; prev 0 means there must be no record, and creates
// the bucket if needed. Otherwise it writes nothing and returns
// ErrMigrationClaimed. It returns rec with its new Revision.
func (l *Log) RecordMigration(ctx context.Context, rec MigrationRecord, prev uint64) (MigrationRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, migrationRequestTimeout)
	defer cancel()
	what := fmt.Sprintf("record the migration of legacy stream %q (bucket %s)", l.lay.base, l.migrationBucket())
	kv, err := l.js.KeyValue(ctx, l.migrationBucket())
	switch {
	case errors.Is(err, jetstream.ErrBucketNotFound) && prev != 0:
		return rec, ErrMigrationClaimed // deleted: the migration ended
	case errors.Is(err, jetstream.ErrBucketNotFound):
		kv, err = l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      l.migrationBucket(),
			Description: "Herald: the replica migrating the legacy stream " + l.lay.base + "; deleted with it",
			History:     1,
			Storage:     jetstream.FileStorage, // it outlives a migrator that dies
			Replicas:    l.opts.Replicas,
		})
	}
	if err != nil {
		return rec, fmt.Errorf("%s: %w", what, err)
	}
	return l.writeMigrationRecord(ctx, kv, rec, prev, what)
}

// writeMigrationRecord writes rec into kv, its bucket as looked up (or
// created) a moment before, provided the record's revision is still prev.
// A write that fails because the bucket was deleted in that moment (the
// migration ended: NATS answers no responders, or stream not found) lost
// to the replica that deleted it: ErrMigrationClaimed, as when the bucket
// was not found at all.
func (l *Log) writeMigrationRecord(ctx context.Context, kv jetstream.KeyValue, rec MigrationRecord, prev uint64, what string) (MigrationRecord, error) {
	value, err := json.Marshal(migrationValue{Legacy: rec.Legacy.UTC().Format(time.RFC3339Nano), Owner: rec.Owner})
	if err != nil {
		return rec, fmt.Errorf("%s: %w", what, err)
	}
	if prev == 0 {
		rec.Revision, err = kv.Create(ctx, migrationKey, value)
	} else {
		rec.Revision, err = kv.Update(ctx, migrationKey, value, prev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(err != nil && l.migrationBucketGone(ctx)) {
		return rec, ErrMigrationClaimed
	}
	if err != nil {
		return rec, fmt.Errorf("%s: %w", what, err)
	}
	return rec, nil
}

// migrationBucketGone reports whether the record's bucket is certainly
// gone; it is asked only after a request about the record failed, to tell
// a bucket deleted meanwhile from NATS failing (which it also fails on, and
// then says false).
func (l *Log) migrationBucketGone(ctx context.Context) bool {
	_, err := l.js.KeyValue(ctx, l.migrationBucket())
	return errors.Is(err, jetstream.ErrBucketNotFound)
}

// DeleteMigrationRecord deletes the migration record's bucket; it is a
// no-op when there is none.
func (l *Log) DeleteMigrationRecord(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, migrationRequestTimeout)
	defer cancel()
	err := l.js.DeleteKeyValue(ctx, l.migrationBucket())
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete the migration record (bucket %s): %w", l.migrationBucket(), err)
	}
	return nil
}
