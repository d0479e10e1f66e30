package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// deleteConsumerTimeout bounds the clean-up of a consumer.
const deleteConsumerTimeout = 2 * time.Second

// followHeartbeat is the idle heartbeat of FollowDirectory's pull requests.
const followHeartbeat = time.Second

// FollowDirectory calls fn for every directory entry from sequence fromSeq
// on, in stream order and one at a time, then keeps calling it for entries
// added later. fromSeq 0 or 1 means from the first entry still retained.
//
// FollowDirectory uses a single ordered JetStream consumer. When the
// connection to NATS is lost and comes back, the consumer is re-created
// after the last entry delivered: fn never sees a sequence twice, and sees
// every retained sequence after fromSeq.
//
// FollowDirectory blocks until:
//   - ctx is done: it returns ctx.Err() (never nil);
//   - fn returns an error: it returns that error, wrapped with the sequence;
//   - the log is closed or the consumer cannot continue: it returns an error
//     saying so.
//
// Cancelling ctx makes FollowDirectory return promptly, also while NATS is
// disconnected. The one exception is while the consumer is being re-created
// (after a reconnect, when JetStream does not answer): it then returns once
// the current attempt ends, within about 20s. It returns only after
// everything it started has stopped; if fn blocks, it waits for it.
func (l *Log) FollowDirectory(ctx context.Context, fromSeq uint64, fn func(Entry) error) error {
	return l.follow(ctx, l.dir, l.lay.dirStream, "", fromSeq, directoryEntry, fn)
}

// FollowRest is FollowDirectory for partition k's entries, of every key,
// whose rest (the part of the subject after the key) is rest, which may
// end with the wildcard ">" (e.g. "member.>"). Only those entries reach
// the replica; the partition's server scans the rest of the stream for
// them. A rest that is not dot-separated tokens of a-z, 0-9 and _
// (optionally followed by ".>", or ">" alone), or longer than 256 bytes,
// is refused.
func (l *Log) FollowRest(ctx context.Context, k int, rest string, fromSeq uint64, fn func(Entry) error) error {
	if k < 0 || k >= l.lay.partitions {
		return fmt.Errorf("follow partition %d: the log has %d partitions", k, l.lay.partitions)
	}
	if err := checkRestFilter(rest); err != nil {
		return fmt.Errorf("follow partition %d: %w", k, err)
	}
	return l.follow(ctx, l.parts[k], l.lay.partStreams[k], l.lay.partPrefix[k]+"*."+rest, fromSeq, partitionEntry, fn)
}

// RestLastSeq returns the sequence of partition k's last entry, of any
// key, whose rest matches rest (which may end with the wildcard ">", as in
// FollowRest), or 0 when it holds none: where FollowRest of the same rest
// has delivered everything stored before the call. The partition's own
// last sequence is no such bound: FollowRest never delivers the entries of
// other rests that may lie after the last matching one. A rest FollowRest
// refuses is refused.
func (l *Log) RestLastSeq(ctx context.Context, k int, rest string) (uint64, error) {
	if k < 0 || k >= l.lay.partitions {
		return 0, fmt.Errorf("partition %d: the log has %d partitions", k, l.lay.partitions)
	}
	if err := checkRestFilter(rest); err != nil {
		return 0, fmt.Errorf("read the last sequence of partition %d: %w", k, err)
	}
	filter := l.lay.partPrefix[k] + "*." + rest
	seq, err := l.lastSeqMatching(ctx, l.lay.partStreams[k], filter)
	if err != nil {
		return 0, l.requestErr(err, "read the last sequence of %s in stream %q", filter, l.lay.partStreams[k])
	}
	return seq, nil
}

// msgGetPrefix is the JetStream API's (not the direct) message get, which
// takes a wildcard filter in last_by_subj.
const msgGetPrefix = jsAPIPrefix + "STREAM.MSG.GET."

// lastSeqMatching asks stream for its last entry whose subject matches
// filter, and returns its sequence (0 when none matches). It does not use
// jetstream.Stream.GetLastMsgForSubject, which turns to the direct get when
// an operator allowed it, whose request subject cannot carry a wildcard.
func (l *Log) lastSeqMatching(ctx context.Context, stream, filter string) (uint64, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, lastSeqTimeout)
		defer cancel()
	}
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{filter})
	if err != nil {
		return 0, err
	}
	msg, err := l.nc.RequestWithContext(ctx, msgGetPrefix+stream, req)
	if err != nil {
		return 0, err
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return 0, fmt.Errorf("malformed answer: %w", err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, nil
	case resp.Error != nil:
		return 0, resp.Error
	case resp.Message == nil:
		return 0, errors.New("malformed answer: no message")
	}
	return resp.Message.Seq, nil
}

// lastSeqTimeout bounds RestLastSeq when its ctx has no deadline.
const lastSeqTimeout = 5 * time.Second

// follow is FollowDirectory on any stream, of the subjects filter matches
// ("" for all); toEntry makes the entries.
func (l *Log) follow(ctx context.Context, stream jetstream.Stream, name, filter string, fromSeq uint64,
	toEntry entryMaker, fn func(Entry) error,
) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if filter != "" {
		cfg.FilterSubjects = []string{filter}
	}
	if fromSeq > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = fromSeq
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("follow stream %q from seq %d: create consumer: %w", name, fromSeq, err)
	}
	// A 1s heartbeat (nats.go's default is 5s, replaced after two misses)
	// makes a consumer silenced by a lost NATS node be re-created in about
	// 2s instead of 10s, during which this replica would apply nothing.
	it, err := cons.Messages(jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		l.deleteConsumer(ctx, name, cons)
		return fmt.Errorf("follow stream %q from seq %d: start consumer: %w", name, fromSeq, err)
	}

	// Next honours ctx by itself, except while the ordered consumer is
	// re-creating itself after a disconnect; stopping the iterator ends that.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stop:
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		it.Stop()
		l.deleteConsumer(ctx, name, cons)
	}()

	var last uint64 // highest sequence passed to fn, or fromSeq-1
	if fromSeq > 0 {
		last = fromSeq - 1
	}
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if l.nc.IsClosed() {
				return fmt.Errorf("follow stream %q after seq %d: connection closed: %w", name, last, err)
			}
			return fmt.Errorf("follow stream %q after seq %d: %w", name, last, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow stream %q after seq %d: read message metadata: %w", name, last, err)
		}
		seq := md.Sequence.Stream
		if seq <= last {
			l.log.Debug("follow: skipping already delivered entry", "seq", seq, "last", last)
			continue
		}
		entry := toEntry(msg.Subject(), seq, msg.Data(), md.Timestamp)
		if err := fn(entry); err != nil {
			return fmt.Errorf("follow stream %q: handle seq %d: %w", name, seq, err)
		}
		last = seq
	}
}

// deleteConsumer removes a consumer this package created from the server so
// it does not linger until its inactivity threshold. Best effort, bounded.
func (l *Log) deleteConsumer(ctx context.Context, stream string, cons jetstream.Consumer) {
	if !l.nc.IsConnected() {
		return
	}
	info := cons.CachedInfo()
	if info == nil || info.Name == "" {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteConsumerTimeout)
	defer cancel()
	if err := l.js.DeleteConsumer(dctx, stream, info.Name); err != nil &&
		!errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.log.Debug("delete consumer", "stream", stream, "consumer", info.Name, "err", err)
	}
}
