package library

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// waitLimit bounds every wait of these tests.
const waitLimit = 10 * time.Second

// openLog opens an embedded event log in a temporary directory until the
// test ends.
func openLog(t *testing.T) *pubsub.Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	log, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), Stream: "ARTICLES", Name: "articles-test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open the event log: %v", err)
	}
	t.Cleanup(func() {
		if err := log.Close(); err != nil {
			t.Errorf("close the event log: %v", err)
		}
	})
	return log
}

// startLibrary runs a library over log until the test ends, and waits
// until it has read the log.
func startLibrary(t *testing.T, log EventLog) *Library {
	t.Helper()
	lib := New(log, slog.New(slog.NewTextHandler(io.Discard, nil)))
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- lib.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run the library: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	if err := lib.WaitReady(ctx); err != nil {
		t.Fatalf("the library was not read from the log: %v", err)
	}
	return lib
}

// code is err's library code, or "".
func code(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return ""
}

// hungLog is an event log whose appends do not answer until released or
// until their context ends, as when NATS stops answering.
type hungLog struct {
	*pubsub.Log
	appending chan struct{} // receives once per append that has begun
	release   chan struct{}
}

func (h *hungLog) AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	h.appending <- struct{}{}
	select {
	case <-h.release:
		return h.Log.AppendKeyed(ctx, key, rest, data, o)
	case <-ctx.Done():
		return pubsub.AppendResult{}, ctx.Err()
	}
}

// TestCommandQueuedBehindAHungOneKeepsItsDeadline: a command waiting for
// another one of this replica, whose append hangs, gives up when its own
// context ends rather than when the other one does.
func TestCommandQueuedBehindAHungOneKeepsItsDeadline(t *testing.T) {
	h := &hungLog{Log: openLog(t), appending: make(chan struct{}, 2), release: make(chan struct{})}
	lib := startLibrary(t, h)
	first := make(chan error, 1)
	go func() {
		_, err := lib.CreateAuthor(context.Background(), "Ada", "Lovelace")
		first <- err
	}()
	t.Cleanup(func() {
		close(h.release)
		<-first
	})
	select {
	case <-h.appending:
	case <-time.After(waitLimit):
		t.Fatal("the first command never appended")
	}

	const deadline = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	second := make(chan error, 1)
	go func() {
		_, err := lib.CreateAuthor(ctx, "Grace", "Hopper")
		second <- err
	}()
	select {
	case err := <-second:
		if code(err) != CodeUnavailable {
			t.Fatalf("the queued command failed with %v (%s), want %s", err, code(err), CodeUnavailable)
		}
	case <-time.After(deadline + 2*time.Second):
		t.Fatalf("the queued command with a %s deadline was still waiting %s later", deadline, 2*time.Second)
	}
}

// unseenLog stores appends where the library does not read them, as when
// this replica cannot follow the log for a while after a write.
type unseenLog struct{ *pubsub.Log }

func (u unseenLog) AppendKeyed(ctx context.Context, _, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error) {
	return u.Log.AppendKeyed(ctx, "elsewhere", rest, data, o)
}

// TestCommandStoredButNotAppliedSaysSo: when a command was stored but this
// replica does not apply it in time, the error says it was stored rather
// than inviting a retry that would store it twice (a second article).
func TestCommandStoredButNotAppliedSaysSo(t *testing.T) {
	lib := startLibrary(t, unseenLog{openLog(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := lib.CreateAuthor(ctx, "Ada", "Lovelace")
	if code(err) != CodeUnavailable || !strings.Contains(err.Error(), "was stored") || strings.Contains(err.Error(), "retry shortly") {
		t.Fatalf("a command stored but not applied in time failed with %q (%s), want %s saying it was stored", err, code(err), CodeUnavailable)
	}
}

// TestWatchAfterThePastEndOfTheLogIsRefused: a position the log never held
// (a forged or corrupted cursor of this log's incarnation) is a bad
// argument, answered once a read shows the log ends before it, not a
// five-second wait ending in "unavailable; retry".
func TestWatchAfterThePastEndOfTheLogIsRefused(t *testing.T) {
	lib := startLibrary(t, openLog(t))
	if _, err := lib.CreateAuthor(t.Context(), "Ada", "Lovelace"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	past := uint64(1000)
	w, err := lib.Watch(t.Context(), &past)
	if err == nil {
		w.Close()
	}
	if code(err) != CodeBadUserInput || time.Since(begin) > 2*time.Second {
		t.Fatalf("watching after position %d of a log of one entry: %v (%s) after %s, want %s within 2s",
			past, err, code(err), time.Since(begin).Round(time.Millisecond), CodeBadUserInput)
	}
}

// TestCloseEndsAWaitingNext: Close, from another goroutine, ends a Next
// that is waiting for a change, as its documentation says.
func TestCloseEndsAWaitingNext(t *testing.T) {
	lib := startLibrary(t, openLog(t))
	w, err := lib.Watch(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	next := make(chan error, 1)
	go func() {
		_, err := w.Next(ctx)
		next <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Next wait
	w.Close()
	select {
	case err := <-next:
		if !errors.Is(err, ErrWatcherClosed) {
			t.Fatalf("Next ended with %v after Close, want ErrWatcherClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next was still waiting 2s after Close")
	}
}

// TestBlankNamesAndTitlesAreRefused: a name or title of white space alone
// is refused with BAD_USER_INPUT before anything is stored; an empty one
// already was, by the length check every replica applies.
func TestBlankNamesAndTitlesAreRefused(t *testing.T) {
	lib := startLibrary(t, openLog(t))
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	author, err := lib.CreateAuthor(ctx, "Ada", "Lovelace")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		do   func() error
	}{
		{"blank first name", func() error { _, err := lib.CreateAuthor(ctx, " \t", "Lovelace"); return err }},
		{"blank last name", func() error { _, err := lib.CreateAuthor(ctx, "Ada", "\u3000"); return err }},
		{"empty first name", func() error { _, err := lib.CreateAuthor(ctx, "", "Lovelace"); return err }},
		{"blank title", func() error { _, err := lib.AddArticle(ctx, author.ID, "  ", "text"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); code(err) != CodeBadUserInput {
				t.Fatalf("err = %v, want %s", err, CodeBadUserInput)
			}
		})
	}
	if authors := lib.Authors(); len(authors) != 1 {
		t.Errorf("%d authors stored, want only the first", len(authors))
	}
}
