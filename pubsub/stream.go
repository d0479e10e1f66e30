package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsErrCodeSubjectOverlap is the JetStream API error code for "subjects
// overlap with an existing stream" (nats-server JSStreamSubjectOverlapErr).
const jsErrCodeSubjectOverlap jetstream.ErrorCode = 10065

// electionAttempt bounds one JetStream request of the set-up. A request can
// go unanswered while the cluster elects a leader (the meta leader, or the
// stream's), and stays unanswered even once one is elected: it is sent
// again, until the set-up's context ends, rather than failing start-up.
const electionAttempt = 2 * time.Second

// jsErrCodeClusterNotAvailable is the JetStream API error code for
// "JetStream system temporarily unavailable" (nats-server
// JSClusterNotAvailErr), the answer while there is no meta leader.
const jsErrCodeClusterNotAvailable jetstream.ErrorCode = 10008

// setupWorkers bounds how many partition streams Open sets up at once: in a
// cluster every create waits for the meta leader, and 256 of them one after
// another would take long, while hundreds at once would flood it.
const setupWorkers = 8

// baseConfig is the configuration every stream of the layout shares.
func (o Options) baseConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Retention:  jetstream.LimitsPolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   o.Replicas,
		Duplicates: o.DuplicateWindow,
		Discard:    jetstream.DiscardOld,
	}
}

// directoryConfig is the directory stream's configuration: one entry per
// key, never discarded by a per-subject limit.
func (o Options) directoryConfig(lay *layout) jetstream.StreamConfig {
	cfg := o.baseConfig()
	cfg.Name = lay.dirStream
	cfg.Subjects = []string{directoryPrefix + ">"}
	cfg.MaxMsgsPerSubject = -1
	cfg.Metadata = map[string]string{
		metaLayout:     layoutVersion,
		metaPartitions: strconv.Itoa(lay.partitions),
	}
	return cfg
}

// partitionConfig is partition k's configuration.
func (o Options) partitionConfig(lay *layout, k int) jetstream.StreamConfig {
	maxPer := o.MaxMsgsPerSubject
	if maxPer == 0 {
		maxPer = -1 // JetStream spells "unlimited" as -1.
	}
	pfx := partitionPrefix + strconv.Itoa(k)
	cfg := o.baseConfig()
	cfg.Name = lay.partStreams[k]
	cfg.Subjects = []string{pfx + ".>"}
	cfg.MaxMsgsPerSubject = maxPer
	cfg.RePublish = &jetstream.RePublish{
		Source:      pfx + ".>",
		Destination: livePrefix + strconv.Itoa(k) + ".>",
	}
	cfg.Metadata = map[string]string{
		metaLayout:    layoutVersion,
		metaPartition: fmt.Sprintf("%d/%d", k, lay.partitions),
	}
	return cfg
}

// lookUpStream looks the stream up, waiting out a leader election.
func (l *Log) lookUpStream(ctx context.Context, name string) (jetstream.Stream, error) {
	var s jetstream.Stream
	err := untilElected(ctx, l.log, "the look-up of stream "+name, func(ctx context.Context) error {
		var err error
		s, err = l.js.Stream(ctx, name)
		return err
	})
	return s, err
}

// jsErrCodeNoPeers is the JetStream API error code for "no suitable peers
// for placement" (nats-server JSClusterNoPeersErrF). Its description lists
// the reasons; see waitingForPeers.
const jsErrCodeNoPeers jetstream.ErrorCode = 10005

// untilElected runs request with electionAttempt to answer, again for as
// long as it fails the way a request does while the cluster is between
// states (see duringElection) and ctx lasts, at most once per
// electionAttempt: a refusal comes at once. request must be safe to
// repeat. what names it in the line each retry logs to log. When ctx ends
// after a refusal, the error returned says what the refusal was.
func untilElected(ctx context.Context, log *slog.Logger, what string, request func(context.Context) error) error {
	var refused error // the last answer that was a refusal, not a silence
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, electionAttempt)
		err := request(attemptCtx)
		if err == nil || ctx.Err() != nil || !duringElection(err) {
			cancel()
			if err != nil && ctx.Err() != nil && refused != nil {
				err = fmt.Errorf("%w (the last answer was: %v)", err, refused)
			}
			return err
		}
		if !isSilence(err) {
			refused = err
		}
		log.Warn(what+" failed; retrying (is a JetStream leader being elected, or a NATS node starting?)", "err", err)
		<-attemptCtx.Done() // the rest of the attempt's time, if it was refused
		cancel()
	}
}

// duringElection reports whether err is how a JetStream request fails while
// a leader is being elected (no answer, or "temporarily unavailable"), or
// while the meta leader waits to hear from the nodes a stream needs.
func duringElection(err error) bool {
	var apiErr *jetstream.APIError
	return isSilence(err) ||
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jsErrCodeClusterNotAvailable || waitingForPeers(apiErr))
}

// waitingForPeers reports whether a create was refused for want of nodes
// the meta leader has not heard from yet: "peer offline" (it knows the node
// but has had no statistics from it, as just after the cluster formed) or
// "miscellaneous issue" (it has no information on the node at all, as
// while a node of a restarted cluster is not back). Both pass once the
// node reports; other reasons (storage, tags) do not, and neither does
// this one if the node never comes back, which the set-up's deadline ends.
func waitingForPeers(apiErr *jetstream.APIError) bool {
	return apiErr.ErrorCode == jsErrCodeNoPeers &&
		(strings.Contains(apiErr.Description, "peer offline") || strings.Contains(apiErr.Description, "miscellaneous issue"))
}

// isSilence reports whether err is a request that went unanswered.
func isSilence(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat)
}

// setupStreams looks for the legacy stream, then creates or reconciles the
// directory and the partitions, and records what is in force.
func (l *Log) setupStreams(ctx context.Context) error {
	legacy, err := l.lookUpStream(ctx, l.lay.base)
	switch {
	case err == nil:
		l.legacy = legacy
		l.hasLegacy.Store(true)
		info := legacy.CachedInfo()
		l.log.Info("found a legacy (pre-partition) event log stream; it is left alone until the migration drops it",
			"legacy_stream", l.lay.base, "subjects", info.Config.Subjects, "messages", info.State.Msgs)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// Its files left unread would be migrated from, and the layout
		// made meanwhile purged, once they are read again.
		if err := l.checkNotLeftUnloaded(l.lay.base); err != nil {
			return err
		}
	default:
		return fmt.Errorf("look up legacy stream %q on %s: %w", l.lay.base, l.where, err)
	}

	// Check the layout of whatever exists before creating anything, so that
	// a refused Open leaves no half-made layout behind.
	n := l.lay.partitions
	wants := make([]jetstream.StreamConfig, n+1) // [0] directory, [k+1] partition k
	checks := make([]func(jetstream.StreamConfig) error, n+1)
	wants[0], checks[0] = l.opts.directoryConfig(&l.lay), l.checkDirectoryLayout
	for k := range n {
		wants[k+1] = l.opts.partitionConfig(&l.lay, k)
		checks[k+1] = l.checkPartitionLayout(k, wants[k+1])
	}
	found := make([]jetstream.Stream, n+1)
	foundInfo := make([]*jetstream.StreamInfo, n+1) // nil: not found
	err = forEach(n+1, func(i int) error {
		s, err := l.lookUpStream(ctx, wants[i].Name)
		switch {
		case err == nil:
			found[i], foundInfo[i] = s, s.CachedInfo()
			have := s.CachedInfo().Config
			if err := checks[i](have); err != nil {
				return err
			}
			if err := checkReplicasNotLowered(have, wants[i]); err != nil {
				return err
			}
			if _, err := streamEpoch(s.CachedInfo()); err != nil {
				return err
			}
			return unusable(have, wants[i])
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return l.checkNotLeftUnloaded(wants[i].Name)
		default:
			return fmt.Errorf("look up stream %q on %s: %w", wants[i].Name, l.where, err)
		}
	})
	if err != nil {
		return err
	}
	if err := l.checkLimitKept(ctx, foundInfo, wants); err != nil {
		return err
	}
	// A stream created while others exist is created again, or the last
	// of a set-up cut short: it must take the log to a new epoch (see
	// epoch.go).
	existing, err := latestEpoch(foundInfo)
	if err != nil {
		return err
	}
	floor := epochFloor(existing)

	// The directory goes first: once it exists it records the partition
	// count, which is what later Opens are checked against.
	streams := make([]jetstream.Stream, n+1)
	if streams[0], err = l.ensureStreamAt(ctx, wants[0], found[0], checks[0], floor); err != nil {
		return err
	}
	err = forEach(n, func(k int) error {
		var err error
		streams[k+1], err = l.ensureStreamAt(ctx, wants[k+1], found[k+1], checks[k+1], floor)
		return err
	})
	if err != nil {
		return err
	}

	// Every stream remembers the epoch, so that whichever is lost later,
	// the one created in its place is later still (see epoch.go). Once
	// they all do, which every Open after the first finds, this asks
	// nothing of the server.
	infos := make([]*jetstream.StreamInfo, n+1)
	for i, s := range streams {
		infos[i] = s.CachedInfo()
	}
	if l.epoch, err = latestEpoch(infos); err != nil {
		return err
	}
	err = forEach(n+1, func(i int) error {
		var err error
		streams[i], err = l.recordEpoch(ctx, streams[i], l.epoch)
		return err
	})
	if err != nil {
		return err
	}

	l.dir, l.parts = streams[0], streams[1:]
	l.dirCreated = l.dir.CachedInfo().Created
	l.partCreated = make([]time.Time, n)
	for k, s := range l.parts {
		l.partCreated[k] = s.CachedInfo().Created
	}
	l.suspectPart = make([]atomic.Bool, n)
	l.maxPerSubject = max(l.parts[0].CachedInfo().Config.MaxMsgsPerSubject, 0)
	return nil
}

// forEach runs fn(0..n-1) on at most setupWorkers goroutines, waits for all
// of them, and returns the error of the lowest i that failed: failures
// usually share one cause, and a message must stay on one line.
func forEach(n int, fn func(i int) error) error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(setupWorkers, n) {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checkDirectoryLayout refuses a directory stream that records another
// partition count, or none.
func (l *Log) checkDirectoryLayout(have jetstream.StreamConfig) error {
	want := strconv.Itoa(l.lay.partitions)
	got, ok := have.Metadata[metaPartitions]
	switch {
	case have.Metadata[metaLayout] != "" && have.Metadata[metaLayout] != layoutVersion:
		return newError(ErrLayoutConflict, nil,
			"stream %q records %s=%s, but this herald knows layout %s only: run a herald version that knows that layout",
			have.Name, metaLayout, have.Metadata[metaLayout], layoutVersion)
	case !ok:
		return newError(ErrLayoutConflict, nil,
			"stream %q exists but records no %s in its metadata, so it was not created by herald's partitioned event log: delete it or configure another stream name",
			have.Name, metaPartitions)
	case got != want:
		return newError(ErrLayoutConflict, nil,
			"the event log was created with %s partitions (stream %q records %s=%s), but Partitions is %d: the partition count is fixed when the log is created; start with %s partitions",
			got, have.Name, metaPartitions, got, l.lay.partitions, got)
	}
	return checkDirectoryKeepsAll(have)
}

// ErrHistoryLowered means Options.MaxMsgsPerSubject is below the limit in
// force on an event log that holds entries, or that replicas alive use
// (see checkLimitKept). It wraps ErrStreamConflict.
var ErrHistoryLowered = fmt.Errorf("per-subject limit lowered on an event log in use: %w", ErrStreamConflict)

// ErrHistoryRaised means Options.MaxMsgsPerSubject is above the limit in
// force on an event log that replicas alive use (see checkLimitKept). It
// wraps ErrStreamConflict.
var ErrHistoryRaised = fmt.Errorf("per-subject limit raised under replicas alive: %w", ErrStreamConflict)

// streamLimits lists the stream-wide limits an operator set (Open leaves
// max_age, max_msgs and max_bytes as it finds them), as "setting value".
func streamLimits(have jetstream.StreamConfig) []string {
	var limits []string
	if have.MaxAge > 0 {
		limits = append(limits, "max_age "+fmtDuration(have.MaxAge))
	}
	if have.MaxMsgs > 0 {
		limits = append(limits, "max_msgs "+strconv.FormatInt(have.MaxMsgs, 10))
	}
	if have.MaxBytes > 0 {
		limits = append(limits, "max_bytes "+strconv.FormatInt(have.MaxBytes, 10))
	}
	return limits
}

// checkDirectoryKeepsAll refuses a directory stream with a limit an
// operator set (streamLimits): the directory must keep every entry, since
// a key's one entry is what makes it exist, and unique. Discarding one
// would let a room name be taken twice, and hide the room from replicas
// following the directory.
func checkDirectoryKeepsAll(have jetstream.StreamConfig) error {
	limits := streamLimits(have)
	if len(limits) == 0 {
		return nil
	}
	return newError(ErrStreamConflict, nil,
		"stream %q exists with a conflicting configuration: %s; the directory must keep every entry (a discarded one would free its key, a room name, to be taken again): remove the limit (nats stream edit %s)",
		have.Name, strings.Join(limits, ", "), have.Name)
}

// checkPartitionLayout refuses a partition stream recorded as part of a
// layout with another partition count (a directory deleted and re-created
// by hand, say): its keys were placed by another modulus, and one with a
// stream-wide limit (checkPartitionKeepsSubjects).
func (l *Log) checkPartitionLayout(k int, want jetstream.StreamConfig) func(jetstream.StreamConfig) error {
	return func(have jetstream.StreamConfig) error {
		wantPart := fmt.Sprintf("%d/%d", k, l.lay.partitions)
		if got, ok := have.Metadata[metaPartition]; ok && got != wantPart {
			return newError(ErrLayoutConflict, nil,
				"stream %q records %s=%s, but the event log has %d partitions (it should be %s): its entries were placed for another partition count; delete the streams of the old layout or configure another stream name",
				have.Name, metaPartition, got, l.lay.partitions, wantPart)
		}
		return checkPartitionKeepsSubjects(have, want)
	}
}

// checkPartitionKeepsSubjects refuses a partition stream with a
// stream-wide limit an operator set (streamLimits), as the directory's are
// refused: a partition may discard only a subject's oldest entries beyond
// the per-subject limit its users judge by (Options.MaxMsgsPerSubject; in
// herald's chat, a message's changes and a user's membership of a room
// are kept within it, so that a room read afresh folds the same), while
// such a limit discards the oldest entries whatever their subject.
func checkPartitionKeepsSubjects(have, want jetstream.StreamConfig) error {
	if limits := streamLimits(have); len(limits) > 0 {
		msg := fmt.Sprintf("stream %q exists with a conflicting configuration: %s; a partition must keep every entry within max_msgs_per_subject (such a limit discards the oldest entries of any subject, a message's changes or a member's joining, and a key read afresh would be rebuilt differently): remove the limit (nats stream edit %s)",
			have.Name, strings.Join(limits, ", "), have.Name)
		if diffs := configDiffs(have, want); len(diffs) > 0 {
			msg += "; herald would also change " + strings.Join(diffs, ", ")
		}
		return newError(ErrStreamConflict, nil, "%s", msg)
	}
	return nil
}

// checkLimitKept refuses to change the partitions' per-subject limit from
// the one in force (found[i] is what the look-up found of wants[i], nil if
// nothing; [0] is the directory, whose own limit is not compared) while
// another replica is alive, and to lower it once the log holds any entry,
// in the directory or any partition. (A legacy stream's
// entries do not count: nothing judges them by the partitions' limit, and
// the migration copies them under the limit of the replica that runs it.)
//
// A replica judges by the limit Open left in force for as long as it runs
// (in herald's chat, its held rooms evict the posts the log discards, and
// it refuses the changes the log could not keep). Lowered under it, NATS
// would discard what it relies on (a message's earlier changes, a member's
// joining); raised, the log would keep, and the raising replica accept,
// what it evicts and refuses, so replicas would answer the same room
// differently and skip each other's events. Lowered at all, NATS trims
// every subject to the new limit at once, the ones its users keep within
// the old limit too (see checkPartitionKeepsSubjects). So the limit of a
// log in use is raised by stopping every replica and starting them all
// with the new one; an empty log no replica uses may take any limit.
//
// The replicas alive are looked up only when the limit would change: an
// Open that keeps it asks nothing more.
func (l *Log) checkLimitKept(ctx context.Context, found []*jetstream.StreamInfo, wants []jetstream.StreamConfig) error {
	var lowered, raised *jetstream.StreamInfo // the first stream found whose limit wants lower, or raise
	var entries uint64
	for i, info := range found {
		if info == nil {
			continue
		}
		entries += info.State.Msgs
		if i == 0 {
			// The directory's limit is no one's to judge by: it keeps
			// every entry, and reconcile restores that if it was changed.
			continue
		}
		switch {
		case lowered == nil && limitLowered(info.Config, wants[i]):
			lowered = info
		case raised == nil && limitLowered(wants[i], info.Config):
			raised = info
		}
	}
	changed := lowered
	if changed == nil {
		changed = raised
	}
	if changed == nil {
		return nil
	}
	have, want := changed.Config, l.opts.MaxMsgsPerSubject
	inForce := fmtLimit(have.MaxMsgsPerSubject)
	if lowered != nil && entries > 0 {
		return newError(ErrHistoryLowered, nil,
			"stream %q keeps max_msgs_per_subject %s and the event log holds %d entries: lowering it to %s would make NATS discard the oldest entries of every subject at once, not only keys' oldest ones beyond the new limit (in herald's chat, rooms' older posts) but the changes and membership entries rooms are rebuilt from (deleted messages and removed members would come back), under replicas that judge by the limit in force; keep MaxMsgsPerSubject (--room-history) at %s or more",
			have.Name, inForce, entries, fmtLimit(want), inForce)
	}
	alive, err := l.replicasAlive(ctx)
	if err != nil {
		return fmt.Errorf("stream %q keeps max_msgs_per_subject %s, which MaxMsgsPerSubject %s would change: look for replicas using the event log: %w",
			have.Name, inForce, fmtLimit(want), err)
	}
	switch {
	case len(alive) == 0:
		return nil
	case lowered != nil:
		return newError(ErrHistoryLowered, nil,
			"stream %q keeps max_msgs_per_subject %s, and %d replica(s) alive (%s) judge by it: lowering it to %s under them would make NATS discard entries they keep within their limit (in herald's chat, a message's changes and a member's entries rooms are rebuilt from); keep MaxMsgsPerSubject (--room-history) at %s or more, or stop every replica first",
			have.Name, inForce, len(alive), strings.Join(alive, ", "), fmtLimit(want), inForce)
	}
	return newError(ErrHistoryRaised, nil,
		"stream %q keeps max_msgs_per_subject %s, and %d replica(s) alive (%s) judge by it for as long as they run: raising it to %s under them would make the log keep, and this replica accept, what they evict and refuse (in herald's chat, posts and a message's or member's entries beyond %s), so replicas would answer the same rooms differently; start with MaxMsgsPerSubject (--room-history) %s, or stop every replica and start them all with %s (a replica that stopped without closing, killed or crashed, counts as alive until its presence key expires, %s after its last heartbeat by default)",
		have.Name, inForce, len(alive), strings.Join(alive, ", "), fmtLimit(want), inForce, inForce, fmtLimit(want), defaultPresenceTTL)
}

// higherLimit reports whether per-subject limit a (0 = unlimited) keeps
// more than b.
func higherLimit(a, b int64) bool {
	return a != b && (a == 0 || b != 0 && a > b)
}

// limitLowered reports whether want lowers have's per-subject limit.
func limitLowered(have, want jetstream.StreamConfig) bool {
	return higherLimit(max(have.MaxMsgsPerSubject, 0), max(want.MaxMsgsPerSubject, 0))
}

// checkStreamNotLowered is checkLimitKept's lowering check for one stream found while
// creating it (another replica created it in between): it refuses to lower
// its limit while it holds entries.
func checkStreamNotLowered(info *jetstream.StreamInfo, want jetstream.StreamConfig) error {
	have := info.Config
	if limitLowered(have, want) && info.State.Msgs > 0 {
		return newError(ErrHistoryLowered, nil,
			"stream %q keeps max_msgs_per_subject %s and holds %d entries: lowering it to %d would make NATS discard the oldest entries of every subject at once, not only keys' oldest ones beyond the new limit (in herald's chat, rooms' older posts) but the changes and membership entries rooms are rebuilt from (deleted messages and removed members would come back); keep MaxMsgsPerSubject (--room-history) at %s or more",
			have.Name, fmtLimit(have.MaxMsgsPerSubject), info.State.Msgs, want.MaxMsgsPerSubject, fmtLimit(have.MaxMsgsPerSubject))
	}
	return nil
}

// ErrReplicasLowered means Options.Replicas is below the replica count of
// an existing stream or presence bucket. It wraps ErrStreamConflict.
var ErrReplicasLowered = fmt.Errorf("replica count lowered: %w", ErrStreamConflict)

// checkReplicasNotLowered refuses to lower an existing stream's replica
// count: the streams are shared by every replica, so one started without
// the count the others run with would take the whole log down to fewer
// copies (the loss of one NATS node could then lose it) under them.
// Raising it is allowed.
func checkReplicasNotLowered(have, want jetstream.StreamConfig) error {
	if h, w := max(have.Replicas, 1), max(want.Replicas, 1); w < h {
		return newError(ErrReplicasLowered, nil,
			"stream %q keeps %d replicas: Replicas %d would lower it for every replica using it; start with Replicas (--stream-replicas) %d",
			have.Name, h, w, h)
	}
	return nil
}

// ensureStream creates the stream when existing is nil, or reconciles
// existing with want. check vets a stream that turns out to exist after all.
func (l *Log) ensureStream(ctx context.Context, want jetstream.StreamConfig, existing jetstream.Stream, check func(jetstream.StreamConfig) error) (jetstream.Stream, error) {
	return l.ensureStreamAt(ctx, want, existing, check, time.Time{})
}

// ensureStreamAt is ensureStream where a stream created records floor as
// its epoch, unless floor is zero (see epoch.go); one found is left with
// the epoch it has, since its creator chose it.
func (l *Log) ensureStreamAt(ctx context.Context, want jetstream.StreamConfig, existing jetstream.Stream, check func(jetstream.StreamConfig) error, floor time.Time) (jetstream.Stream, error) {
	if existing != nil {
		return l.reconcile(ctx, existing, want)
	}
	create := withEpoch(want, floor)
	// A concurrent replica may create the stream between our look-up and our
	// create; go to the update path in that case.
	for attempt := 0; ; attempt++ {
		var s jetstream.Stream
		err := untilElected(ctx, l.log, "the creation of stream "+want.Name, func(ctx context.Context) error {
			var err error
			s, err = l.js.CreateStream(ctx, create)
			return err
		})
		if err == nil {
			args := []any{"name", want.Name, "subjects", want.Subjects, "replicas", want.Replicas,
				"max_msgs_per_subject", fmtLimit(want.MaxMsgsPerSubject), "duplicate_window", want.Duplicates}
			if !floor.IsZero() {
				// Created again, or after a set-up cut short: say so,
				// since clients' cursors expire.
				args = append(args, "epoch_floor", floor)
			}
			l.log.Info("created stream", args...)
			return s, nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt < 2 {
			s, lerr := l.lookUpStream(ctx, want.Name)
			if errors.Is(lerr, jetstream.ErrStreamNotFound) {
				continue // deleted again in between
			}
			if lerr != nil {
				return nil, fmt.Errorf("look up stream %q on %s: %w", want.Name, l.where, lerr)
			}
			if err := check(s.CachedInfo().Config); err != nil {
				return nil, err
			}
			return l.reconcile(ctx, s, want)
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeSubjectOverlap {
			other := "another stream"
			if names := l.streamsCapturing(ctx, want.Subjects); len(names) > 0 {
				other = fmt.Sprintf("stream %q", strings.Join(names, `", "`))
			}
			return nil, newError(ErrStreamConflict, err,
				"stream %q cannot be created on %s: its subjects %s overlap those of %s (%s): remove that stream, or give this log a NATS account of its own (the subjects do not depend on the stream name)",
				want.Name, l.where, fmtSubjects(want.Subjects), other, apiErr.Description)
		}
		if errors.As(err, &apiErr) {
			return nil, fmt.Errorf("create stream %q (subjects %s, replicas %d) on %s: the server refused: %s: %w",
				want.Name, fmtSubjects(want.Subjects), want.Replicas, l.where, apiErr.Description, err)
		}
		return nil, fmt.Errorf("create stream %q on %s: %w", want.Name, l.where, err)
	}
}

// streamsCapturing names the streams whose subjects overlap subjects; best
// effort, for error messages.
func (l *Log) streamsCapturing(ctx context.Context, subjects []string) []string {
	var names []string
	for _, subj := range subjects {
		lister := l.js.StreamNames(ctx, jetstream.WithStreamListSubject(subj))
		for name := range lister.Name() {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

// reconcile checks an existing stream against want and updates the settings
// this package owns when they differ; it refuses to lower the per-subject
// limit of a stream that holds entries (checkStreamNotLowered, after
// setupStreams' checkLimitKept) and any stream's replica count
// (checkReplicasNotLowered). Settings it does
// not own (MaxAge, MaxBytes, ...) are left as the operator set them, but
// the checks of Open refuse those that discard entries
// (checkDirectoryKeepsAll, checkPartitionKeepsSubjects).
func (l *Log) reconcile(ctx context.Context, s jetstream.Stream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	have := s.CachedInfo().Config
	if err := unusable(have, want); err != nil {
		return nil, err
	}
	if err := checkStreamNotLowered(s.CachedInfo(), want); err != nil {
		return nil, err
	}
	if err := checkReplicasNotLowered(have, want); err != nil {
		return nil, err
	}
	diffs := configDiffs(have, want)
	if len(diffs) == 0 {
		return s, nil
	}
	cfg := have
	cfg.Subjects = want.Subjects
	cfg.MaxMsgsPerSubject = want.MaxMsgsPerSubject
	cfg.Replicas = want.Replicas
	cfg.Duplicates = want.Duplicates
	cfg.Discard = want.Discard
	cfg.RePublish = want.RePublish
	// Keep metadata others (the server among them) put there.
	cfg.Metadata = maps.Clone(have.Metadata)
	if cfg.Metadata == nil {
		cfg.Metadata = make(map[string]string, len(want.Metadata))
	}
	maps.Copy(cfg.Metadata, want.Metadata)
	updated, err := l.js.UpdateStream(ctx, cfg)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			return nil, newError(ErrStreamConflict, err,
				"stream %q exists with a conflicting configuration: %s (herald tried to change %s; update the stream by hand or change these options)",
				want.Name, apiErr.Description, strings.Join(diffs, ", "))
		}
		return nil, fmt.Errorf("update stream %q (%s) on %s: %w", want.Name, strings.Join(diffs, ", "), l.where, err)
	}
	l.log.Info("updated stream configuration", "name", want.Name, "changes", strings.Join(diffs, ", "))
	return updated, nil
}

// unusable refuses an existing stream whose settings herald cannot use and
// cannot change.
func unusable(have, want jetstream.StreamConfig) error {
	switch {
	case have.Storage != want.Storage:
		return newError(ErrStreamConflict, nil,
			"stream %q exists with a conflicting configuration: storage is %s, herald needs %s (storage cannot be changed: delete the stream or configure another stream name)",
			want.Name, strings.ToLower(have.Storage.String()), strings.ToLower(want.Storage.String()))
	case have.Retention != want.Retention:
		return newError(ErrStreamConflict, nil,
			"stream %q exists with a conflicting configuration: retention is %s, herald needs %s (delete the stream or configure another stream name)",
			want.Name, have.Retention, want.Retention)
	case have.Mirror != nil:
		return newError(ErrStreamConflict, nil,
			"stream %q exists with a conflicting configuration: it is a mirror of %q and cannot be written to (configure another stream name)",
			want.Name, have.Mirror.Name)
	}
	return nil
}

// configDiffs lists, as "setting have -> want", the owned settings where
// have differs from want.
func configDiffs(have, want jetstream.StreamConfig) []string {
	var diffs []string
	if !sameSubjects(have.Subjects, want.Subjects) {
		diffs = append(diffs, fmt.Sprintf("subjects %s -> %s", fmtSubjects(have.Subjects), fmtSubjects(want.Subjects)))
	}
	if normLimit(have.MaxMsgsPerSubject) != normLimit(want.MaxMsgsPerSubject) {
		diffs = append(diffs, fmt.Sprintf("max_msgs_per_subject %s -> %s",
			fmtLimit(have.MaxMsgsPerSubject), fmtLimit(want.MaxMsgsPerSubject)))
	}
	if max(have.Replicas, 1) != max(want.Replicas, 1) {
		diffs = append(diffs, fmt.Sprintf("replicas %d -> %d", max(have.Replicas, 1), want.Replicas))
	}
	if have.Duplicates != want.Duplicates {
		diffs = append(diffs, fmt.Sprintf("duplicate_window %s -> %s", fmtDuration(have.Duplicates), fmtDuration(want.Duplicates)))
	}
	if have.Discard != want.Discard {
		diffs = append(diffs, fmt.Sprintf("discard %s -> %s", have.Discard, want.Discard))
	}
	if fmtRePublish(have.RePublish) != fmtRePublish(want.RePublish) {
		diffs = append(diffs, fmt.Sprintf("republish %s -> %s", fmtRePublish(have.RePublish), fmtRePublish(want.RePublish)))
	}
	for _, k := range slices.Sorted(maps.Keys(want.Metadata)) {
		if got, ok := have.Metadata[k]; !ok || got != want.Metadata[k] {
			diffs = append(diffs, fmt.Sprintf("metadata %s %q -> %q", k, got, want.Metadata[k]))
		}
	}
	return diffs
}

func fmtRePublish(r *jetstream.RePublish) string {
	if r == nil {
		return "none"
	}
	s := r.Source + " -> " + r.Destination
	if r.HeadersOnly {
		s += " (headers only)"
	}
	return "[" + s + "]"
}

func sameSubjects(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func fmtSubjects(s []string) string { return "[" + strings.Join(s, " ") + "]" }

// normLimit maps every "unlimited" spelling (0 or negative) to -1.
func normLimit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func fmtLimit(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "server default"
	}
	return d.String()
}

// checkNotLeftUnloaded refuses a stream of the log that the embedded server
// did not load although its directory is in the data dir: nats-server
// skips a stream whose files it cannot read, with a warning only (meta.inf
// and meta.sum disagree when a crash or a full disk came between its
// writes of the two). Creating it anew over those files would keep its
// entries under a new creation time, so every client's cursor would
// expire, and the checks of Open (the partition count, checkLimitKept)
// would have passed on a configuration they never saw. With external
// servers, their files are theirs to report.
func (l *Log) checkNotLeftUnloaded(name string) error {
	if l.emb == nil {
		return nil
	}
	srv := l.emb.current()
	if srv == nil || srv.StoreDir() == "" {
		return nil // restarting (storeWatch): Open fails on the requests it cannot send meanwhile
	}
	dir := filepath.Join(srv.StoreDir(), server.DEFAULT_GLOBAL_ACCOUNT, "streams", name)
	_, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("stream %q was not found on %s; look for its files at %s: %w", name, l.where, dir, err)
	}
	return fmt.Errorf("stream %q is in the data dir (%s) but the embedded NATS server could not load it (see its warning logged above, such as \"checksums do not match\" when a crash or a full disk came between its writes of meta.inf and meta.sum): herald will not create the stream anew over its files, which would expire every client's cursor; restore the directory from a backup, or move it out of the data dir to have the stream created empty (its entries are then lost)",
		name, dir)
}

// CheckLimitInForce refuses to go on when the partitions' per-subject limit
// is no longer the one Open left in force (MaxMsgsPerSubject), which this
// replica judges by: a replica that opened the log with another limit
// before this one was alive (before its Presence liveness key was written)
// changed it. Called once this replica's liveness key is written, so any
// later Open that would change the limit sees it alive and is refused.
func (l *Log) CheckLimitInForce(ctx context.Context) error {
	for k, s := range l.parts {
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("check the per-subject limit in force: stream %q info: %w", l.lay.partStreams[k], err)
		}
		if have := max(info.Config.MaxMsgsPerSubject, 0); have != l.maxPerSubject {
			err := ErrHistoryRaised
			if higherLimit(l.maxPerSubject, have) {
				err = ErrHistoryLowered
			}
			return newError(err, nil,
				"stream %q keeps max_msgs_per_subject %s, but this replica opened the event log with %s: a replica starting at the same time changed it; start with MaxMsgsPerSubject (--room-history) %s, or stop every replica and start them all with one value",
				info.Config.Name, fmtLimit(have), fmtLimit(l.maxPerSubject), fmtLimit(have))
		}
	}
	return nil
}
