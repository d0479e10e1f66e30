package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"

	"github.com/heraldhq/herald/pubsub"
)

// LegacyLog is a log that may still hold events in the layout of Herald
// before rooms were partitioned: one stream that every replica replayed in
// full. *pubsub.Log implements it.
type LegacyLog interface {
	AddToDirectory(ctx context.Context, key string, data []byte) (pubsub.AppendResult, error)
	AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error)
	HasLegacy() bool
	LookUpLegacy(ctx context.Context) (pubsub.LegacyStream, error)
	ReadLegacy(ctx context.Context, fn func(pubsub.Entry) error) error
	DropLegacy(ctx context.Context) error
	LayoutEmpty(ctx context.Context) (bool, error)
	ResetLayout(ctx context.Context) error
	MigrationRecord(ctx context.Context) (pubsub.MigrationRecord, bool, error)
	RecordMigration(ctx context.Context, rec pubsub.MigrationRecord, prev uint64) (pubsub.MigrationRecord, error)
	DeleteMigrationRecord(ctx context.Context) error
}

// MigrationReport says what Migrate copied.
type MigrationReport struct {
	Migrated  bool // false when there was nothing to migrate, or another replica did
	ByAnother bool // another replica migrated the log while this one started
	Rooms     int  // rooms copied into the directory
	Events    int  // room events copied into the partitions
	Skipped   int  // legacy entries that were malformed or had been rejected
}

// ErrLegacyConflict means a legacy stream holding entries exists next to
// an event log in use that no migration of that stream wrote: an earlier
// Herald created it after the log was migrated. Migrate touches neither.
var ErrLegacyConflict = errors.New("a legacy event log stream exists next to the event log in use")

// migrationTiming paces the replicas of one migration: the migrator
// rewrites its record every heartbeat; another replica looks every poll
// (logging every waitLog that it waits), and takes a record whose revision
// has not changed for staleAfter for one whose migrator died.
type migrationTiming struct {
	heartbeat, staleAfter, poll, waitLog time.Duration
}

var defaultMigrationTiming = migrationTiming{
	heartbeat:  2 * time.Second,
	staleAfter: 20 * time.Second, // ten heartbeats: a slow NATS is not a dead migrator
	poll:       time.Second,
	waitLog:    30 * time.Second,
}

// Migrate copies a log of the single-stream layout into the partitioned
// one and then deletes the old stream. It replays the old log with the
// rules every old replica applied and copies what they accepted (the old
// log also stored rejected proposals), room by room in the old order, with
// the original times. Messages the old log no longer retained stay gone,
// as they were. Cursors handed out before the migration belong to the old
// log: clients presenting them are told to refetch (CURSOR_EXPIRED).
//
// Before it copies anything, the migrating replica records that it
// migrates this very legacy stream (pubsub.RecordMigration, which only one
// replica can win), and keeps rewriting that record until the old stream
// is deleted, once everything is copied; then it deletes the record. So a
// start that finds the old stream:
//
//   - with no record of it and nothing in the new layout, migrates;
//   - with a record of it whose migrator is alive, waits until that
//     migration ends (the old stream gone: "migrated by another replica"),
//     and takes it over if the migrator stops rewriting its record;
//   - with a record of it whose migrator gave up or died, purges what that
//     attempt copied (no replica serves until the migration is done) and
//     starts it again from the start;
//   - with no record of it but a new layout holding entries, touches
//     nothing: the old stream appeared after the log was migrated (an
//     earlier Herald creates it when it starts: a rollback, an old replica
//     restarting during the upgrade). Empty, it is left alone, with a
//     warning; holding entries, Migrate fails with ErrLegacyConflict.
//
// A replica waits for another's migration as long as that one is alive
// (rewrites its record), bound by ctx only: the migration it waits for has
// no other bound either. It takes a migrator that stopped rewriting its
// record for staleAfter (20s) for dead; one taken for dead wrongly learns
// it at its next rewrite and stops, without deleting the old stream.
func Migrate(ctx context.Context, log LegacyLog, logger *slog.Logger) (MigrationReport, error) {
	return migrate(ctx, log, logger, defaultMigrationTiming)
}

func migrate(ctx context.Context, log LegacyLog, logger *slog.Logger, timing migrationTiming) (MigrationReport, error) {
	var report MigrationReport
	if !log.HasLegacy() {
		return report, nil
	}
	owner := nuid.Next()
	var other otherMigrator
	for {
		legacy, gone, err := lookUpLegacy(ctx, log, logger)
		if err != nil || gone {
			report.ByAnother = gone
			return report, err
		}
		rec, found, err := log.MigrationRecord(ctx)
		if err != nil {
			return report, fmt.Errorf("migrate the event log: %w", err)
		}
		var claimed pubsub.MigrationRecord
		switch {
		case !found || !rec.Legacy.Equal(legacy.Created):
			// No migration of this stream was started (a record naming
			// another is left over from one that ended).
			empty, err := log.LayoutEmpty(ctx)
			if err != nil {
				return report, fmt.Errorf("migrate the event log: check the new layout: %w", err)
			}
			if !empty {
				// The legacy stream looked up above may have been migrated
				// since by another replica, which deletes the old stream,
				// then its record: look again before taking it for one an
				// earlier Herald created next to the log in use.
				legacy, gone, err := lookUpLegacy(ctx, log, logger)
				if err != nil || gone {
					report.ByAnother = gone
					return report, err
				}
				return report, legacyNextToLogInUse(legacy, logger)
			}
			prev := uint64(0)
			if found {
				prev = rec.Revision
			}
			claimed, err = log.RecordMigration(ctx, pubsub.MigrationRecord{Legacy: legacy.Created, Owner: owner}, prev)
			if errors.Is(err, pubsub.ErrMigrationClaimed) {
				break // another replica started it first: wait for it
			}
			if err != nil {
				return report, fmt.Errorf("migrate the event log: %w", err)
			}
			return migrateClaimed(ctx, log, logger, timing, claimed, false)
		case rec.Owner == "" || other.stale(rec, time.Now(), timing.staleAfter):
			claimed, err = log.RecordMigration(ctx, pubsub.MigrationRecord{Legacy: legacy.Created, Owner: owner}, rec.Revision)
			if errors.Is(err, pubsub.ErrMigrationClaimed) {
				break // another replica took it over first
			}
			if err != nil {
				return report, fmt.Errorf("migrate the event log: %w", err)
			}
			logger.Warn("an earlier migration of the event log stopped half-way; starting it again",
				"legacy_stream", legacy.Name, "earlier_replica", rec.Owner)
			return migrateClaimed(ctx, log, logger, timing, claimed, true)
		default:
			other.log(logger, rec, legacy, timing.waitLog)
		}
		if !sleep(ctx, timing.poll) {
			return report, fmt.Errorf("migrate the event log: waiting for replica %s to migrate it: %w", rec.Owner, ctx.Err())
		}
	}
}

// lookUpLegacy looks the legacy stream up afresh; gone reports, and logs,
// that it is no more: another replica migrated it.
func lookUpLegacy(ctx context.Context, log LegacyLog, logger *slog.Logger) (legacy pubsub.LegacyStream, gone bool, err error) {
	legacy, err = log.LookUpLegacy(ctx)
	if err != nil {
		return legacy, false, fmt.Errorf("migrate the event log: %w", err)
	}
	if !legacy.Exists {
		logger.Info("the event log was migrated by another replica", "legacy_stream", legacy.Name)
	}
	return legacy, !legacy.Exists, nil
}

// legacyNextToLogInUse is what Migrate does about a legacy stream that no
// migration wrote the new layout from. Empty, it is left alone: deleting
// it would gain nothing and could lose what an earlier replica still
// running writes to it meanwhile; once it holds entries, starts refuse.
func legacyNextToLogInUse(legacy pubsub.LegacyStream, logger *slog.Logger) error {
	if legacy.Entries == 0 {
		logger.Warn("an empty legacy (pre-partition) event log stream exists next to the event log in use; it is left alone. "+
			"An earlier Herald creates it when it starts: delete it (nats stream rm "+legacy.Name+") once none runs",
			"legacy_stream", legacy.Name)
		return nil
	}
	return fmt.Errorf("migrate the event log: %w: stream %q holds %d entries, but the directory and partitions already hold the log in use, "+
		"and no migration of that stream wrote them: an earlier Herald created it after the migration (a rollback, or an old replica "+
		"restarting during the upgrade), and what it holds was written there only. Herald does not merge the two: save what it holds "+
		"if you need it (nats stream backup %s <dir>), then delete it (nats stream rm %s) and start again",
		ErrLegacyConflict, legacy.Name, legacy.Entries, legacy.Name, legacy.Name)
}

// migrateClaimed runs the migration this replica recorded as its own in
// claimed, purging the new layout first when purge is set (an attempt of
// another replica, or of an earlier start, that gave up or died).
func migrateClaimed(ctx context.Context, log LegacyLog, logger *slog.Logger, timing migrationTiming, claimed pubsub.MigrationRecord, purge bool) (report MigrationReport, err error) {
	hb, ctx := holdMigration(ctx, log, logger, claimed, timing.heartbeat)
	defer func() {
		if rec, lost := hb.end(); err != nil && lost == nil {
			hb.giveUp(rec)
		}
		hb.cancel(nil)
	}()
	// Right before anything is purged or copied: the stream may have been
	// migrated meanwhile, by a replica that died before deleting its record.
	legacy, gone, err := lookUpLegacy(ctx, log, logger)
	if err != nil {
		return report, err
	}
	if gone {
		report.ByAnother = true
		return report, deleteRecord(ctx, log, logger)
	}
	if !legacy.Created.Equal(claimed.Legacy) {
		return report, fmt.Errorf("migrate the event log: legacy stream %q was deleted and created again meanwhile; start again", legacy.Name)
	}
	report.Migrated = true
	if purge {
		empty, err := log.LayoutEmpty(ctx)
		if err != nil {
			return report, fmt.Errorf("migrate the event log: check the new layout: %w", err)
		}
		if !empty {
			if err := log.ResetLayout(ctx); err != nil {
				return report, fmt.Errorf("migrate the event log: purge the interrupted migration: %w", err)
			}
		}
	}
	logger.Info("migrating the event log from the single-stream layout to the partitioned one", "legacy_stream", legacy.Name, "entries", legacy.Entries)
	m := migration{log: log, logger: logger, rooms: make(map[string]*roomState), names: make(map[string]bool), keys: make(map[string]bool), report: &report}
	if err := log.ReadLegacy(ctx, func(e pubsub.Entry) error { return m.copy(ctx, e) }); err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errMigrationTakenOver) {
			err = cause
		}
		return report, fmt.Errorf("migrate the event log (after %d rooms and %d events): %w", report.Rooms, report.Events, err)
	}
	// The old stream goes only while the record is still this replica's:
	// one that took it over (taking this one for dead) purges and copies
	// again, and needs the old stream to copy from.
	if _, lost := hb.end(); lost != nil {
		return report, fmt.Errorf("migrate the event log (after %d rooms and %d events): %w", report.Rooms, report.Events, lost)
	}
	if err := hb.renew(ctx); err != nil {
		if errors.Is(err, errMigrationTakenOver) {
			hb.lost = err
		}
		return report, fmt.Errorf("migrate the event log: everything is copied, but: %w", err)
	}
	if err := log.DropLegacy(ctx); err != nil {
		return report, fmt.Errorf("migrate the event log: everything is copied, but deleting the old stream failed (delete it by hand, or start again to redo the migration): %w", err)
	}
	logger.Info("migrated the event log", "rooms", report.Rooms, "events", report.Events, "skipped", report.Skipped)
	return report, deleteRecord(ctx, log, logger)
}

// deleteRecord deletes the record of a migration that ended. Failing is
// only logged: a record left behind names a stream that is gone, which
// later starts take for no record at all.
func deleteRecord(ctx context.Context, log LegacyLog, logger *slog.Logger) error {
	if err := log.DeleteMigrationRecord(ctx); err != nil {
		logger.Warn("the migration is done, but deleting its record failed; it is harmless", "err", err)
	}
	return nil
}

// errMigrationTakenOver is why a migrator stops when another replica took
// its record over.
var errMigrationTakenOver = errors.New("another replica took the migration over (this one had not rewritten its record in time, and was taken for dead)")

// otherMigrator is what a waiting replica saw of another's record: its
// revision, and since when it has not changed.
type otherMigrator struct {
	rev    uint64
	since  time.Time
	logged time.Time
}

// stale reports whether rec has kept its revision for after, as the
// record of a migrator that stopped rewriting it does. It judges by this
// replica's clock only.
func (o *otherMigrator) stale(rec pubsub.MigrationRecord, now time.Time, after time.Duration) bool {
	if rec.Revision != o.rev {
		o.rev, o.since = rec.Revision, now
		return false
	}
	return now.Sub(o.since) >= after
}

// log says, at first and then every every, that this replica waits.
func (o *otherMigrator) log(logger *slog.Logger, rec pubsub.MigrationRecord, legacy pubsub.LegacyStream, every time.Duration) {
	if now := time.Now(); now.Sub(o.logged) >= every {
		o.logged = now
		logger.Info("another replica is migrating the event log; waiting for it to finish",
			"legacy_stream", legacy.Name, "entries", legacy.Entries, "migrating_replica", rec.Owner)
	}
}

// migrationHold rewrites the migrator's record every heartbeat, which
// tells the other replicas it is alive, and cancels the migration (its
// context) when another replica took the record over.
type migrationHold struct {
	log    LegacyLog
	logger *slog.Logger
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	// Owned by run until done is closed, then by the migrator.
	rec  pubsub.MigrationRecord
	lost error
}

// holdMigration starts rewriting claimed every heartbeat; the context it
// returns ends when ctx does, or when the record is lost.
func holdMigration(ctx context.Context, log LegacyLog, logger *slog.Logger, claimed pubsub.MigrationRecord, heartbeat time.Duration) (*migrationHold, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	h := &migrationHold{log: log, logger: logger, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}), rec: claimed}
	go h.run(ctx, heartbeat)
	return h, ctx
}

func (h *migrationHold) run(ctx context.Context, heartbeat time.Duration) {
	defer close(h.done)
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := h.renew(ctx)
		switch {
		case errors.Is(err, errMigrationTakenOver):
			h.lost = err
			h.cancel(err)
			return
		case err != nil && ctx.Err() == nil:
			// Others take the record for dead only after several
			// heartbeats missed; and if they do, the next one says so.
			h.logger.Warn("rewriting the migration record failed; retrying", "err", err)
		}
	}
}

// renew rewrites the record, provided it is still the revision last
// written; errMigrationTakenOver if another replica wrote it since. Only
// run calls it until done is closed, then only the migrator.
func (h *migrationHold) renew(ctx context.Context) error {
	rec, err := h.log.RecordMigration(ctx, h.rec, h.rec.Revision)
	if errors.Is(err, pubsub.ErrMigrationClaimed) {
		// A rewrite whose answer was lost leaves a revision this replica
		// has not seen, with its own name, which no other replica writes.
		now, found, readErr := h.log.MigrationRecord(ctx)
		if readErr != nil {
			return readErr
		}
		if !found || now.Owner != h.rec.Owner || !now.Legacy.Equal(h.rec.Legacy) {
			return errMigrationTakenOver
		}
		rec, err = h.log.RecordMigration(ctx, h.rec, now.Revision)
		if errors.Is(err, pubsub.ErrMigrationClaimed) {
			return errMigrationTakenOver
		}
	}
	if err != nil {
		return err
	}
	h.rec = rec
	return nil
}

// end stops the heartbeat and returns the record as last written, and
// errMigrationTakenOver if another replica took it over. It may be called
// more than once.
func (h *migrationHold) end() (pubsub.MigrationRecord, error) {
	h.once.Do(func() { close(h.stop) })
	<-h.done
	return h.rec, h.lost
}

// giveUp marks rec as given up, so that the next start takes it over at
// once rather than after the record went stale. It has its own bound: the
// migration's context may be what ended.
func (h *migrationHold) giveUp(rec pubsub.MigrationRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec.Owner = ""
	if _, err := h.log.RecordMigration(ctx, rec, rec.Revision); err != nil {
		h.logger.Warn("marking the migration as given up failed; the next start takes it over once its record is stale", "err", err)
	}
}

// migration replays the old log and copies what it accepted.
type migration struct {
	log    LegacyLog
	logger *slog.Logger
	rooms  map[string]*roomState
	names  map[string]bool // the old replicas' name keys (lower case)
	keys   map[string]bool // the directory keys written
	report *MigrationReport
}

func (m *migration) copy(ctx context.Context, entry pubsub.Entry) error {
	e, bad := decodeLegacyEvent(entry.Subject, entry.Data)
	if bad != nil {
		m.report.Skipped++
		return nil
	}
	e.Format = eventFormat
	e.At = entry.Time.UnixNano()
	if e.Type == RoomCreated {
		return m.copyRoom(ctx, e)
	}
	rs := m.rooms[e.RoomID]
	if rs == nil || rs.judge(e) != nil {
		m.report.Skipped++ // rejected by the old rules too
		return nil
	}
	e.Prev = rs.last
	data, err := e.Encode()
	if err != nil {
		return err
	}
	res, err := m.log.AppendKeyed(ctx, e.RoomID, e.rest(), data, pubsub.AppendOptions{ExpectLast: e.Prev})
	if err != nil {
		return fmt.Errorf("copy event of room %s: %w", e.RoomID, err)
	}
	if bad := rs.apply(res.Seq, entryTime(entry, e), e); bad != nil {
		return fmt.Errorf("copy event of room %s: %w", e.RoomID, bad)
	}
	m.report.Events++
	if m.report.Events%10000 == 0 {
		m.logger.Info("migrating the event log", "rooms", m.report.Rooms, "events", m.report.Events)
	}
	return nil
}

func (m *migration) copyRoom(ctx context.Context, e Event) error {
	// Judged as old replicas judged names: unique in lower case. Names
	// that are one only under case folding ("ΟΔΟΣ", "οδος") were two rooms.
	key := strings.ToLower(e.Name)
	if checkActor(e.Actor) != nil || checkRoomName(e.Name) != nil || m.rooms[e.RoomID] != nil || m.names[key] {
		m.report.Skipped++
		return nil
	}
	data, err := e.Encode()
	if err != nil {
		return err
	}
	dirKey := directoryKey(e.Name)
	if m.keys[dirKey] {
		dirKey = migratedDirectoryKey(e.RoomID)
	}
	res, err := m.log.AddToDirectory(ctx, dirKey, data)
	if errors.Is(err, pubsub.ErrKeyExists) {
		return fmt.Errorf("copy room %q: the new layout already has a room of that name", e.Name)
	}
	if err != nil {
		return fmt.Errorf("copy room %q: %w", e.Name, err)
	}
	// Rooms judge nothing by history here: the old log kept what it kept.
	m.rooms[e.RoomID] = newRoomState(Room{ID: e.RoomID, Name: e.Name, CreatedBy: e.Actor, Seq: res.Seq}, 0)
	m.names[key] = true
	m.keys[dirKey] = true
	m.report.Rooms++
	return nil
}
