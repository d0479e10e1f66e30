package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/heraldhq/herald/pubsub"
)

// LegacyLog is a log that may still hold events in the layout of Herald
// before rooms were partitioned: one stream that every replica replayed in
// full. *pubsub.Log implements it.
type LegacyLog interface {
	AddToDirectory(ctx context.Context, key string, data []byte) (pubsub.AppendResult, error)
	AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error)
	HasLegacy() bool
	ReadLegacy(ctx context.Context, fn func(pubsub.Entry) error) error
	DropLegacy(ctx context.Context) error
	LayoutEmpty(ctx context.Context) (bool, error)
	ResetLayout(ctx context.Context) error
}

// MigrationReport says what Migrate copied.
type MigrationReport struct {
	Migrated bool // false when there was nothing to migrate
	Rooms    int  // rooms copied into the directory
	Events   int  // room events copied into the partitions
	Skipped  int  // legacy entries that were malformed or had been rejected
}

// Migrate copies a log of the single-stream layout into the partitioned
// one and then deletes the old stream. It replays the old log with the
// rules every old replica applied and copies what they accepted (the old
// log also stored rejected proposals), room by room in the old order, with
// the original times. Messages the old log no longer retained stay gone,
// as they were. Cursors handed out before the migration belong to the old
// log: clients presenting them are told to refetch (CURSOR_EXPIRED).
//
// The old stream is deleted only once everything is copied. A migration
// that stopped half-way is started again from the start: while an old
// stream exists, whatever the new layout holds can only come from an
// earlier attempt (no replica serves until the migration is done), so it
// is purged first.
func Migrate(ctx context.Context, log LegacyLog, logger *slog.Logger) (MigrationReport, error) {
	var report MigrationReport
	if !log.HasLegacy() {
		return report, nil
	}
	report.Migrated = true
	empty, err := log.LayoutEmpty(ctx)
	if err != nil {
		return report, fmt.Errorf("migrate the event log: check the new layout: %w", err)
	}
	if !empty {
		logger.Warn("an earlier migration of the event log stopped half-way; starting it again")
		if err := log.ResetLayout(ctx); err != nil {
			return report, fmt.Errorf("migrate the event log: purge the interrupted migration: %w", err)
		}
	}
	logger.Info("migrating the event log from the single-stream layout to the partitioned one")
	m := migration{log: log, logger: logger, rooms: make(map[string]*roomState), names: make(map[string]bool), keys: make(map[string]bool), report: &report}
	if err := log.ReadLegacy(ctx, func(e pubsub.Entry) error { return m.copy(ctx, e) }); err != nil {
		return report, fmt.Errorf("migrate the event log (after %d rooms and %d events): %w", report.Rooms, report.Events, err)
	}
	if err := log.DropLegacy(ctx); err != nil {
		return report, fmt.Errorf("migrate the event log: everything is copied, but deleting the old stream failed (delete it by hand, or start again to redo the migration): %w", err)
	}
	logger.Info("migrated the event log", "rooms", report.Rooms, "events", report.Events, "skipped", report.Skipped)
	return report, nil
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
