package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// deleteConsumerTimeout bounds the clean-up of a consumer.
const deleteConsumerTimeout = 2 * time.Second

// Following a stream.
const (
	// followBatch is how many entries one of follow's pull requests asks
	// for. The next one is sent once fewer than half are still to come, so
	// entries keep flowing while fn works.
	followBatch = 512
	// followExpires is how long one of follow's pull requests waits for
	// entries; the server then ends it and follow sends another.
	followExpires = 30 * time.Second
	// followHeartbeat is the idle heartbeat of follow's pull requests.
	// After two missed ones follow creates its consumer again: a consumer
	// silenced by a lost NATS node is replaced in about 2s, during which
	// this replica applies nothing.
	followHeartbeat = time.Second
	// followInactiveThreshold lets the server remove a follow consumer
	// whose clean-up never came (the process died). It is longer than
	// followExpires, so a consumer that is followed never counts as
	// inactive.
	followInactiveThreshold = 2 * followExpires
	// Creating the consumer again after a failure is paused, doubling
	// from followRetryFirst up to followRetryMax, unless the consumer it
	// replaces was followed for followRetryMax or longer.
	followRetryFirst = 100 * time.Millisecond
	followRetryMax   = 2 * time.Second
)

// FollowDirectory calls fn for every directory entry from sequence fromSeq
// on, in stream order and one at a time, then keeps calling it for entries
// added later. fromSeq 0 or 1 means from the first entry still retained.
//
// FollowDirectory reads through one JetStream consumer at a time. When it
// fails (NATS reconnected, its heartbeats stopped, an entry was lost on the
// way, it was deleted), another is created after the last entry delivered:
// fn never sees a sequence twice, and sees every retained sequence after
// fromSeq.
//
// FollowDirectory blocks until:
//   - ctx is done: it returns ctx.Err() (never nil);
//   - fn returns an error: it returns that error, wrapped with the sequence;
//   - the log is closed, its first consumer cannot be created, or JetStream
//     sends what it cannot read: it returns an error saying so.
//
// Cancelling ctx makes FollowDirectory return promptly, also while NATS is
// disconnected or its consumer is being created again; only the deletion
// of its consumer may take up to 2s more. It returns only after everything
// it started has stopped; if fn blocks, it waits for it.
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
	if err := l.storeStopped("ask for the last entry"); err != nil {
		return 0, err
	}
	return lastSeqOf(ctx, l.nc, stream, filter)
}

// lastSeqOf is lastSeqMatching on the connection nc. Its request goes to
// the stream's leader, so it answers with what the leader holds, where a
// consumer or a direct get may be served by a replica behind it.
func lastSeqOf(ctx context.Context, nc *nats.Conn, stream, filter string) (uint64, error) {
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
	msg, err := nc.RequestWithContext(ctx, msgGetPrefix+stream, req)
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
//
// It does what nats.go's ordered consumer does, by hand: an ephemeral pull
// consumer without acks, in memory, created again from the entry after the
// last one delivered whenever it fails (missed heartbeats, a gap in its
// deliveries, a reconnect, its deletion). Unlike nats.go's iterator it
// sends its first pull request again while the NATS node this process is
// connected to does not know the consumer yet (see interestWait), which the
// iterator passed over, waiting two missed heartbeats instead.
func (l *Log) follow(ctx context.Context, stream jetstream.Stream, name, filter string, fromSeq uint64,
	toEntry entryMaker, fn func(Entry) error,
) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := &tail{l: l, name: name, toEntry: toEntry, fn: fn}
	if fromSeq > 0 {
		t.last = fromSeq - 1
	}
	retry := followRetryFirst
	for first := true; ; first = false {
		reconnected := l.reconnects.next()
		began := time.Now()
		cons, err := l.createFollower(ctx, stream, name, filter, t.last+1)
		if err == nil {
			err = t.consume(ctx, cons, reconnected)
			l.deleteConsumer(ctx, name, cons)
			var again errFollowAgain
			if !errors.As(err, &again) {
				return err
			}
			l.followsRenewed.Add(1)
			l.log.Debug("follow: creating the consumer again", "stream", name, "after", t.last, "reason", err)
		} else {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case l.nc.IsClosed():
				return fmt.Errorf("follow stream %q after seq %d: connection closed: %w", name, t.last, err)
			case first:
				return l.requestErr(err, "follow stream %q from seq %d: create consumer", name, fromSeq)
			}
			if l.nc.IsConnected() { // else NATS's disconnection was logged
				l.log.Warn("follow: creating the consumer failed; trying again", "stream", name, "after", t.last, "err", err)
			}
		}
		if time.Since(began) >= followRetryMax {
			retry = followRetryFirst
			continue
		}
		if err := l.pause(ctx, retry, reconnected); err != nil {
			return fmt.Errorf("follow stream %q after seq %d: %w", name, t.last, err)
		}
		retry = min(2*retry, followRetryMax)
	}
}

// createFollower creates the consumer follow reads: from sequence from on,
// of the subjects filter matches ("" for all).
func (l *Log) createFollower(ctx context.Context, stream jetstream.Stream, name, filter string, from uint64) (jetstream.Consumer, error) {
	return l.createEphemeral(ctx, stream, name, ephemeralConfig(filter, from, followInactiveThreshold))
}

// createEphemeral creates the consumer cfg describes on stream (named
// streamName) under a name of Herald's choosing. A create whose answer
// did not come (ctx ended, the request timed out) may still have made the
// consumer; knowing its name, createEphemeral deletes it rather than leave
// it to NATS until its inactivity threshold, so that clients who leave
// while their reads start cannot pile consumers up on the server.
func (l *Log) createEphemeral(ctx context.Context, stream jetstream.Stream, streamName string,
	cfg jetstream.ConsumerConfig,
) (jetstream.Consumer, error) {
	if err := l.storeStopped("create a consumer"); err != nil {
		return nil, err
	}
	cfg.Name = nuid.Next()
	cons, err := stream.CreateConsumer(ctx, cfg)
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
		l.deleteConsumerNamed(ctx, streamName, cfg.Name)
	}
	return cons, err
}

// ephemeralConfig configures a consumer as nats.go's ordered consumer
// does (no acks, one replica, in memory), of the subjects filter matches
// ("" for all), from sequence from on (0 or 1: from the first), removed by
// the server after inactive without pull requests.
func ephemeralConfig(filter string, from uint64, inactive time.Duration) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		FilterSubject:     filter,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: inactive,
	}
	if from > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from
	}
	return cfg
}

// pause waits for d, or until NATS reconnects (reconnected is closed), and
// returns an error when ctx ends or the connection is closed first.
func (l *Log) pause(ctx context.Context, d time.Duration, reconnected <-chan struct{}) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-reconnected:
	case <-ctx.Done():
		return ctx.Err()
	case <-l.connClosed:
		return errors.New("connection closed")
	}
	return nil
}

// errFollowAgain is tail.consume's when its consumer cannot go on but a new
// one can: follow creates one after the last entry delivered.
type errFollowAgain struct{ err error }

func (e errFollowAgain) Error() string { return e.err.Error() }
func (e errFollowAgain) Unwrap() error { return e.err }

// tail is where follow is: what it handed to fn so far.
type tail struct {
	l       *Log
	name    string // the stream's, for errors
	toEntry entryMaker
	fn      func(Entry) error

	last uint64 // stream sequence of the last entry fn accepted, or fromSeq-1
}

// consume hands cons's entries to fn until ctx ends, fn fails, or cons
// cannot go on (errFollowAgain).
func (t *tail) consume(ctx context.Context, cons jetstream.Consumer, reconnected <-chan struct{}) error {
	p, err := newPuller(t.l.nc, t.name, cons.CachedInfo().Name, followBatch)
	if err != nil {
		return t.l.requestErr(err, "follow stream %q after seq %d", t.name, t.last)
	}
	defer p.close()
	return t.pull(ctx, p, reconnected)
}

// pull keeps pull requests waiting on p's consumer and hands what they
// bring to fn; see consume.
func (t *tail) pull(ctx context.Context, p *puller, reconnected <-chan struct{}) error {
	var (
		dseq    uint64 // consumer sequence of the last entry received
		pending int    // entries asked for and not received nor released
		retry   *time.Timer
		retryC  <-chan time.Time // set while a pull request waits to be sent again
	)
	silence := time.NewTimer(2 * followHeartbeat)
	defer silence.Stop()
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		if pending <= followBatch/2 && retryC == nil {
			if err := p.requestWaiting(followBatch, followExpires, followHeartbeat); err != nil {
				if t.l.nc.IsClosed() {
					return fmt.Errorf("follow stream %q after seq %d: connection closed: %w", t.name, t.last, err)
				}
				return errFollowAgain{t.l.requestErr(err, "follow stream %q after seq %d: pull", t.name, t.last)}
			}
			pending += followBatch
		}
		var msg *nats.Msg
		select {
		case msg = <-p.msgs:
		case <-silence.C:
			return errFollowAgain{fmt.Errorf("follow stream %q after seq %d: no heartbeat for %s", t.name, t.last, 2*followHeartbeat)}
		case <-retryC:
			retryC, pending = nil, 0
			continue
		case <-reconnected:
			return errFollowAgain{fmt.Errorf("follow stream %q after seq %d: NATS reconnected", t.name, t.last)}
		case <-t.l.connClosed:
			return fmt.Errorf("follow stream %q after seq %d: connection closed", t.name, t.last)
		case <-ctx.Done():
			return ctx.Err()
		}
		if code, ok := statusOf(msg); ok {
			switch {
			case code == statusNoResponders && p.unknownYet(dseq > 0):
				// The consumer is not known here yet: ask again soon.
				if retry == nil {
					retry = time.NewTimer(interestRetry)
				} else {
					retry.Reset(interestRetry)
				}
				retryC = retry.C
			default:
				var err error
				if pending, err = followStatus(code, msg, pending); err != nil {
					return fmt.Errorf("follow stream %q after seq %d: %w", t.name, t.last, err)
				}
			}
			silence.Reset(2 * followHeartbeat)
			continue
		}
		pending--
		ack, err := parseAckReply(msg.Reply)
		if err != nil {
			return fmt.Errorf("follow stream %q after seq %d: read message metadata: %w", t.name, t.last, err)
		}
		if ack.consumerSeq != dseq+1 {
			// Nothing is acknowledged or redelivered, so a jump means an
			// entry was lost on the way (a slow consumer).
			return errFollowAgain{fmt.Errorf("follow stream %q after seq %d: delivery %d arrived after %d: an entry was lost in transit",
				t.name, t.last, ack.consumerSeq, dseq)}
		}
		dseq = ack.consumerSeq
		if err := t.take(msg, ack); err != nil {
			return err
		}
		// After fn, however long it took: only silence while waiting counts.
		silence.Reset(2 * followHeartbeat)
	}
}

// take hands the entry msg to fn, unless fn has had it already.
func (t *tail) take(msg *nats.Msg, ack ackReply) error {
	if ack.streamSeq <= t.last {
		t.l.log.Debug("follow: skipping already delivered entry", "seq", ack.streamSeq, "last", t.last)
		return nil
	}
	if err := t.fn(t.toEntry(msg.Subject, ack.streamSeq, msg.Data, time.Unix(0, ack.stored).UTC())); err != nil {
		return fmt.Errorf("follow stream %q: handle seq %d: %w", t.name, ack.streamSeq, err)
	}
	t.last = ack.streamSeq
	return nil
}

// followStatus says what a status reply to one of follow's pull requests
// means, as nats.go's iterator reads it: pending, less what the request
// it ends did not send, or an error, wrapped in errFollowAgain when a new
// consumer can go on.
func followStatus(code string, msg *nats.Msg, pending int) (int, error) {
	descr := msg.Header.Get(descrHeader)
	switch code {
	case statusControl: // a heartbeat
		return pending, nil
	case statusNoMessages, statusTimeout:
		return max(pending-unsent(msg), 0), nil
	case statusNoResponders:
		return 0, errFollowAgain{fmt.Errorf("pull request: %w", nats.ErrNoResponders)}
	case statusConflict:
		switch d := strings.ToLower(descr); {
		case strings.Contains(d, descrConsumerDeleted):
			return 0, errFollowAgain{jetstream.ErrConsumerDeleted}
		case strings.Contains(d, descrServerShutdown):
			return 0, errFollowAgain{jetstream.ErrServerShutdown}
		case strings.Contains(d, descrLeadershipChange):
			// Its waiting requests are gone; ask the new leader.
			return 0, nil
		}
		return max(pending-unsent(msg), 0), nil
	case statusBadRequest:
		return 0, fmt.Errorf("pull request: %w: %s", jetstream.ErrBadRequest, descr)
	}
	return 0, errFollowAgain{fmt.Errorf("pull request: status %s %s", code, descr)}
}

// unsent is how many entries the request a status reply ends did not
// send: its Nats-Pending-Messages header, 0 if it has none.
func unsent(msg *nats.Msg) int {
	n, err := strconv.Atoi(msg.Header.Get(pendingMsgsHeader))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// pendingMsgsHeader is the header of a status reply that ends a pull
// request saying how many of the entries asked for it did not send.
const pendingMsgsHeader = "Nats-Pending-Messages"

// reconnectSignal tells every follow that NATS reconnected: the pull
// requests waiting on the server before are gone.
type reconnectSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

// next is closed at the next reconnect.
func (r *reconnectSignal) next() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch == nil {
		r.ch = make(chan struct{})
	}
	return r.ch
}

// fire closes the channel next returned.
func (r *reconnectSignal) fire() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
}

// deleteConsumer removes a consumer this package created from the server so
// it does not linger until its inactivity threshold. Best effort, bounded.
func (l *Log) deleteConsumer(ctx context.Context, stream string, cons jetstream.Consumer) {
	if info := cons.CachedInfo(); info != nil && info.Name != "" {
		l.deleteConsumerNamed(ctx, stream, info.Name)
	}
}

// deleteConsumerNamed deletes a consumer by name, bounded by
// deleteConsumerTimeout even when ctx has ended.
func (l *Log) deleteConsumerNamed(ctx context.Context, stream, name string) {
	if !l.nc.IsConnected() || l.storeFailure() != nil { // nobody would answer; it went with JetStream
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteConsumerTimeout)
	defer cancel()
	if err := l.js.DeleteConsumer(dctx, stream, name); err != nil &&
		!errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.log.Debug("delete consumer", "stream", stream, "consumer", name, "err", err)
	}
}
