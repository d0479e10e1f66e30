//go:build linux

package pubsub

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fdExhaustionChild names the environment variable that makes
// TestEmbeddedOutOfFileDescriptors run its body: in a process of its own,
// since it leaves that process without a file descriptor to spare.
const fdExhaustionChild = "HERALD_TEST_FD_EXHAUSTION_CHILD"

// TestEmbeddedOutOfFileDescriptors: the process out of file descriptors,
// the embedded server's file store fails to open a block file, which is
// its permanent write error; nats-server's health check, unable to list
// the store's directories, reports nothing. Within a couple of checks
// Health fails with ErrStoreFailed naming the write error, and writes fail
// at once with ErrUnreachable; once descriptors are free again, the server
// is started again and writes are stored.
func TestEmbeddedOutOfFileDescriptors(t *testing.T) {
	if os.Getenv(fdExhaustionChild) == "" {
		cmd := exec.CommandContext(testCtx(t, 60*time.Second), os.Args[0],
			"-test.run=^TestEmbeddedOutOfFileDescriptors$", "-test.count=1", "-test.v", "-test.timeout=50s")
		cmd.Env = append(os.Environ(), fdExhaustionChild+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the test in a process of its own: %v\n%s", err, out)
		}
		return
	}

	l := openEmbedded(t, Options{}) // no ListenAddr: no socket, the connection in-process
	ctx := testCtx(t, 40*time.Second)
	// A stream of 32 kB blocks (the least, for a MaxBytes this small), so
	// that a few writes need a new block file.
	const stream = "FD_EXHAUSTION"
	if _, err := l.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{"fd-exhaustion"}, Storage: jetstream.FileStorage, MaxBytes: 100_000,
	}); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 10_000)
	for range 2 {
		if _, err := l.js.Publish(ctx, "fd-exhaustion", msg); err != nil {
			t.Fatal(err)
		}
	}
	mustAdd(t, l, "before", "x")

	// No descriptor to spare: a limit below the least number a new one
	// could take (0, 1 and 2 are open) fails every open, socket, pipe with
	// EMFILE, as when the process holds as many as its limit allows.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	short := lim
	short.Cur = 3
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &short); err != nil {
		t.Fatal(err)
	}
	restored := false
	release := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer release()
	if f, err := os.Open(os.DevNull); !errors.Is(err, syscall.EMFILE) {
		_ = f.Close()
		t.Fatalf("open with RLIMIT_NOFILE %d: %v; want EMFILE", short.Cur, err)
	}

	failed := false
	for range 6 {
		pctx := testCtx(t, 500*time.Millisecond)
		if _, err := l.js.Publish(pctx, "fd-exhaustion", msg); err != nil {
			failed = true
			break
		}
	}
	if !failed {
		t.Fatal("every write was stored with no file descriptor free: the test no longer makes the store fail")
	}
	// Within a check or two (a request in flight when JetStream stops
	// may fail otherwise first).
	var herr error
	waitFor(t, 3*time.Second, "Health to fail with ErrStoreFailed", func() bool {
		herr = l.Health(testCtx(t, time.Second))
		return errors.Is(herr, ErrStoreFailed)
	})
	if !strings.Contains(herr.Error(), "Critical write error") || !strings.Contains(herr.Error(), "too many open files") {
		t.Fatalf("Health out of file descriptors: %v; want ErrStoreFailed naming the write error", herr)
	}
	// Health says so just before JetStream stops (storeWatch.check), so a
	// write to a stream without the error may still be stored meanwhile.
	waitFor(t, 2*time.Second, "JetStream to stop", func() bool {
		_, err := l.AddToDirectory(testCtx(t, time.Second), "during", []byte("x"))
		return err != nil
	})
	start := time.Now()
	if _, err := l.AddToDirectory(ctx, "during", []byte("x")); !errors.Is(err, ErrUnreachable) || time.Since(start) > time.Second {
		t.Fatalf("AddToDirectory out of file descriptors: %v after %s; want ErrUnreachable at once", err, time.Since(start))
	}
	// Still out of them, a few checks later: still failing, retrying.
	time.Sleep(2 * storeCheckInterval)
	if herr := l.Health(testCtx(t, time.Second)); !errors.Is(herr, ErrStoreFailed) {
		t.Fatalf("Health still out of file descriptors: %v; want ErrStoreFailed", herr)
	}

	release()
	// Each call has a context of its own: one sent as the server was
	// replaced, before the connection saw the old one go, is never
	// answered and waits its context out.
	waitFor(t, 15*time.Second, "Health to pass again", func() bool { return l.Health(testCtx(t, 2*time.Second)) == nil })
	waitFor(t, 10*time.Second, "a write to be stored again", func() bool {
		_, err := l.AddToDirectory(testCtx(t, 2*time.Second), "after", []byte("x"))
		return err == nil || errors.Is(err, ErrKeyExists) // an attempt unanswered stored it
	})
	if _, err := l.js.Publish(ctx, "fd-exhaustion", msg); err != nil {
		t.Fatalf("a write to the stream that failed, after the restart: %v", err)
	}
}
