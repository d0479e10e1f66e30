package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream API error codes for a failed expected-last-sequence check
// (nats-server jetstream_errors_generated.go).
const (
	// jsErrCodeWrongLastSeq is JSStreamWrongLastSequenceErrF, "wrong last
	// sequence: {seq}", carrying the actual last sequence.
	jsErrCodeWrongLastSeq jetstream.ErrorCode = 10071
	// jsErrCodeWrongLastSeqConstant is JSStreamWrongLastSequenceConstantErr,
	// "wrong last sequence", which a clustered stream answers while another
	// expected-write on the same subject is being proposed.
	jsErrCodeWrongLastSeqConstant jetstream.ErrorCode = 10164
)

// wrongLastSeqPrefix starts the description of jsErrCodeWrongLastSeq.
const wrongLastSeqPrefix = "wrong last sequence: "

// JetStream API error codes with which a stream answers a publish it
// refused before writing anything (nats-server jetstream_errors_generated.go;
// stream.go, processJetStreamMsg). A store that failed without an answer
// (an I/O error), or a write whose answer did not come, may have been
// stored; these were not. Not among them: the expected-last-sequence
// refusals (wrongLastSeq, a conflict), and "duplicate message id is in
// process" (10158), whose original write may yet be stored.
const (
	// jsErrCodeInsufficientResources is JSInsufficientResourcesErr: the
	// server's JetStream store is at its max_file_store (or memory) limit.
	jsErrCodeInsufficientResources jetstream.ErrorCode = 10023
	// jsErrCodeAccountResources is JSAccountResourcesExceededErr: the
	// account's JetStream limits.
	jsErrCodeAccountResources jetstream.ErrorCode = 10002
	// jsErrCodeStoreFailed is JSStreamStoreFailedF, answered only for a
	// stream at its maximum bytes, messages or messages per subject with
	// discard new, a message too large for the store, or a store closed.
	jsErrCodeStoreFailed jetstream.ErrorCode = 10077
	// jsErrCodeMessageTooLarge is JSStreamMessageExceedsMaximumErr: the
	// stream's max_msg_size or the server's max_payload.
	jsErrCodeMessageTooLarge jetstream.ErrorCode = 10054
	// jsErrCodeHeadersTooLarge is JSStreamHeaderExceedsMaximumErr.
	jsErrCodeHeadersTooLarge jetstream.ErrorCode = 10097
	// jsErrCodeSealed is JSStreamSealedErr: the stream takes no writes.
	jsErrCodeSealed jetstream.ErrorCode = 10109
)

// refused reports whether err is a publish the event log refused outright,
// storing nothing, and why.
func refused(err error) (why string, ok bool) {
	if errors.Is(err, nats.ErrMaxPayload) { // checked by the client: not sent
		return "message too large", true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return "", false
	}
	switch apiErr.ErrorCode {
	case jsErrCodeInsufficientResources, jsErrCodeAccountResources:
		return "out of storage", true
	case jsErrCodeStoreFailed:
		return "at a limit of the stream", true
	case jsErrCodeMessageTooLarge, jsErrCodeHeadersTooLarge:
		return "message too large", true
	case jsErrCodeSealed:
		return "the stream is sealed", true
	}
	return "", false
}

// Reading a key or the legacy stream.
const (
	// readBatch is how many entries one pull request asks for.
	readBatch = 2048
	// readInactiveThreshold lets the server remove a read consumer whose
	// clean-up never came (the process died mid-read).
	readInactiveThreshold = time.Minute
	// readMaxEmptyBatches bounds pull requests in a row that brought nothing
	// although the consumer said entries were pending.
	readMaxEmptyBatches = 3
	// A read consumer is placed on one of its stream's replicas, which may
	// be another NATS node than the one this process is connected to. That
	// node knows of the consumer only once its interest has crossed the
	// route, which can be after the answer to the creation: a pull request
	// sent meanwhile is answered "no responders" (a CI run saw it right
	// after a leader election). Until interestWait after the consumer's
	// creation, and while nothing has come, such a request is sent again
	// every interestRetry.
	interestWait  = time.Second
	interestRetry = 20 * time.Millisecond
	// A read consumer's replica may not have stored yet what the stream's
	// leader had acknowledged when the read began (see Log.read). While
	// it has not, the read asks again every replicaLagRetry; after
	// replicaLagSwitch it creates the consumer again, on a replica chosen
	// anew. After replicaLagWait it asks the leader whether those entries
	// are still there, and fails if they are.
	replicaLagRetry  = 10 * time.Millisecond
	replicaLagSwitch = 250 * time.Millisecond
	replicaLagWait   = 5 * time.Second
	// laggingReadBatch is the fewest entries a pull request of a read on a
	// replicated stream may ask for, when its consumer's replica said at
	// creation that fewer were pending than the leader holds.
	laggingReadBatch = 64
)

// Retrying AddToDirectory while another add of the same key is in flight.
const (
	addRetryFirst = 5 * time.Millisecond
	addRetryMax   = 100 * time.Millisecond
	// addTimeout bounds AddToDirectory, retries included, when its ctx
	// has no deadline.
	addTimeout = 5 * time.Second
)

// wrongLastSeq reports whether err is the server refusing an expected last
// sequence; last is the sequence it reported, if it did (lastKnown).
func wrongLastSeq(err error) (last uint64, lastKnown, ok bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return 0, false, false
	}
	switch apiErr.ErrorCode {
	case jsErrCodeWrongLastSeq:
		num, found := strings.CutPrefix(apiErr.Description, wrongLastSeqPrefix)
		if !found {
			return 0, false, true
		}
		n, perr := strconv.ParseUint(num, 10, 64)
		if perr != nil {
			return 0, false, true
		}
		return n, true, true
	case jsErrCodeWrongLastSeqConstant:
		return 0, false, true
	}
	return 0, false, false
}

// publish stores data on subject and checks that stream stored it. what
// describes the write for error messages; it is called only on failure, so
// that a successful write formats nothing. Errors from the server are
// wrapped with %w so callers can inspect them.
//
// There is no connection check first: publishing fails at once while NATS is
// disconnected (there is no reconnect buffer: nats.ErrReconnectBufExceeded,
// nothing sent), and the check would take the connection's lock once more
// per event, contended under load. Only that failure, and no stream
// answering at all (jetstream.ErrNoStreamResponse), are ErrUnreachable: a
// publish that failed after it went out (its acknowledgement late, the
// connection dropped while it waited) may have been stored. A stream that
// answers with a refusal (its store full, a limit reached: see refusals)
// stored nothing: ErrRefused.
//
// The stream is checked in the acknowledgement rather than with an
// expected-stream header, which would cost every event a header the server
// has to parse.
func (l *Log) publish(ctx context.Context, what func() string, subject, stream string, data []byte,
	popts ...jetstream.PublishOpt,
) (*jetstream.PubAck, error) {
	if ferr := l.storeFailure(); ferr != nil {
		// The embedded server's JetStream is stopped: a publish sent now
		// may be taken and never answered, waiting out ctx. It fails at
		// once, storing nothing, as reads do (storeStopped).
		return nil, newError(ErrUnreachable, ferr, "%s: %v", what(), ferr)
	}
	ack, err := l.js.Publish(ctx, subject, data, popts...)
	if err != nil {
		if errors.Is(err, nats.ErrReconnectBufExceeded) { // disconnected: not sent
			return nil, newError(ErrUnreachable, err, "%s: NATS disconnected (%s): %v", what(), l.nc.Status(), err)
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) { // no stream took it (no leader): not stored
			if ferr := l.storeFailure(); ferr != nil { // the embedded server's JetStream is stopped
				return nil, newError(ErrUnreachable, err, "%s: no stream answered: %v", what(), ferr)
			}
			return nil, newError(ErrUnreachable, err, "%s: no stream answered (is it electing a leader?): %v", what(), err)
		}
		if why, ok := refused(err); ok {
			return nil, newError(ErrRefused, err, "%s: refused by stream %q, nothing stored (%s): %v", what(), stream, why, err)
		}
		return nil, err
	}
	if ack.Stream != stream {
		return nil, fmt.Errorf("%s: stored by stream %q, not %q: another stream captures subject %q",
			what(), ack.Stream, stream, subject)
	}
	return ack, nil
}

// AddToDirectory stores the directory entry of key (subject
// herald-rooms.<key>) unless key already has one. A key has at most one
// directory entry, ever: when it has one, the error wraps ErrKeyExists, and
// of two callers racing to add the same key exactly one succeeds.
//
// There is no de-duplication: a retry after an add whose outcome was unknown
// (a timeout) reports ErrKeyExists when the first attempt did store it;
// read the directory to tell.
//
// AddToDirectory fails at once, wrapping ErrUnreachable, while NATS is
// disconnected; otherwise it waits for the stream's acknowledgement, bounded
// by ctx (or by a 5s default when ctx has no deadline), retries included. An
// add the stream refuses, storing nothing (its store full, say), wraps
// ErrRefused.
func (l *Log) AddToDirectory(ctx context.Context, key string, data []byte) (AppendResult, error) {
	if err := checkKey(key); err != nil {
		return AppendResult{}, fmt.Errorf("add key to the directory: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		// Each publish has nats.go's own 5s default, but the retries below
		// would go on for as long as a cluster keeps answering "another
		// add in flight".
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.addTimeout)
		defer cancel()
	}
	subject := directoryPrefix + key
	what := func() string { return fmt.Sprintf("add key %q to the directory", key) }
	wait := addRetryFirst
	for {
		ack, err := l.publish(ctx, what, subject, l.lay.dirStream, data, jetstream.WithExpectLastSequencePerSubject(0))
		if err == nil {
			return AppendResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
		}
		last, lastKnown, conflict := wrongLastSeq(err)
		switch {
		case conflict && lastKnown:
			return AppendResult{}, newError(ErrKeyExists, err, "%s: the key already has an entry (seq %d)", what(), last)
		case conflict:
			// A clustered stream refuses an add while another add of the
			// same key is being proposed, before knowing whether that one
			// succeeds: ask again until there is an answer, so that exactly
			// one of the racing callers wins.
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return AppendResult{}, fmt.Errorf("%s: another add of the key was in flight and ctx ended before it settled: %w", what(), ctx.Err())
			case <-timer.C:
			}
			wait = min(2*wait, addRetryMax)
		case errors.Is(err, ErrUnreachable), errors.Is(err, ErrRefused): // say what() already
			return AppendResult{}, err
		default:
			return AppendResult{}, fmt.Errorf("%s: %w", what(), err)
		}
	}
}

// DirectoryLastSeq returns the sequence of the directory stream's last
// entry (0 if it holds none).
//
// It asks the stream's leader (lastSeqMatching), not for the stream's info:
// a member of the stream's group that finds the group leaderless (cut off
// from the others, or they are down) answers a stream info request itself,
// with what it holds, which may lie far behind the directory; the message
// get fails then instead. A purged directory (ResetLayout) keeps its last
// sequence, but no entry will ever be read at it, and a reader waiting to
// reach it (a replica becoming ready) would wait for good: it holds no
// entry, so this returns 0.
func (l *Log) DirectoryLastSeq(ctx context.Context) (uint64, error) {
	seq, err := l.lastSeqMatching(ctx, l.lay.dirStream, ">")
	if err != nil {
		return 0, l.requestErr(err, "read last sequence of stream %q", l.lay.dirStream)
	}
	return seq, nil
}

// AppendOptions are AppendKeyed's options.
type AppendOptions struct {
	// DedupID is sent as the Nats-Msg-Id header: a second append with the
	// same DedupID within the duplicate window is not stored again and
	// reports Duplicate with the original sequence. "" = no de-duplication.
	DedupID string
	// ExpectLast is the key's last sequence over all its subjects; 0 means
	// the key has no entries yet.
	ExpectLast uint64
}

// AppendKeyed stores data on subject herald-p<k>.<key>.<rest> of key's
// partition k, provided key's last sequence over all its subjects
// (herald-p<k>.<key>.>) is o.ExpectLast. Otherwise it stores nothing and
// returns a *ConflictError (wrapping ErrConflict). Keys are independent: a
// write to another key of the same partition is no conflict.
//
// The expected-sequence check and de-duplication interact, and how depends
// on the server. A stream on a single, non-clustered server (the embedded
// one) checks the expected sequence first: a retry with the same DedupID and
// the same, now stale, ExpectLast gets a *ConflictError (Last = the retried
// append's own sequence, if nothing came after it), and only a retry with
// ExpectLast set to the key's current last reports Duplicate. A clustered
// stream de-duplicates first, so there the retry reports Duplicate at once,
// or, while the original is still being proposed, fails with "duplicate
// message id is in process" (JetStream error code 10158, not a conflict).
// A clustered stream also refuses an expected-write while another one on the
// same key is being proposed: a *ConflictError whose Last is 0.
//
// AppendKeyed fails at once, wrapping ErrUnreachable, while NATS is
// disconnected; otherwise it waits for the stream's acknowledgement, bounded
// by ctx (or by a 5s default when ctx has no deadline). A write the stream
// refuses, storing nothing (its store full, say), wraps ErrRefused.
func (l *Log) AppendKeyed(ctx context.Context, key, rest string, data []byte, o AppendOptions) (AppendResult, error) {
	if err := checkKey(key); err != nil {
		return AppendResult{}, fmt.Errorf("append to key: %w", err)
	}
	if err := checkRest(rest); err != nil {
		return AppendResult{}, fmt.Errorf("append to key %q: %w", key, err)
	}
	k := l.PartitionOf(key)
	subject := l.lay.keySubject(k, key, rest)
	popts := make([]jetstream.PublishOpt, 0, 2)
	popts = append(popts, jetstream.WithExpectLastSequenceForSubject(o.ExpectLast, l.lay.keyFilter(k, key)))
	if o.DedupID != "" {
		popts = append(popts, jetstream.WithMsgID(o.DedupID))
	}
	what := func() string { return fmt.Sprintf("append to key %q (subject %q)", key, subject) }
	ack, err := l.publish(ctx, what, subject, l.lay.partStreams[k], data, popts...)
	if err != nil {
		if last, lastKnown, conflict := wrongLastSeq(err); conflict {
			return AppendResult{}, &ConflictError{Key: key, Expected: o.ExpectLast, Last: last, lastKnown: lastKnown}
		}
		if errors.Is(err, ErrUnreachable) || errors.Is(err, ErrRefused) { // say what() already
			return AppendResult{}, err
		}
		return AppendResult{}, fmt.Errorf("%s: %w", what(), err)
	}
	return AppendResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// KeyLastSeq returns the sequence of key's last entry (over every subject
// herald-p<k>.<key>.>), or 0 when it has none: one request, no consumer.
// A replica that applies a key's entries as they come learns from it
// whether it is behind the log.
func (l *Log) KeyLastSeq(ctx context.Context, key string) (uint64, error) {
	if err := checkKey(key); err != nil {
		return 0, fmt.Errorf("read the last sequence of a key: %w", err)
	}
	k := l.PartitionOf(key)
	filter := l.lay.keyFilter(k, key)
	seq, err := l.lastSeqMatching(ctx, l.lay.partStreams[k], filter)
	if err != nil {
		return 0, l.requestErr(err, "read the last sequence of %s in stream %q", filter, l.lay.partStreams[k])
	}
	return seq, nil
}

// ReadKey calls fn, in order and one at a time, for every retained entry of
// key (every subject herald-p<k>.<key>.>) with Seq >= fromSeq (0 or 1 = from
// the first), up to at least the key's last entry when ReadKey started. It
// returns the Seq of the last entry passed to fn (0 if none). A key without
// entries costs two requests (create and delete a consumer), and one more
// (the key's last sequence, asked of the stream's leader) when NATS is
// clustered (the streams are replicated, or may be made so while this Log
// is open).
//
// If fn returns an error, ReadKey returns it wrapped with the sequence, and
// the sequence of the last entry fn accepted.
func (l *Log) ReadKey(ctx context.Context, key string, fromSeq uint64, fn func(Entry) error) (last uint64, err error) {
	if err := checkKey(key); err != nil {
		return 0, fmt.Errorf("read key: %w", err)
	}
	k := l.PartitionOf(key)
	return l.read(ctx, l.parts[k], l.lay.partStreams[k], l.lay.keyFilter(k, key), fromSeq, partitionEntry, fn)
}

// read calls fn for the entries of stream matching filter ("" = all) from
// fromSeq on, up to at least the last one when read started, and returns the
// last sequence passed to fn.
//
// A consumer of one replica is served by one of the stream's replicas,
// chosen at random, not by its leader, and counts what is pending from
// what that replica stored: a replica that has not stored the latest
// acknowledged entries yet (one of three may lag its leader a moment, and
// a restarted one catches up for longer) would end the read before them.
// So, when the stream is replicated, read first asks the leader for the
// last matching sequence (until), and goes on until it has handed out
// that one: it waits for the replica to store it, and creates the
// consumer again after what it handed out when the replica takes longer
// than replicaLagSwitch (readFrom, drain).
//
// It uses an ephemeral pull consumer configured like nats.go's ordered
// consumer (no acks, one replica, in memory), drained with no-wait pull
// requests: each request returns at once with what is there, so the end of
// the entries is noticed without waiting for an expiry, and every network
// wait is bounded, by ctx and by readIdle. The consumer says at creation how
// many entries match; read stops when it has delivered that many, or when an
// entry says none are pending after it (retention may have discarded some
// meanwhile). nats.go's ordered consumer is not used: every fetch on it
// creates a new consumer and deletes the old one from a goroutine of its own.
// Nor is jetstream's Fetch: it subscribes anew and starts a goroutine for
// every request, and parses each entry's metadata into a new value; the
// pull requests are sent here by hand, their replies read from one
// subscription, and the reply subjects parsed in place.
func (l *Log) read(ctx context.Context, stream jetstream.Stream, name, filter string, fromSeq uint64,
	toEntry entryMaker, fn func(Entry) error,
) (uint64, error) {
	what := fmt.Sprintf("read stream %q", name)
	if filter != "" {
		what = fmt.Sprintf("read %s from stream %q", filter, name)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	var until uint64
	// A stream Open found with one replica may have been given more since
	// (another replica opened the log with a higher Replicas), whose new
	// peers catch up from nothing while this one's cached info still says
	// one: on a cluster, always ask the leader.
	if replicated(stream) || l.nc.ConnectedClusterName() != "" {
		last, err := l.lastSeqMatching(ctx, name, filterOrAll(filter))
		if err != nil {
			return 0, l.requestErr(err, "%s: ask the stream's leader for the last entry", what)
		}
		if last >= max(fromSeq, 1) {
			until = last
		}
	}
	d := &delivery{what: what, until: until, toEntry: toEntry, fn: fn}
	err := l.readOn(ctx, d, fromSeq,
		func(from uint64) error { return l.readFrom(ctx, stream, name, filter, from, d) },
		func() (uint64, error) { return l.lastSeqMatching(ctx, name, filterOrAll(filter)) })
	return d.last, err
}

// readOn reads for d from fromSeq on with readFrom, which reads with a
// consumer of its own, and again after what d handed out while readFrom
// finds its consumer's replica lagging, for up to l.lagWait; then it asks
// the stream's leader (leaderLast) how far d must go (replicasBehind).
func (l *Log) readOn(ctx context.Context, d *delivery, fromSeq uint64,
	readFrom func(from uint64) error, leaderLast func() (uint64, error),
) error {
	var lagging time.Time // when the first consumer was found behind d.until
	for {
		from := fromSeq
		if d.last != 0 {
			from = d.last + 1
		}
		err := readFrom(from)
		if !errors.Is(err, errReplicaLags) {
			return err
		}
		if lagging.IsZero() {
			lagging = time.Now()
		}
		if time.Since(lagging) >= l.lagWait {
			last, err := leaderLast()
			if err != nil {
				return l.requestErr(err, "%s after seq %d: ask the stream's leader for the last entry", d.what, d.last)
			}
			return replicasBehind(d, last, l.lagWait)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s after seq %d: %w", d.what, d.last, err)
		}
		l.log.Debug("read: the consumer's replica has not stored what the stream's leader holds; creating the consumer again",
			"read", d.what, "after", d.last, "until", d.until)
	}
}

// readFrom reads on from sequence from for d with a consumer of its own,
// until d is done, or the consumer's replica lags (errReplicaLags).
func (l *Log) readFrom(ctx context.Context, stream jetstream.Stream, name, filter string, from uint64, d *delivery) error {
	cons, err := l.createEphemeral(ctx, stream, name, ephemeralConfig(filter, from, readInactiveThreshold))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: create consumer: %w", d.what, ctx.Err())
		}
		return l.requestErr(err, "%s: create consumer", d.what)
	}
	defer l.deleteConsumer(ctx, name, cons)

	info := cons.CachedInfo()
	if info.NumPending == 0 && d.last >= d.until {
		return nil
	}
	batch := min(info.NumPending, readBatch)
	if d.until != 0 {
		batch = min(max(batch, laggingReadBatch), readBatch)
	}
	p, err := newPuller(l.nc, name, info.Name, batch)
	if err != nil {
		return l.requestErr(err, "%s", d.what)
	}
	defer p.close()
	d.dseq, d.pending = 0, d.delivered+info.NumPending
	_, err = l.drain(ctx, cons, p, d)
	return err
}

// replicasBehind is what a read that found its consumers' replicas
// behind until for wait ends with, once the stream's leader said its last
// matching entry is last: done, if that is no later than what d handed
// out (the entries after it are gone: retention or a purge); otherwise an
// error.
func replicasBehind(d *delivery, last uint64, wait time.Duration) error {
	if last <= d.last {
		return nil
	}
	return fmt.Errorf("%s after seq %d: the consumers' replicas of the stream have not stored seq %d, which the stream's leader holds, in %s; read again",
		d.what, d.last, last, wait)
}

// replicated reports whether stream keeps more than one replica, as Open
// found it.
func replicated(stream jetstream.Stream) bool {
	info := stream.CachedInfo()
	return info != nil && info.Config.Replicas > 1
}

// filterOrAll is filter, or the filter matching every subject for "".
func filterOrAll(filter string) string {
	if filter == "" {
		return ">"
	}
	return filter
}

// drain pulls the entries of cons, with p, and hands them to d until d is
// done, or cons says none are pending after a pull request brought none
// and d has reached d.until (see read). While cons lacks entries up to
// d.until, drain asks again every replicaLagRetry; after l.lagSwitch it
// returns errReplicaLags. It returns the last sequence d handed out.
func (l *Log) drain(ctx context.Context, cons jetstream.Consumer, p *puller, d *delivery) (uint64, error) {
	var lagging time.Time // when cons was first found behind d.until
	for empty := 0; ; {
		n, done, err := l.readBatch(ctx, p, d)
		if err != nil || done {
			return d.last, err
		}
		if err := ctx.Err(); err != nil {
			return d.last, fmt.Errorf("%s after seq %d: %w", d.what, d.last, err)
		}
		if n > 0 {
			empty = 0
			continue
		}
		// Nothing came: retention may have discarded what was pending, or
		// the request got lost. Ask the consumer.
		info, err := cons.Info(ctx)
		if err != nil {
			return d.last, l.requestErr(err, "%s after seq %d: consumer info", d.what, d.last)
		}
		if info.Delivered.Consumer > d.dseq {
			// The consumer sent entries that never came (the connection
			// broke, and came back before the next request): they count
			// as delivered, so they will not come again.
			return d.last, fmt.Errorf("%s after seq %d: deliveries %d to %d never arrived: lost in transit; read again",
				d.what, d.last, d.dseq+1, info.Delivered.Consumer)
		}
		// What the consumer has now: entries its replica stored since.
		d.pending = d.delivered + info.NumPending
		if info.NumPending == 0 {
			if d.last >= d.until {
				return d.last, nil
			}
			if lagging.IsZero() {
				lagging = time.Now()
			}
			if err := l.awaitReplica(ctx, d, lagging); err != nil {
				return d.last, err
			}
			continue
		}
		if empty++; empty >= readMaxEmptyBatches {
			return d.last, fmt.Errorf("%s after seq %d: %d entries pending but %d pull requests in a row brought none",
				d.what, d.last, info.NumPending, empty)
		}
	}
}

// errReplicaLags is drain's when the replica serving its consumer has not
// stored the entries up to d.until for l.lagSwitch.
var errReplicaLags = errors.New("the consumer's replica has not stored what the stream's leader holds")

// awaitReplica waits replicaLagRetry for the replica serving a read to store
// the entries up to d.until, which it lacks since lagging, or returns
// errReplicaLags once it has lacked them for l.lagSwitch.
func (l *Log) awaitReplica(ctx context.Context, d *delivery, lagging time.Time) error {
	if time.Since(lagging) >= l.lagSwitch {
		return fmt.Errorf("%s after seq %d: seq %d: %w", d.what, d.last, d.until, errReplicaLags)
	}
	pause := time.NewTimer(replicaLagRetry)
	defer pause.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("%s after seq %d: waiting for the consumer's replica to store seq %d: %w", d.what, d.last, d.until, ctx.Err())
	case <-pause.C:
		return nil
	}
}

// readBatch is pullBatch, sent again while the consumer, just created, is
// not known yet to the NATS node this process is connected to (see
// interestWait).
func (l *Log) readBatch(ctx context.Context, p *puller, d *delivery) (uint64, bool, error) {
	for {
		n, done, err := l.pullBatch(ctx, p, d)
		if !errors.Is(err, nats.ErrNoResponders) || !p.unknownYet(d.delivered > 0) {
			return n, done, err
		}
		l.log.Debug("read: pull request found no responders just after the consumer's creation; sending it again", "read", d.what, "err", err)
		retry := time.NewTimer(interestRetry)
		select {
		case <-ctx.Done():
			retry.Stop()
			return 0, false, fmt.Errorf("%s after seq %d: %w", d.what, d.last, ctx.Err())
		case <-retry.C:
		}
	}
}

// pullBatch sends one pull request and hands the entries it brings to d,
// until it brought all it asked for, the server says there are no more
// now, or no reply came for readIdle. It returns how many entries came and
// whether d is done.
func (l *Log) pullBatch(ctx context.Context, p *puller, d *delivery) (n uint64, done bool, err error) {
	// Once the consumer's count is spent, d may still wait for entries
	// its replica had not stored (d.until): ask for a full batch.
	want := p.batch
	if d.pending > d.delivered {
		want = min(d.pending-d.delivered, p.batch)
	}
	if err := p.request(want); err != nil {
		return 0, false, l.requestErr(err, "%s after seq %d: pull", d.what, d.last)
	}
	for n < want {
		msg, err := p.next(ctx)
		switch {
		case errors.Is(err, errIdle):
			return n, false, nil
		case err != nil:
			return n, false, fmt.Errorf("%s after seq %d: %w", d.what, d.last, err)
		}
		if code, ok := statusOf(msg); ok {
			if msg.Subject != p.reply {
				continue // to a request given up on
			}
			end, err := pullStatus(code, msg.Header.Get(descrHeader))
			if err != nil {
				return n, false, l.requestErr(err, "%s after seq %d", d.what, d.last)
			}
			if end {
				return n, false, nil
			}
			continue
		}
		n++
		if done, err := d.take(msg); done || err != nil {
			return n, done, err
		}
	}
	return n, false, nil
}

// delivery is where a read is: what it handed to fn so far.
type delivery struct {
	what    string // the read, for errors
	pending uint64 // entries the consumer had when it was created, or when last asked
	until   uint64 // the last matching entry on the stream's leader when the read began; 0: none to wait for
	toEntry entryMaker
	fn      func(Entry) error

	delivered uint64 // entries passed to fn
	dseq      uint64 // consumer sequence of the last one
	last      uint64 // stream sequence of the last one fn accepted
}

// take passes the entry msg to fn, after checking that it is the delivery
// after the previous one, and reports whether the read is done.
func (d *delivery) take(msg *nats.Msg) (done bool, err error) {
	ack, err := parseAckReply(msg.Reply)
	if err != nil {
		return false, fmt.Errorf("%s after seq %d: read message metadata: %w", d.what, d.last, err)
	}
	if ack.consumerSeq != d.dseq+1 {
		// Nothing is acknowledged or redelivered, so a jump means an entry
		// was lost on the way. Do not hand out a gap.
		return false, fmt.Errorf("%s after seq %d: delivery %d arrived after %d: an entry was lost in transit; read again",
			d.what, d.last, ack.consumerSeq, d.dseq)
	}
	d.dseq = ack.consumerSeq
	d.delivered++
	if err := d.fn(d.toEntry(msg.Subject, ack.streamSeq, msg.Data, time.Unix(0, ack.stored).UTC())); err != nil {
		return false, fmt.Errorf("%s: handle seq %d: %w", d.what, ack.streamSeq, err)
	}
	d.last = ack.streamSeq
	return (d.delivered >= d.pending || ack.pending == 0) && d.last >= d.until, nil
}

// requestErr wraps the error of a JetStream request, saying so (and
// wrapping ErrUnreachable) when NATS is disconnected.
func (l *Log) requestErr(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, ErrUnreachable) { // says why already (storeStopped)
		return fmt.Errorf("%s: %w", what, err)
	}
	if ferr := l.storeFailure(); ferr != nil {
		return newError(ErrUnreachable, err, "%s: %v: %v", what, ferr, err)
	}
	if !l.nc.IsConnected() {
		return newError(ErrUnreachable, err, "%s: NATS disconnected (%s): %v", what, l.nc.Status(), err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
