package pubsub

import (
	"context"
	"errors"
	"fmt"

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
