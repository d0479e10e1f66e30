package pubsub

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestEmbeddedLockFileReplaced: another file at the data dir's lock path
// (the data dir replaced under the server) makes Health fail, naming the
// lock file, and writes fail at once, storing nothing; with the locked file
// back, the server is started again on the same port, Health passes, and
// both the Log and a TCP client of that port write again.
func TestEmbeddedLockFileReplaced(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, Options{DataDir: dir, ListenAddr: "127.0.0.1:0"})
	mustAdd(t, l, "before", "x")
	mustAppendKeyed(t, l, "k1", "a", "one", AppendOptions{})
	ctx := testCtx(t, 30*time.Second)

	lockPath := filepath.Join(dir, dataDirLockName)
	if err := os.Rename(lockPath, lockPath+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var herr error
	waitFor(t, 10*time.Second, "Health to fail", func() bool {
		// A call whose requests are out when JetStream stops waits out
		// its context: it must still say why.
		herr = l.Health(testCtx(t, 2*time.Second))
		return herr != nil
	})
	if !errors.Is(herr, ErrStoreFailed) || !strings.Contains(herr.Error(), lockPath) || !strings.Contains(herr.Error(), dir) {
		t.Fatalf("Health: %v; want ErrStoreFailed naming %s", herr, lockPath)
	}
	start := time.Now()
	if _, err := l.AddToDirectory(ctx, "during", []byte("x")); !errors.Is(err, ErrUnreachable) || time.Since(start) > 2*time.Second {
		t.Fatalf("AddToDirectory with the store stopped: %v after %s; want ErrUnreachable at once", err, time.Since(start))
	}
	// Reads too fail at once, saying why, rather than wait out their
	// context for a JetStream API nobody answers.
	for _, read := range []struct {
		name string
		call func(context.Context) error
	}{
		{"ReadKey", func(ctx context.Context) error {
			_, err := l.ReadKey(ctx, "k1", 0, func(Entry) error { return nil })
			return err
		}},
		{"KeyLastSeq", func(ctx context.Context) error { _, err := l.KeyLastSeq(ctx, "k1"); return err }},
		{"DirectoryLastSeq", func(ctx context.Context) error { _, err := l.DirectoryLastSeq(ctx); return err }},
		{"RestLastSeq", func(ctx context.Context) error { _, err := l.RestLastSeq(ctx, 0, "a"); return err }},
	} {
		start := time.Now()
		err := read.call(testCtx(t, 5*time.Second))
		if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrStoreFailed) || time.Since(start) > 2*time.Second {
			t.Errorf("%s with the store stopped: %v after %s; want ErrUnreachable and ErrStoreFailed at once",
				read.name, err, time.Since(start).Round(time.Millisecond))
		}
	}

	if err := os.Rename(lockPath+".old", lockPath); err != nil {
		t.Fatal(err)
	}
	// Each call has a context of its own: one sent as the server was
	// replaced, before the connection saw the old one go, is never
	// answered and waits its context out.
	waitFor(t, 15*time.Second, "Health to pass again", func() bool { return l.Health(testCtx(t, 2*time.Second)) == nil })
	waitFor(t, 10*time.Second, "a write to be stored again", func() bool {
		_, err := l.AddToDirectory(testCtx(t, 2*time.Second), "after", []byte("x"))
		return err == nil || errors.Is(err, ErrKeyExists) // an attempt unanswered stored it
	})
	nc, err := nats.Connect(l.ClientURL(), nats.Timeout(2*time.Second))
	if err != nil {
		t.Fatalf("connect to %s after the restart: %v", l.ClientURL(), err)
	}
	defer nc.Close()
	if _, err := nc.Request("$JS.API.INFO", nil, 2*time.Second); err != nil {
		t.Fatalf("JetStream over %s after the restart: %v", l.ClientURL(), err)
	}
	if _, err := l.AddToDirectory(ctx, "during", []byte("x")); err != nil {
		t.Fatalf("the key refused while the store was stopped was stored after all: %v", err)
	}
}

// TestOptionsMaxStore: a negative MaxStore is refused before anything
// starts.
func TestOptionsMaxStore(t *testing.T) {
	_, err := Open(testCtx(t, 5*time.Second), Options{DataDir: t.TempDir(), MaxStore: -1, Logger: testLogger()})
	if err == nil || !strings.Contains(err.Error(), "MaxStore") {
		t.Fatalf("Open with MaxStore -1: %v", err)
	}
}
