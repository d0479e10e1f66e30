package chat

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// lifecycleApplyTimeout is the apply timeout of the services these tests
// run: a command that appends while nothing applies it waits that long
// before it answers OUTCOME_UNKNOWN; a refusal comes well within half of it.
const lifecycleApplyTimeout = time.Second

// lifecycleRooms is what the commands of a lifecycle test act on: a public
// room with a message, and a private room of alice's with bob in it.
type lifecycleRooms struct {
	room, secret Room
	msg          Message
}

func seedLifecycleRooms(t *testing.T, svc *Service) lifecycleRooms {
	t.Helper()
	ctx := context.Background()
	f := lifecycleRooms{room: mustRoom(t, svc, "lifecycle")}
	f.msg = mustPost(t, svc, f.room.ID, "before the stop")
	var err error
	if f.secret, err = svc.CreatePrivateRoom(ctx, alice, "secret"); err != nil {
		t.Fatal(err)
	}
	if _, err = svc.AddMember(ctx, alice, f.secret.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

// runUntilStopped runs a Service over log until it is ready; stop cancels
// Run's context and waits for Run to return nil.
func runUntilStopped(t *testing.T, log EventLog) (svc *Service, stop func()) {
	t.Helper()
	svc = NewService(log, Options{Logger: quiet, ApplyTimeout: lifecycleApplyTimeout})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
	}
	t.Cleanup(stop)
	waitFor(t, "the service to be ready", func() bool { ok, _ := svc.Ready(); return ok })
	return svc, stop
}

// logPositions is the log's last sequence of the directory and of each
// room: a command that appended anything moves one of them.
func logPositions(t *testing.T, log *pubsub.Log, rooms ...Room) []uint64 {
	t.Helper()
	ctx := context.Background()
	last, err := log.DirectoryLastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	positions := []uint64{last}
	for _, r := range rooms {
		last, err := log.KeyLastSeq(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, last)
	}
	return positions
}

// TestCommandsOutsideRunStoreNothing: only while Run runs does anything
// apply what a command appends. Before Run, and once Run has returned,
// every command is refused at once with UNAVAILABLE (nothing stored; retry)
// and appends nothing to the shared log. A command appending there used to
// wait the whole apply timeout and answer OUTCOME_UNKNOWN, leaving a room
// created (or a post stored) that its client was told to read back.
func TestCommandsOutsideRunStoreNothing(t *testing.T) {
	phases := []struct {
		name  string
		setUp func(t *testing.T, log *pubsub.Log) (*Service, lifecycleRooms)
	}{
		{"before Run", func(t *testing.T, log *pubsub.Log) (*Service, lifecycleRooms) {
			writer := startService(t, log, Options{})
			f := seedLifecycleRooms(t, writer)
			return NewService(log, Options{Logger: quiet, ApplyTimeout: lifecycleApplyTimeout}), f
		}},
		{"after Run returned", func(t *testing.T, log *pubsub.Log) (*Service, lifecycleRooms) {
			// The service itself made the rooms: it holds them, so no
			// load stands between a command and its append.
			svc, stop := runUntilStopped(t, log)
			f := seedLifecycleRooms(t, svc)
			stop()
			return svc, f
		}},
	}
	commands := []struct {
		name string
		run  func(ctx context.Context, svc *Service, f lifecycleRooms) error
	}{
		{"CreateRoom", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.CreateRoom(ctx, alice, "created outside Run")
			return err
		}},
		{"CreatePrivateRoom", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.CreatePrivateRoom(ctx, alice, "created outside Run")
			return err
		}},
		{"PostMessage", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.PostMessage(ctx, alice, f.room.ID, "posted outside Run", "")
			return err
		}},
		{"PostMessage with an idempotency key", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.PostMessage(ctx, alice, f.room.ID, "posted outside Run", "key")
			return err
		}},
		{"EditMessage", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.EditMessage(ctx, alice, f.msg.ID, f.msg.Version, "edited outside Run")
			return err
		}},
		{"DeleteMessage", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.DeleteMessage(ctx, alice, f.msg.ID, f.msg.Version)
			return err
		}},
		{"React", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.React(ctx, alice, f.msg.ID, "👍")
			return err
		}},
		{"AddMember", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.AddMember(ctx, alice, f.secret.ID, "carol")
			return err
		}},
		{"RemoveMember", func(ctx context.Context, svc *Service, f lifecycleRooms) error {
			_, err := svc.RemoveMember(ctx, alice, f.secret.ID, bob.ID)
			return err
		}},
	}
	for _, phase := range phases {
		t.Run(phase.name, func(t *testing.T) {
			log := openLog(t, pubsub.Options{})
			svc, f := phase.setUp(t, log)
			for _, c := range commands {
				t.Run(c.name, func(t *testing.T) {
					before := logPositions(t, log, f.room, f.secret)
					start := time.Now()
					err := c.run(context.Background(), svc, f)
					took := time.Since(start)
					if after := logPositions(t, log, f.room, f.secret); !slices.Equal(before, after) {
						t.Errorf("appended to the log (directory, room, private room: %v -> %v) and answered, after %v, %v",
							before, after, took.Round(time.Millisecond), err)
					}
					var chatErr *Error
					if !errors.As(err, &chatErr) || chatErr.Code != CodeUnavailable {
						t.Errorf("err = %v, want %s", err, CodeUnavailable)
					}
					if took > lifecycleApplyTimeout/2 {
						t.Errorf("refused after %v, want at once", took.Round(time.Millisecond))
					}
				})
			}
		})
	}
}

// TestWatchersEndWhenRunReturns: a watcher open when Run returns gets no
// change any more, so it ends: Next returns what was pending, then an
// UNAVAILABLE *Error, rather than block until its caller gives up. A new
// watcher of a stopped Service is refused at once.
func TestWatchersEndWhenRunReturns(t *testing.T) {
	log := openLog(t, pubsub.Options{})
	svc, stop := runUntilStopped(t, log)
	room := mustRoom(t, svc, "watched")
	ctx := context.Background()
	roomW, err := svc.Watch(ctx, RoomTopic(room.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer roomW.Close()
	roomsW, err := svc.Watch(ctx, RoomsTopic)
	if err != nil {
		t.Fatal(err)
	}
	defer roomsW.Close()
	// Applied before they return: pending in the watchers when Run stops.
	mustPost(t, svc, room.ID, "pending")
	mustRoom(t, svc, "pending")
	stop()

	for _, c := range []struct {
		name    string
		w       *Watcher
		pending EventType
	}{
		{"a room's watcher", roomW, MessagePosted},
		{"the directory's watcher", roomsW, RoomCreated},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if got, err := c.w.Next(ctx); err != nil || got.Type != c.pending {
				t.Fatalf("first Next = %v, %v; want the pending %s change", got.Type, err, c.pending)
			}
			start := time.Now()
			_, err := c.w.Next(ctx)
			var chatErr *Error
			if !errors.As(err, &chatErr) || chatErr.Code != CodeUnavailable {
				t.Fatalf("Next once the pending change was returned: blocked %v and returned %v; want %s (the service stopped)",
					time.Since(start).Round(time.Millisecond), err, CodeUnavailable)
			}
		})
	}

	after := uint64(0)
	for _, c := range []struct {
		name  string
		watch func(ctx context.Context) (*Watcher, error)
	}{
		{"Watch of a room", func(ctx context.Context) (*Watcher, error) { return svc.Watch(ctx, RoomTopic(room.ID)) }},
		{"Watch of the directory", func(ctx context.Context) (*Watcher, error) { return svc.Watch(ctx, RoomsTopic) }},
		{"WatchAfter of a room", func(ctx context.Context) (*Watcher, error) { return svc.WatchAfter(ctx, RoomTopic(room.ID), after) }},
		{"WatchAfterFor of the directory", func(ctx context.Context) (*Watcher, error) {
			return svc.WatchAfterFor(ctx, RoomsTopic, after, alice.ID)
		}},
	} {
		t.Run("new "+c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			w, err := c.watch(ctx)
			if w != nil {
				w.Close()
			}
			var chatErr *Error
			if !errors.As(err, &chatErr) || chatErr.Code != CodeUnavailable {
				t.Errorf("on a stopped service: %v, want %s", err, CodeUnavailable)
			}
			if took := time.Since(start); took > lifecycleApplyTimeout/2 {
				t.Errorf("refused after %v, want at once", took.Round(time.Millisecond))
			}
		})
	}
}

// TestHubClosedEndsEveryWatcher: closing the hub ends the watchers it has,
// after what they hold pending, and ends at once a watcher added after,
// which a watch that began before its Service stopped may yet add.
func TestHubClosedEndsEveryWatcher(t *testing.T) {
	h := newHub()
	open := h.addAfter("t", 0, nil, nil)
	defer open.Close()
	h.publish("t", Change{Seq: 1})
	why := errorf(CodeUnavailable, "closed")
	h.close(why)
	late := h.addAfter("t", 1, []Change{{Seq: 1}}, nil)
	defer late.Close()
	h.publish("t", Change{Seq: 2}) // reaches neither

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range []struct {
		name string
		w    *Watcher
	}{{"open when the hub closed", open}, {"added after", late}} {
		t.Run(c.name, func(t *testing.T) {
			if got, err := c.w.Next(ctx); err != nil || got.Seq != 1 {
				t.Fatalf("first Next = %d, %v; want the change at 1", got.Seq, err)
			}
			if _, err := c.w.Next(ctx); !errors.Is(err, why) {
				t.Fatalf("second Next: %v, want the hub's reason %q", err, why)
			}
		})
	}
	h.mu.RLock()
	_, registered := h.watchers["t"][late]
	h.mu.RUnlock()
	if registered {
		t.Error("the watcher added after the hub closed was registered")
	}
}

// TestServiceRunsOnce: a Service is not ready before Run and once Run has
// returned, saying why; a second Run while one runs is refused, and one
// after the first returned returns ErrServiceStopped at once instead of
// running a Service that can apply nothing (its Live closed, its loads
// refused).
func TestServiceRunsOnce(t *testing.T) {
	log := openLog(t, pubsub.Options{})
	if ok, why := NewService(log, Options{Logger: quiet}).Ready(); ok || !strings.Contains(why, "not started") {
		t.Errorf("Ready() before Run = %v, %q; want false, not started", ok, why)
	}
	svc, stop := runUntilStopped(t, log)
	runFor := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := svc.Run(ctx)
		return time.Since(start), err
	}
	if took, err := runFor(); err == nil || errors.Is(err, ErrServiceStopped) || took > time.Second {
		t.Errorf("a second Run while the first runs returned %v after %v; want an error at once, not ErrServiceStopped",
			err, took.Round(time.Millisecond))
	}
	stop()
	if ok, why := svc.Ready(); ok || !strings.Contains(why, "stopped") {
		t.Errorf("Ready() after Run returned = %v, %q; want false, stopped", ok, why)
	}
	if took, err := runFor(); !errors.Is(err, ErrServiceStopped) || took > time.Second {
		t.Errorf("Run after the first returned returned %v after %v; want ErrServiceStopped at once",
			err, took.Round(time.Millisecond))
	}
}
