package pubsub

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// testLogger discards logs unless PUBSUB_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("PUBSUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testCtx is a context bounded by d and by the test's deadline.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// freeAddr returns a 127.0.0.1 "host:port" that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close probe listener: %v", err)
	}
	return addr
}

// openLog opens a Log with test defaults filled in and closes it at cleanup.
func openLog(t *testing.T, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	l, err := Open(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// openEmbedded opens an embedded Log in a fresh temp dir.
func openEmbedded(t *testing.T, opts Options) *Log {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	return openLog(t, opts)
}

// startNATS runs a plain nats-server on a random 127.0.0.1 port, with or
// without JetStream, and returns its client URL.
func startNATS(t *testing.T, jetStream bool) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "test-" + strconv.FormatBool(jetStream),
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  jetStream,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		t.Fatalf("new nats server: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return srv.ClientURL()
}

// follower runs Follow in a goroutine and exposes what it delivers.
type follower struct {
	entries chan Entry
	done    chan error
	cancel  context.CancelFunc
}

// startFollow starts Follow(ctx, from) with an unbuffered-enough channel;
// the test's cleanup stops it and waits.
func startFollow(t *testing.T, l *Log, from uint64) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &follower{entries: make(chan Entry, 1000), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- l.Follow(ctx, from, func(e Entry) error {
			f.entries <- e
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(25 * time.Second):
			t.Error("Follow did not return after cancel")
		}
	})
	return f
}

// next waits for n entries.
func (f *follower) next(t *testing.T, n int, within time.Duration) []Entry {
	t.Helper()
	var got []Entry
	timer := time.NewTimer(within)
	defer timer.Stop()
	for len(got) < n {
		select {
		case e := <-f.entries:
			got = append(got, e)
		case err := <-f.done:
			t.Fatalf("Follow returned early after %d of %d entries: %v", len(got), n, err)
		case <-timer.C:
			t.Fatalf("got %d of %d entries within %s: %+v", len(got), n, within, got)
		}
	}
	return got
}

// quiet asserts no further entry arrives for d.
func (f *follower) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-f.entries:
		t.Fatalf("unexpected extra entry: seq %d subject %q", e.Seq, e.Subject)
	case <-time.After(d):
	}
}

// stop cancels Follow and returns its result, failing if it takes over d.
func (f *follower) stop(t *testing.T, d time.Duration) error {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		f.done <- err // let the cleanup see it too
		return err
	case <-time.After(d):
		t.Fatalf("Follow did not return within %s of cancel", d)
		return nil
	}
}

func seqs(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func mustAppend(t *testing.T, l *Log, subject, data, dedupID string) AppendResult {
	t.Helper()
	res, err := l.Append(testCtx(t, 5*time.Second), subject, []byte(data), dedupID)
	if err != nil {
		t.Fatalf("Append(%q, %q): %v", subject, data, err)
	}
	return res
}

func mustLastSeq(t *testing.T, l *Log) uint64 {
	t.Helper()
	seq, err := l.LastSeq(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("LastSeq: %v", err)
	}
	return seq
}

// waitFor polls cond every 20ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errStop = errors.New("stop here")
