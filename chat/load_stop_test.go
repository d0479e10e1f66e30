package chat

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
	"github.com/heraldhq/herald/pubsub"
)

// blockedReadLog is a replica's log whose room reads wait until
// their context ends (a large room, a slow log): a load is under way
// whenever the test wants.
type blockedReadLog struct {
	*pubsub.Log
	reading atomic.Int64
}

func (l *blockedReadLog) ReadKey(ctx context.Context, key string, from uint64, fn func(pubsub.Entry) error) (uint64, error) {
	l.reading.Add(1)
	<-ctx.Done()
	return 0, ctx.Err()
}

// TestStoppingMidLoadIsNoWarning: stopping the service while a room loads
// for a subscriber (a replica's ordinary shutdown or drain) is no failure
// of the log's: the load's failure, which the stop itself causes (its
// read's context canceled), is not a warning (one per room loading at
// every shutdown), and the subscriber is told that the service is
// stopping, not that the event log is unavailable.
func TestStoppingMidLoadIsNoWarning(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	writer := startService(t, first, Options{})
	room := mustRoom(t, writer, "stopping")
	log := &blockedReadLog{Log: openReplicaLog(t, first, pubsub.Options{})}
	logs := &testrig.LogBuffer{}
	svc := NewService(log, Options{
		ApplyTimeout: 10 * time.Second, // the read outlasts the test unless the stop ends it
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svc.Run(ctx)
	}()
	defer func() {
		stop()
		<-done
	}()
	waitFor(t, "the replica's directory to have the room", func() bool {
		_, ok := svc.RoomInfo(room.ID)
		return ok
	})
	wctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	watched := make(chan error, 1)
	go func() {
		w, err := svc.Watch(wctx, RoomTopic(room.ID))
		if err == nil {
			w.Close()
		}
		watched <- err
	}()
	waitFor(t, "the room's load to read", func() bool { return log.reading.Load() > 0 })
	stop()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	err := <-watched
	var chatErr *Error
	if !errors.As(err, &chatErr) || chatErr.Code != CodeUnavailable {
		t.Fatalf("the subscriber waiting for the load: %v, want UNAVAILABLE", err)
	}
	if strings.Contains(chatErr.Message, "event log is unavailable") {
		t.Errorf("the subscriber is told %q: the log is fine, the service stopped", chatErr.Message)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=WARN") && strings.Contains(line, "loading a room") {
			t.Errorf("the service stopping mid-load logs a warning: %s", line)
		}
	}
}
