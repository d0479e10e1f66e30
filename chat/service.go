package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// EventLog is the durable, ordered log the domain is built on; *pubsub.Log
// implements it.
type EventLog interface {
	Append(ctx context.Context, subject string, data []byte, dedupID string) (pubsub.AppendResult, error)
	LastSeq(ctx context.Context) (uint64, error)
	Follow(ctx context.Context, fromSeq uint64, fn func(pubsub.Entry) error) error
}

// Options configures a Service.
type Options struct {
	// History is how many posts each room keeps. It must equal the log's
	// per-subject limit (pubsub.Log.MaxMsgsPerSubject) so that the read
	// model evicts exactly what the log discards; 0 keeps everything.
	History int
	// ApplyTimeout bounds how long a command waits for the log to accept
	// its event and for this replica to apply it (default 5s).
	ApplyTimeout time.Duration
	// OutcomeMemory is how many recent outcomes are remembered for commands
	// waiting on them, de-duplicated retries included (default 65536).
	OutcomeMemory int
	// MaxTextLength, if positive and below the hard MaxTextLength, is a
	// stricter limit this replica applies to the texts it proposes (the
	// projection judges every event by the hard limit alone, so replicas
	// configured differently still agree).
	MaxTextLength int
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// Service is the chat domain on one replica: it turns commands into events
// appended to the log, follows the log into its read model, and answers
// queries from that read model.
type Service struct {
	log  EventLog
	opts Options

	mu       sync.RWMutex
	proj     *Projection
	applied  chan struct{} // closed and replaced whenever entries are applied
	outcomes map[uint64]Outcome
	recent   []uint64 // ring of the sequences in outcomes, oldest at next
	next     int

	// catchUpTarget is the log position at start; guarded by mu.
	catchUpTarget uint64
	caughtUp      atomic.Bool
	appliedN      atomic.Uint64 // entries applied, for metrics
	running       atomic.Bool
	status        atomic.Value // string: why not ready

	hub *hub // live subscribers by topic
}

// NewService returns a Service over log. Call Run to start following it.
func NewService(log EventLog, opts Options) *Service {
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 5 * time.Second
	}
	if opts.OutcomeMemory <= 0 {
		opts.OutcomeMemory = 65536
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Service{
		log:      log,
		opts:     opts,
		proj:     NewProjection(opts.History),
		applied:  make(chan struct{}),
		outcomes: make(map[uint64]Outcome, opts.OutcomeMemory),
		recent:   make([]uint64, opts.OutcomeMemory),
		hub:      newHub(),
	}
	s.status.Store("not started")
	return s
}

// Run follows the log into the read model until ctx is done: first it
// replays everything the log holds (readiness is false until it has caught
// up with the log's position at start), then it applies new events as they
// arrive. It retries after log failures and returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("chat service is already running")
	}
	defer s.running.Store(false)
	target, err := s.startPosition(ctx)
	if err != nil {
		return nil // ctx ended
	}
	s.markCaughtUpAt(target)
	for backoff := 100 * time.Millisecond; ; {
		from := s.LastSeq() + 1
		err := s.log.Follow(ctx, from, s.apply)
		if ctx.Err() != nil {
			return nil
		}
		s.opts.Logger.Warn("following the event log failed; retrying", "from", from, "err", err, "retry_in", backoff)
		s.status.Store(fmt.Sprintf("following the event log failed: %v", err))
		if !sleep(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// startPosition reads the log's last sequence, retrying until it can.
func (s *Service) startPosition(ctx context.Context) (uint64, error) {
	s.status.Store("reading the event log position")
	for backoff := 100 * time.Millisecond; ; {
		readCtx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
		target, err := s.log.LastSeq(readCtx)
		cancel()
		if err == nil {
			s.status.Store(fmt.Sprintf("replaying the event log up to sequence %d", target))
			return target, nil
		}
		s.opts.Logger.Warn("reading the event log position failed; retrying", "err", err, "retry_in", backoff)
		if !sleep(ctx, backoff) {
			return 0, ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (s *Service) markCaughtUpAt(target uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proj.LastSeq() >= target {
		s.caughtUp.Store(true)
		return
	}
	s.catchUpTarget = target
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// apply folds one entry into the read model and wakes whoever waits for it.
func (s *Service) apply(e pubsub.Entry) error {
	s.mu.Lock()
	out := s.proj.Apply(e.Seq, e.Subject, e.Data, e.Time)
	if out.Type != "" || out.Err != nil {
		s.remember(out)
	}
	if !s.caughtUp.Load() && s.proj.LastSeq() >= s.catchUpTarget {
		s.caughtUp.Store(true)
	}
	topic, change, changed := s.changeOf(out, e.Time)
	close(s.applied)
	s.applied = make(chan struct{})
	s.mu.Unlock()
	s.appliedN.Add(1)

	// Published in log order: only this goroutine applies entries.
	if changed {
		s.hub.publish(topic, change)
	}

	if out.Err != nil && out.Err.Code == CodeInternal {
		s.opts.Logger.Warn("skipped a malformed log entry", "seq", e.Seq, "subject", e.Subject, "err", out.Err)
	}
	return nil
}

// remember keeps out for commands waiting on it; the oldest is forgotten
// once OutcomeMemory outcomes are held. Callers hold mu.
func (s *Service) remember(out Outcome) {
	if old := s.recent[s.next]; old != 0 {
		delete(s.outcomes, old)
	}
	s.recent[s.next] = out.Seq
	s.next = (s.next + 1) % len(s.recent)
	s.outcomes[out.Seq] = out
}

// Ready reports whether the read model has caught up with the log, and if
// not, why.
func (s *Service) Ready() (bool, string) {
	if s.caughtUp.Load() {
		return true, fmt.Sprintf("applied up to sequence %d", s.LastSeq())
	}
	return false, s.status.Load().(string)
}

// Applied counts the log entries this replica has applied since it started.
func (s *Service) Applied() uint64 { return s.appliedN.Load() }

// LastSeq is the sequence of the last log entry applied on this replica.
func (s *Service) LastSeq() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.proj.LastSeq()
}

// waitApplied blocks until this replica has applied seq and returns its
// outcome.
func (s *Service) waitApplied(ctx context.Context, seq uint64) (Outcome, error) {
	for {
		s.mu.RLock()
		if s.proj.LastSeq() >= seq {
			out, ok := s.outcomes[seq]
			s.mu.RUnlock()
			if !ok {
				return Outcome{}, errorf(CodeInternal, "the outcome of event %d is no longer known", seq)
			}
			return out, nil
		}
		wake := s.applied
		s.mu.RUnlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return Outcome{}, errorf(CodeUnavailable,
				"the event was stored (sequence %d) but this replica has not applied it yet; retry the read shortly", seq)
		}
	}
}

// propose appends e to the log and waits until this replica has judged it.
func (s *Service) propose(ctx context.Context, e Event, dedupID string) (Outcome, error) {
	data, err := e.Encode()
	if err != nil {
		return Outcome{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.ApplyTimeout)
	defer cancel()
	res, err := s.log.Append(ctx, e.Subject(), data, dedupID)
	if err != nil {
		s.opts.Logger.Warn("appending an event failed", "type", e.Type, "err", err)
		return Outcome{}, errorf(CodeUnavailable, "the event log is unavailable; retry later")
	}
	out, err := s.waitApplied(ctx, res.Seq)
	if err != nil {
		return Outcome{}, err
	}
	if out.Err != nil {
		return out, out.Err
	}
	return out, nil
}
