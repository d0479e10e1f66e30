package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
	"github.com/heraldhq/herald/pubsub"
)

// flakyLog is a replica's log whose connection and room reads a test
// controls: down makes Connected report false and room reads fail as they
// do then; failReads makes room reads fail as while a NATS cluster elects
// a partition's leader (connected, no answer).
type flakyLog struct {
	*pubsub.Log
	down, failReads atomic.Bool
	reads           atomic.Int64
}

func (l *flakyLog) Available() bool { return !l.down.Load() && l.Log.Available() }

func (l *flakyLog) ReadKey(ctx context.Context, key string, from uint64, fn func(pubsub.Entry) error) (uint64, error) {
	l.reads.Add(1)
	switch {
	case l.down.Load():
		return 0, fmt.Errorf("read key %q: NATS disconnected: %w", key, pubsub.ErrUnreachable)
	case l.failReads.Load():
		return 0, fmt.Errorf("read key %q: no responders", key)
	}
	return l.Log.ReadKey(ctx, key, from, fn)
}

// flakyReplica is a Service on a flakyLog, with rooms that a writer on
// the same NATS server created and that the replica does not hold, and
// its log (debug and above).
type flakyReplica struct {
	svc     *Service
	log     *flakyLog
	logs    *testrig.LogBuffer
	room    Room    // public, with a message
	private Room    // alice's
	msg     Message // in room
}

func startFlakyReplica(t *testing.T, opts Options) *flakyReplica {
	t.Helper()
	first := openLog(t, pubsub.Options{})
	writer := startService(t, first, Options{})
	r := &flakyReplica{
		log:  &flakyLog{Log: openReplicaLog(t, first, pubsub.Options{})},
		logs: &testrig.LogBuffer{},
	}
	r.room = mustRoom(t, writer, "flaky")
	r.msg = mustPost(t, writer, r.room.ID, "hello")
	private, err := writer.CreatePrivateRoom(context.Background(), alice, "secret")
	if err != nil {
		t.Fatal(err)
	}
	r.private = private
	opts.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.svc = startService(t, r.log, opts)
	waitFor(t, "the replica's directory to have the rooms", func() bool {
		_, ok := r.svc.RoomInfo(r.private.ID)
		return ok
	})
	return r
}

// count is how many lines of the replica's log hold msg at level.
func (r *flakyReplica) count(level, msg string) int {
	return strings.Count(r.logs.String(), "level="+level+` msg="`+msg+`"`)
}

// TestRoomNotHeldWhileLogDown: while the log's connection is down, a query
// or a command of a room the replica does not hold (or is still loading
// for a subscriber) answers UNAVAILABLE at once, as a command's append
// does, rather than waiting for a load that cannot succeed; and it starts
// no load, which would only log its failure.
func TestRoomNotHeldWhileLogDown(t *testing.T) {
	r := startFlakyReplica(t, Options{ApplyTimeout: 5 * time.Second})
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"room stats", func(ctx context.Context) error { _, err := r.svc.RoomStats(ctx, r.room.ID); return err }},
		{"messages", func(ctx context.Context) error {
			_, err := r.svc.Messages(ctx, r.room.ID, Window{Last: 10})
			return err
		}},
		{"members", func(ctx context.Context) error {
			_, err := r.svc.Members(ctx, r.private.ID, Window{First: 10})
			return err
		}},
		{"can see", func(ctx context.Context) error { _, err := r.svc.CanSee(ctx, "", r.room.ID); return err }},
		{"private room", func(ctx context.Context) error {
			_, _, err := r.svc.VisibleRoom(ctx, alice.ID, r.private.ID)
			return err
		}},
		{"message", func(ctx context.Context) error { _, _, err := r.svc.Message(ctx, "", r.msg.ID); return err }},
		{"post", func(ctx context.Context) error { _, err := r.svc.PostMessage(ctx, bob, r.room.ID, "x", ""); return err }},
	}
	check := func(t *testing.T, call func(context.Context) error) {
		t.Helper()
		// Bounded, should the call wait for the load (LoadTimeout, 30s).
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		err := call(ctx)
		took := time.Since(start)
		wantCode(t, err, CodeUnavailable)
		if took > time.Second {
			t.Errorf("answered after %s, want at once (apply timeout 5s)", took.Round(time.Millisecond))
		}
	}

	r.log.down.Store(true)
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) { check(t, c.call) })
	}
	if n := r.log.reads.Load(); n != 0 || r.svc.rooms.count() != 0 {
		t.Errorf("%d room reads, %d rooms held; want none: no load is started while the log is down", n, r.svc.rooms.count())
	}
	if n := r.count("WARN", "loading a room failed"); n != 0 {
		t.Errorf("%d warnings \"loading a room failed\", want none:\n%s", n, r.logs)
	}

	// A subscriber waits for the room as long as its load goes on; a
	// query of the room meanwhile does not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watched := make(chan error, 1)
	go func() {
		w, err := r.svc.Watch(ctx, RoomTopic(r.room.ID))
		if err == nil {
			w.Close()
		}
		watched <- err
	}()
	waitFor(t, "the subscriber's load to fail twice", func() bool { return r.log.reads.Load() >= 2 })
	for _, c := range calls {
		t.Run("loading for a subscriber/"+c.name, func(t *testing.T) { check(t, c.call) })
	}
	r.log.down.Store(false)
	if err := <-watched; err != nil {
		t.Fatalf("the subscription waiting through the outage: %v", err)
	}
	if n := r.count("WARN", "loading a room failed"); n != 1 {
		t.Errorf("%d warnings \"loading a room failed\" for one load failing %d times, want 1:\n%s", n, r.log.reads.Load()-1, r.logs)
	}
	if n := r.count("DEBUG", "loading a room failed again"); n == 0 {
		t.Errorf("the load's later failures are not logged at debug level:\n%s", r.logs)
	}
}

// TestFailingLoadBoundsItsWaiters: while a room's reads keep failing (NATS
// connected, a partition electing its leader), a query waits for the room
// at most the apply timeout, a subscription as long as the load goes on;
// the load logs one warning however often it fails, and ends once it has
// failed with nobody waiting for it any more.
func TestFailingLoadBoundsItsWaiters(t *testing.T) {
	const applyTimeout = 300 * time.Millisecond
	r := startFlakyReplica(t, Options{ApplyTimeout: applyTimeout, LoadTimeout: time.Minute})
	r.log.failReads.Store(true)

	bounded, cancelBounded := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelBounded()
	start := time.Now()
	_, err := r.svc.RoomStats(bounded, r.room.ID)
	took := time.Since(start)
	wantCode(t, err, CodeUnavailable)
	if took < applyTimeout-50*time.Millisecond || took > applyTimeout+time.Second {
		t.Errorf("a query of a room whose load keeps failing answered after %s, want about the apply timeout (%s)",
			took.Round(time.Millisecond), applyTimeout)
	}
	waitFor(t, "the load nobody waits for to end", func() bool { return r.svc.rooms.count() == 0 })
	reads := r.log.reads.Load()
	time.Sleep(1500 * time.Millisecond) // over the longest back-off
	if n := r.log.reads.Load(); n != reads {
		t.Errorf("the room was read %d times more after its load ended", n-reads)
	}
	if n := r.count("DEBUG", "stopped loading a room nobody waits for any more"); n != 1 {
		t.Errorf("%d lines \"stopped loading a room nobody waits for any more\", want 1:\n%s", n, r.logs)
	}

	// A subscriber waits through the failures, and gets the room once a
	// read succeeds.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	watched := make(chan error, 1)
	go func() {
		w, err := r.svc.Watch(ctx, RoomTopic(r.room.ID))
		if err == nil {
			w.Close()
		}
		watched <- err
	}()
	waitFor(t, "the subscriber's load to fail past the apply timeout", func() bool {
		return r.log.reads.Load() >= reads+4 // 0.1 + 0.2 + 0.4 s of back-off
	})
	r.log.failReads.Store(false)
	if err := <-watched; err != nil {
		t.Fatalf("the subscription waiting for a failing load: %v", err)
	}
	if n := r.count("WARN", "loading a room failed"); n != 2 {
		t.Errorf("%d warnings \"loading a room failed\" for two loads failing %d times, want 2 (one a load):\n%s",
			n, r.log.reads.Load()-1, r.logs)
	}
	if n := r.count("WARN", "gave up loading a room"); n != 0 {
		t.Errorf("%d warnings \"gave up loading a room\", want none", n)
	}
}

// TestAppendFailedCodes: a command whose event the log refused outright,
// storing nothing (its store full), is UNAVAILABLE (retry), as one never
// sent; only one sent and not confirmed is OUTCOME_UNKNOWN (read back
// first).
func TestAppendFailedCodes(t *testing.T) {
	log := &countingLog{Log: openLog(t, pubsub.Options{})}
	svc := startService(t, log, Options{})
	room := mustRoom(t, svc, "general")
	tests := []struct {
		name string
		err  error
		code Code
		says string
	}{
		{"refused", fmt.Errorf("append: refused by stream, nothing stored (out of storage): %w", pubsub.ErrRefused), CodeUnavailable, "nothing was stored; retry later"},
		{"unreachable", fmt.Errorf("append: NATS disconnected: %w", pubsub.ErrUnreachable), CodeUnavailable, "retry later"},
		{"not confirmed", fmt.Errorf("append: %w", context.DeadlineExceeded), CodeOutcomeUnknown, "read back before repeating"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log.fail.Store(&tt.err)
			defer log.fail.Store(nil)
			for what, call := range map[string]func() error{
				"post":        func() error { _, err := svc.PostMessage(context.Background(), alice, room.ID, "x", ""); return err },
				"create room": func() error { _, err := svc.CreateRoom(context.Background(), alice, "another"); return err },
			} {
				err := call()
				wantCode(t, err, tt.code)
				var chatErr *Error
				if errors.As(err, &chatErr) && !strings.Contains(chatErr.Message, tt.says) {
					t.Errorf("%s: %q, want it to say %q", what, chatErr.Message, tt.says)
				}
			}
		})
	}
}
