package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// deleteConsumerTimeout bounds the clean-up of Follow's consumer.
const deleteConsumerTimeout = 2 * time.Second

// followHeartbeat is the idle heartbeat of Follow's pull requests.
const followHeartbeat = time.Second

// Follow calls fn for every entry of the log from sequence fromSeq on, in
// stream order and one at a time, then keeps calling it for entries appended
// later. fromSeq 0 or 1 means from the first entry still retained, which may
// be later than 1 when retention has discarded older entries.
//
// Follow uses a single ordered JetStream consumer. When the connection to
// NATS is lost and comes back, the consumer is re-created after the last
// entry delivered: fn never sees a sequence twice, and sees every retained
// sequence after fromSeq.
//
// Follow blocks until:
//   - ctx is done: it returns ctx.Err() (never nil);
//   - fn returns an error: it returns that error, wrapped with the sequence;
//   - the log is closed or the consumer cannot continue: it returns an error
//     saying so.
//
// Cancelling ctx makes Follow return promptly, also while NATS is
// disconnected. The one exception is while the consumer is being re-created
// (after a reconnect, when JetStream does not answer): Follow then returns
// once the current attempt ends, within about 20s. Follow returns only after
// everything it started has stopped; if fn blocks, Follow waits for it.
func (l *Log) Follow(ctx context.Context, fromSeq uint64, fn func(Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if fromSeq > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = fromSeq
	}
	cons, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("follow stream %q from seq %d: create consumer: %w", l.opts.Stream, fromSeq, err)
	}
	// A 1s heartbeat (nats.go's default is 5s, replaced after two misses)
	// makes a consumer silenced by a lost NATS node be re-created in about
	// 2s instead of 10s, during which this replica would apply nothing.
	it, err := cons.Messages(jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		l.deleteConsumer(ctx, cons)
		return fmt.Errorf("follow stream %q from seq %d: start consumer: %w", l.opts.Stream, fromSeq, err)
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
		l.deleteConsumer(ctx, cons)
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
				return fmt.Errorf("follow stream %q after seq %d: connection closed: %w", l.opts.Stream, last, err)
			}
			return fmt.Errorf("follow stream %q after seq %d: %w", l.opts.Stream, last, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("follow stream %q after seq %d: read message metadata: %w", l.opts.Stream, last, err)
		}
		seq := md.Sequence.Stream
		if seq <= last {
			l.log.Debug("follow: skipping already delivered entry", "seq", seq, "last", last)
			continue
		}
		entry := Entry{Seq: seq, Subject: msg.Subject(), Data: msg.Data(), Time: md.Timestamp}
		if err := fn(entry); err != nil {
			return fmt.Errorf("follow stream %q: handle seq %d: %w", l.opts.Stream, seq, err)
		}
		last = seq
	}
}

// deleteConsumer removes Follow's current consumer from the server so it
// does not linger until its inactivity threshold. Best effort, bounded.
func (l *Log) deleteConsumer(ctx context.Context, cons jetstream.Consumer) {
	if !l.nc.IsConnected() {
		return
	}
	info := cons.CachedInfo()
	if info == nil || info.Name == "" {
		return
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteConsumerTimeout)
	defer cancel()
	if err := l.js.DeleteConsumer(dctx, l.opts.Stream, info.Name); err != nil &&
		!errors.Is(err, jetstream.ErrConsumerNotFound) {
		l.log.Debug("follow: delete consumer", "consumer", info.Name, "err", err)
	}
}
