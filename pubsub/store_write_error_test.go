package pubsub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// TestServerLoggerStoreWriteError: serverLogger remembers the first line
// of nats-server saying a store took a permanent write error, and no other.
func TestServerLoggerStoreWriteError(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lines []string // logged through Errorf, in order
		want  string   // what storeWriteError then says
	}{
		{"file store", []string{
			`Filestore [HERALD_P0] Critical write error: error opening msg block file ["/d/jetstream/$G/streams/HERALD_P0/msgs/2.blk"]: open /d/jetstream/$G/streams/HERALD_P0/msgs/2.blk: too many open files`,
		}, `Filestore [HERALD_P0] Critical write error: error opening msg block file ["/d/jetstream/$G/streams/HERALD_P0/msgs/2.blk"]: open /d/jetstream/$G/streams/HERALD_P0/msgs/2.blk: too many open files`},
		{"stream", []string{
			"JetStream stream '$G > HERALD_P0' critical write error: write /d/x.blk: no space left on device",
		}, "JetStream stream '$G > HERALD_P0' critical write error: write /d/x.blk: no space left on device"},
		{"the first of several", []string{
			"JetStream failed to store a msg on stream '$G > HERALD_P0': too many open files",
			"Filestore [HERALD_P0] Critical write error: first",
			"JetStream stream '$G > HERALD_P0' critical write error: second",
		}, "Filestore [HERALD_P0] Critical write error: first"},
		{"other store errors", []string{
			"JetStream failed to store a msg on stream '$G > HERALD_P0': write /d: no space left on device",
			"Error listening on port: 127.0.0.1:4222, \"address already in use\"",
			"Temporary Client Accept Error(accept tcp: too many open files), sleeping 10ms",
		}, ""},
		{"a connection's line quoting it", []string{
			"127.0.0.1:43922 - cid:24 - Critical write error: from a client",
		}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := recordingLogger()
			l := &serverLogger{log: logger}
			for _, line := range tt.lines {
				l.Errorf("%s", line)
			}
			if got := l.storeWriteError(); got != tt.want {
				t.Errorf("storeWriteError after %q: %q; want %q", tt.lines, got, tt.want)
			}
		})
	}
}

// watchedByHand opens an embedded Log whose storeWatch is stopped, so
// that the test runs its checks itself, one at a time.
func watchedByHand(t *testing.T) (*Log, *embedded, context.Context) {
	t.Helper()
	l := openEmbedded(t, Options{})
	e := l.emb
	e.watch.stop() // l.Close stops it again: a no-op
	mustAdd(t, l, "before", "x")
	return l, e, testCtx(t, 30*time.Second)
}

// criticalWriteError is the line nats-server's file store logs on a block
// file it cannot open for want of a file descriptor.
const criticalWriteError = `Filestore [%s] Critical write error: error opening msg block file ["%s"]: too many open files`

// TestStoreWatchLoggedWriteError: a write error the server logged makes
// the store faulty although nats-server's health check reports none; the
// watch's check says so (Health fails with ErrStoreFailed naming it) and
// restarts the server, which clears it. The same line logged afterwards by
// the server replaced marks nothing.
func TestStoreWatchLoggedWriteError(t *testing.T) {
	l, e, ctx := watchedByHand(t)
	if cause := e.watch.check(ctx, e, nil); cause != nil {
		t.Fatalf("check of a store that is fine: %v", cause)
	}

	oldSrv, oldLog := e.running()
	oldLog.Errorf(criticalWriteError, l.lay.dirStream, "/x/2.blk")
	if h := oldSrv.Healthz(&server.HealthzOptions{Details: true}); len(h.Errors) != 0 {
		t.Fatalf("nats-server's health check reports %v; the test wants a write error it does not see", h.Errors)
	}
	fault := storeFault(e.running())
	if fault == nil || !strings.Contains(fault.Error(), "Critical write error") {
		t.Fatalf("storeFault after the server logged a write error: %v; want it", fault)
	}

	// The check reports it, stops JetStream and restarts the server, all
	// in one go (the disk has room): watch what Health says meanwhile.
	done := make(chan error, 1)
	go func() { done <- e.watch.check(ctx, e, nil) }()
	var during error
	var cause error
	for waiting := true; waiting; {
		select {
		case cause = <-done:
			waiting = false
		case <-time.After(time.Millisecond):
		}
		if err := l.storeFailure(); err != nil && during == nil {
			during = err
		}
	}
	if cause != nil {
		t.Fatalf("check with the cause gone after a restart: %v", cause)
	}
	if !errors.Is(during, ErrStoreFailed) || !strings.Contains(during.Error(), "Critical write error") {
		t.Errorf("Health until the restart: %v; want ErrStoreFailed naming the write error", during)
	}
	newSrv, _ := e.running()
	if newSrv == nil || newSrv == oldSrv {
		t.Fatalf("server after the check: %p (was %p); want another", newSrv, oldSrv)
	}
	if err := storeFault(e.running()); err != nil {
		t.Fatalf("storeFault after the restart: %v; want the write error cleared", err)
	}
	// Each call has a context of its own: one sent as the server was
	// replaced, before the connection saw the old one go, is never
	// answered and waits its context out.
	waitFor(t, 15*time.Second, "Health to pass after the restart", func() bool { return l.Health(testCtx(t, 2*time.Second)) == nil })
	waitFor(t, 10*time.Second, "a write to be stored again", func() bool {
		_, err := l.AddToDirectory(testCtx(t, 2*time.Second), "after", []byte("x"))
		return err == nil || errors.Is(err, ErrKeyExists) // an attempt unanswered stored it
	})

	// The old server, gone, logs the line once more: not the new one's.
	oldLog.Errorf(criticalWriteError, l.lay.dirStream, "/x/3.blk")
	if err := storeFault(e.running()); err != nil {
		t.Fatalf("storeFault after the replaced server logged a write error: %v; want nil", err)
	}
	if cause := e.watch.check(ctx, e, nil); cause != nil || l.storeFailure() != nil {
		t.Fatalf("check after the replaced server logged a write error: %v (Health: %v); want nil", cause, l.storeFailure())
	}
	if srv, _ := e.running(); srv != newSrv {
		t.Fatal("the server was restarted for a line of the one it replaced")
	}
}

// TestStoreWatchRestartLeavesStreamUnloaded: a restart whose server does
// not load every stream of the data dir (as when it starts with file
// descriptors still short) counts as failed: Health says which stream,
// and the next check starts the server again, until it loads them all.
func TestStoreWatchRestartLeavesStreamUnloaded(t *testing.T) {
	l, e, ctx := watchedByHand(t)
	srv, sl := e.running()
	sum := filepath.Join(srv.StoreDir(), server.DEFAULT_GLOBAL_ACCOUNT, "streams", l.lay.dirStream, "meta.sum")
	good, err := os.ReadFile(sum)
	if err != nil {
		t.Fatal(err)
	}
	// nats-server skips a stream whose meta.sum does not match, with a
	// warning, as it skips one whose files it cannot open.
	if err := os.WriteFile(sum, []byte("0000000000000000"), 0o600); err != nil {
		t.Fatal(err)
	}
	sl.Errorf(criticalWriteError, l.lay.dirStream, "/x/2.blk")

	cause := e.watch.check(ctx, e, nil)
	if cause == nil {
		t.Fatal("check with a stream left unloaded by the restart: nil; want the cause kept")
	}
	for range 2 { // retried at every check, not given up on
		herr := l.storeFailure()
		if !errors.Is(herr, ErrStoreFailed) || !strings.Contains(herr.Error(), "did not load stream") ||
			!strings.Contains(herr.Error(), l.lay.dirStream) || !strings.Contains(herr.Error(), "retrying") {
			t.Fatalf("Health after the restart failed: %v; want ErrStoreFailed naming the stream not loaded, retrying", herr)
		}
		if srv, _ := e.running(); srv != nil {
			t.Fatal("a server that did not load every stream is left running")
		}
		cause = e.watch.check(ctx, e, cause)
		if cause == nil {
			t.Fatal("check with the stream still unloadable: nil; want the cause kept")
		}
	}

	if err := os.WriteFile(sum, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if cause := e.watch.check(ctx, e, cause); cause != nil {
		t.Fatalf("check with every stream loadable again: %v", cause)
	}
	// Each call has a context of its own: one sent as the server was
	// replaced, before the connection saw the old one go, is never
	// answered and waits its context out.
	waitFor(t, 15*time.Second, "Health to pass after the restart", func() bool { return l.Health(testCtx(t, 2*time.Second)) == nil })
	waitFor(t, 10*time.Second, "a write to be stored again", func() bool {
		_, err := l.AddToDirectory(testCtx(t, 2*time.Second), "after", []byte("x"))
		return err == nil || errors.Is(err, ErrKeyExists) // an attempt unanswered stored it
	})
}
