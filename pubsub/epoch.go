package pubsub

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The log's epoch (Log.Epoch) tells one incarnation of the log from
// another: a cursor of another epoch is refused, since a stream deleted and
// created again restarts its sequences.
//
// A stream's epoch (streamEpoch) is its creation time, or the time recorded
// under metaEpoch in its metadata when that is later; the log's is the
// latest of its streams'. A log written before metaEpoch existed records
// none, so its epoch is the newest creation time, as it always was: an
// upgrade keeps every client's cursor.
//
// Creation times alone do not order incarnations: a stream created again
// while the clock is behind the one that created the others (a clock
// stepped back, a NATS node whose clock was ahead) has an older creation
// time than theirs, and the newest creation time, the epoch, stays what it
// was. So Open records two things:
//
//   - A stream it creates while others of the log exist records, as its
//     epoch, the latest of theirs plus 1ns (epochFloor): its own epoch, and
//     so the log's, is then later than every epoch the others knew,
//     whatever the clocks. Its creation time still wins when later, as it
//     is when the clocks agree, so that replicas of a Herald that reads
//     creation times only compute the same epoch.
//   - Once the streams are set up, every stream whose epoch is earlier than
//     the log's records the log's (recordEpoch). A stream lost later takes
//     its epoch with it, and the one created in its place must still be
//     later: the others remember it. Without that, a stream lost twice
//     under the same clock would get the same floor twice, and cursors of
//     its second incarnation would pass for positions in its third.
//
// Both are metadata of the stream, written with the rest of its
// configuration in one request: there is no moment where a stream created
// again exists without its floor.

// metaEpoch is the stream metadata key of a stream's recorded epoch, as
// RFC 3339 with nanoseconds. The name is persistent.
const metaEpoch = "herald.epoch"

// streamEpoch is the stream's epoch: its creation time, or the epoch its
// metadata records when that is later. A recorded value that is not a time
// is refused: it was edited by hand, and guessing could let an old cursor
// through.
func streamEpoch(info *jetstream.StreamInfo) (time.Time, error) {
	epoch := info.Created
	raw, ok := info.Config.Metadata[metaEpoch]
	if !ok {
		return epoch, nil
	}
	recorded, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, newError(ErrStreamConflict, err,
			"stream %q records %s=%q, which is not a time (RFC 3339): put back the value herald wrote, or remove the key (clients' cursors then expire)",
			info.Config.Name, metaEpoch, raw)
	}
	if recorded.After(epoch) {
		epoch = recorded
	}
	return epoch, nil
}

// latestEpoch is the latest epoch of infos' streams (nil entries are
// skipped), and the zero time when there are none.
func latestEpoch(infos []*jetstream.StreamInfo) (time.Time, error) {
	var latest time.Time
	for _, info := range infos {
		if info == nil {
			continue
		}
		e, err := streamEpoch(info)
		if err != nil {
			return time.Time{}, err
		}
		if e.After(latest) {
			latest = e
		}
	}
	return latest, nil
}

// epochFloor is what a stream Open creates records as its epoch, given the
// latest epoch of the streams of the log that exist (zero: none, a fresh
// log, whose streams record nothing at creation): later than all of them.
func epochFloor(existing time.Time) time.Time {
	if existing.IsZero() {
		return time.Time{}
	}
	return existing.Add(time.Nanosecond)
}

// withEpoch is cfg recording epoch in its metadata (cfg's own map is left
// alone), or cfg itself when epoch is zero.
func withEpoch(cfg jetstream.StreamConfig, epoch time.Time) jetstream.StreamConfig {
	if epoch.IsZero() {
		return cfg
	}
	md := make(map[string]string, len(cfg.Metadata)+1)
	maps.Copy(md, cfg.Metadata)
	md[metaEpoch] = epoch.UTC().Format(time.RFC3339Nano)
	cfg.Metadata = md
	return cfg
}

// recordEpoch makes s record epoch, when its own is earlier: only the
// metadata changes, so it is a no-op for the stream's entries and
// consumers, and replicas that do not know metaEpoch keep it when they
// update the stream (reconcile keeps metadata it does not own).
func (l *Log) recordEpoch(ctx context.Context, s jetstream.Stream, epoch time.Time) (jetstream.Stream, error) {
	info := s.CachedInfo()
	have, err := streamEpoch(info)
	if err != nil {
		return nil, err
	}
	if !have.Before(epoch) {
		return s, nil
	}
	cfg := withEpoch(info.Config, epoch)
	var updated jetstream.Stream
	err = untilElected(ctx, l.log, "recording the log's epoch in stream "+cfg.Name, func(ctx context.Context) error {
		var err error
		updated, err = l.js.UpdateStream(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record the log's epoch (%s=%s) in stream %q on %s: %w",
			metaEpoch, cfg.Metadata[metaEpoch], cfg.Name, l.where, err)
	}
	l.log.Debug("recorded the log's epoch in stream", "name", cfg.Name, "epoch", epoch)
	return updated, nil
}
