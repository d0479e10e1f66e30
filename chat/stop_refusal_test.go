package chat

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// heldLastSeqLog is an EventLog whose KeyLastSeq of one key waits, once
// armed, until the test lets it go: it holds a command inside its re-check
// against the log (reachLog) while the test stops the Service.
type heldLastSeqLog struct {
	EventLog
	key     string
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *heldLastSeqLog) KeyLastSeq(ctx context.Context, key string) (uint64, error) {
	if key == g.key && g.armed.CompareAndSwap(true, false) {
		g.once.Do(func() { close(g.entered) })
		select {
		case <-g.release:
		case <-time.After(20 * time.Second):
		}
	}
	return g.EventLog.KeyLastSeq(ctx, key)
}

// TestRefusalAcrossTheStopIsUnavailable: a command that began while the
// Service ran, on a replica behind the log, is judged against the stale
// room (the message is unknown here) and re-checks against the log
// (reachLog); the stop begins meanwhile. Nothing applies any more, so the
// re-check cannot catch up, and answering the stale judgement would be a
// false NOT_FOUND for a message that exists: a stopping replica answers
// UNAVAILABLE (nothing stored; retry) instead. The control, without the
// stop, shows the re-check catching up and the command applied.
func TestRefusalAcrossTheStopIsUnavailable(t *testing.T) {
	for _, stop := range []bool{false, true} {
		name := "control: no stop, the re-check catches up"
		if stop {
			name = "the stop begins during the re-check"
		}
		t.Run(name, func(t *testing.T) { refusalAcrossStop(t, stop) })
	}
}

func refusalAcrossStop(t *testing.T, stop bool) {
	first := openLog(t, pubsub.Options{})
	writer := startService(t, first, Options{})
	room := mustRoom(t, writer, "across the stop")

	gate := &heldLastSeqLog{
		EventLog: openReplicaLog(t, first, pubsub.Options{}),
		key:      room.ID,
		entered:  make(chan struct{}),
		release:  make(chan struct{}),
	}
	var dropLive atomic.Bool
	b := NewService(gate, Options{Logger: quiet, ApplyTimeout: 3 * time.Second})
	b.liveFilter = func(pubsub.Entry) bool { return !dropLive.Load() }
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- b.Run(runCtx) }()
	var releaseOnce, runOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(gate.release) }) }
	waitRun := func() {
		runOnce.Do(func() {
			stopRun()
			select {
			case err := <-runDone:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(func() {
		letGo()
		waitRun()
	})
	waitFor(t, "replica b to be ready", func() bool { ok, _ := b.Ready(); return ok })

	// b holds the room, up to date; past the re-read a load schedules.
	mustPost(t, b, room.ID, "b holds the room")
	time.Sleep(1500 * time.Millisecond)

	// b misses what the writer posts next (its live entry is lost).
	dropLive.Store(true)
	msg := mustPost(t, writer, room.ID, "b has not seen this")

	gate.armed.Store(true)
	result := make(chan error, 1)
	go func() {
		_, err := b.React(context.Background(), bob, msg.ID, "👍")
		result <- err
	}()
	select {
	case <-gate.entered:
	case err := <-result:
		t.Fatalf("React answered before re-checking against the log: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("React never re-checked against the log")
	}
	if stop {
		// The stop begins (and completes) while the command re-checks.
		waitRun()
	}
	letGo()

	var err error
	select {
	case err = <-result:
	case <-time.After(15 * time.Second):
		t.Fatal("React did not answer")
	}
	if !stop {
		if err != nil {
			t.Fatalf("control: React on a running replica behind the log: %v; want it applied", err)
		}
		return
	}
	var chatErr *Error
	if !errors.As(err, &chatErr) || chatErr.Code != CodeUnavailable {
		t.Errorf("a command in flight when the stop began answered %v; want %s (the replica is stopping: nothing stored, retry): "+
			"message %s exists in the log", err, CodeUnavailable, msg.ID)
	}
}
