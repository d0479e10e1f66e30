package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// storeCheckInterval is how often storeWatch looks at the data dir and the
// store: about how long a data dir deleted under the server may go on
// taking writes, and how soon writes resume once space is freed.
const storeCheckInterval = time.Second

// restartTimeout bounds starting the embedded server again.
const restartTimeout = 10 * time.Second

// storeWatch keeps an eye on the embedded server's store, so that the
// replica says when it cannot store anything, and heals where it can.
//
// Two things go wrong under a running server that it would not notice or
// not get over by itself:
//
//   - A write its file system refuses (a full disk: ENOSPC), or a block
//     file it cannot open (the process out of file descriptors: EMFILE),
//     becomes the stream's permanent write error: nats-server fails every
//     later write to that stream without answering the publisher, so each
//     waits for its acknowledgement in vain, for as long as the server
//     runs, even once space or descriptors are back (nats-server offers
//     nothing to clear it).
//   - The data dir is deleted or moved away: the server goes on writing
//     to files no path names, so what it acknowledges is gone at the next
//     start, and the lock file it holds no longer keeps a second server
//     off the path.
//
// On either, the watch stops the server's JetStream, so that every write
// fails at once (no stream answers: ErrUnreachable) rather than wait for
// an acknowledgement, or be acknowledged and lost, and Health reports why
// (ErrStoreFailed). Once the lock file is again the one locked and the
// disk has minFreeBytes free and takes a write, it restarts the server
// in-process on the same data dir and port: the server reads its streams
// afresh, without the write error, and the Log's connection reconnects
// to it as to any NATS server that restarted. A start that left a stream
// unread or faulty (descriptors still short, say) counts as failed, and is
// tried again at the next check.
type storeWatch struct {
	failure atomic.Pointer[error] // what Health reports; nil while the store is fine
	cancel  context.CancelFunc    // ends the goroutine; nil until start
	done    chan struct{}         // closed when the goroutine has ended
	once    sync.Once
}

// start runs the watch over e until stop.
func (w *storeWatch) start(e *embedded) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	w.done = make(chan struct{})
	go w.run(ctx, e)
}

// stop ends the watch and waits for it, a restart under way included
// (bounded by restartTimeout, cut short by the cancellation). Idempotent;
// a no-op when it never started.
func (w *storeWatch) stop() {
	w.once.Do(func() {
		if w.cancel != nil {
			w.cancel()
			<-w.done
		}
	})
}

// err is the store's failure, wrapping ErrStoreFailed, or nil.
func (w *storeWatch) err() error {
	if p := w.failure.Load(); p != nil {
		return *p
	}
	return nil
}

func (w *storeWatch) run(ctx context.Context, e *embedded) {
	defer close(w.done)
	t := time.NewTicker(storeCheckInterval)
	defer t.Stop()
	var cause error // why JetStream is stopped; nil while it runs
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cause = w.check(ctx, e, cause)
	}
}

// check looks at the store once. With cause nil (JetStream running), it
// stops JetStream when something is wrong; otherwise it restarts the
// server when the cause is gone. It returns the cause in force after it.
func (w *storeWatch) check(ctx context.Context, e *embedded, cause error) error {
	lockErr := e.checkLock()
	if cause == nil {
		cause = lockErr
		if cause == nil {
			cause = storeFault(e.running())
		}
		if cause == nil {
			return nil
		}
		e.logger.Error("the embedded NATS server's store failed: its JetStream is stopped until the cause is gone",
			"data_dir", e.dataDir, "err", cause)
		// Said before JetStream stops, so that no request fails meanwhile
		// without its reason (see Log.storeStopped).
		w.report(e, cause, "JetStream is stopped until the cause is gone")
		if srv := e.current(); srv != nil {
			_ = srv.ShutdownJetStream() // it never fails
		}
	}
	if lockErr != nil {
		w.report(e, lockErr, "JetStream is stopped, so that no write is acknowledged that the next start would not find: "+
			"put the directory back as it was, or restart Herald")
		return lockErr
	}
	if err := e.checkRoom(); err != nil {
		w.report(e, cause, fmt.Sprintf("JetStream is stopped and starts again once the disk has room and takes a file (%v)", err))
		return cause
	}
	if err := e.restart(ctx); err != nil {
		if ctx.Err() == nil {
			e.logger.Warn("starting the embedded NATS server again failed; retrying", "data_dir", e.dataDir, "err", err)
		}
		w.report(e, cause, fmt.Sprintf("starting the embedded NATS server again failed (retrying every %s): %v", storeCheckInterval, err))
		return cause
	}
	w.failure.Store(nil)
	e.logger.Info("the embedded NATS server started again: its store takes writes", "data_dir", e.dataDir, "was", cause)
	return nil
}

// report sets what Health says: the data dir, what went wrong, what
// happens about it.
func (w *storeWatch) report(e *embedded, cause error, next string) {
	err := newError(ErrStoreFailed, cause, "data dir %q: %v: %s", e.dataDir, cause, next)
	w.failure.Store(&err)
}

// checkLock fails when the data dir's lock file is not the file the
// server locked at start: removed, or another at its path (the data dir
// deleted, moved or replaced while the server ran). It compares device and
// inode (os.SameFile).
func (e *embedded) checkLock() error {
	if e.lock == nil {
		return nil
	}
	path := filepath.Join(e.dataDir, dataDirLockName)
	now, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("its lock file %s is gone (was the data dir deleted or moved while Herald ran?)", path)
	case err != nil:
		return fmt.Errorf("its lock file %s cannot be checked: %w", path, err)
	case !os.SameFile(now, e.lockFile):
		return fmt.Errorf("its lock file %s is another file than the one this replica locked (was the data dir replaced while Herald ran?)", path)
	}
	return nil
}

// checkRoom fails while the data dir's disk has less than minFreeBytes
// free or does not take a file.
func (e *embedded) checkRoom() error {
	if err := checkFreeSpace(e.dataDir); err != nil {
		return err
	}
	if err := checkWritableDir(e.dataDir); err != nil {
		return fmt.Errorf("%w: %w", ErrDataDirNotWritable, err)
	}
	return nil
}

// restart shuts the server down and starts another on the same data dir,
// port and limits, bounded by ctx and restartTimeout. Meanwhile current is
// nil, and the Log's connection keeps trying to reconnect. A server that
// started without every stream of the data dir, or with a store fault,
// is shut down again and restart fails: the start met what the store
// failed of (descriptors still short, say), and is to be tried again.
func (e *embedded) restart(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, restartTimeout)
	defer cancel()
	e.mu.Lock()
	old := e.srv
	e.srv = nil
	e.mu.Unlock()
	if old != nil {
		old.Shutdown()
		old.WaitForShutdown()
	}
	srv, sl, err := startServer(ctx, e.dataDir, e.listenAddr, e.token, e.maxStore, e.logger)
	if err != nil {
		return err
	}
	err = storeFault(srv, sl)
	if err == nil {
		err = checkStreamsLoaded(srv)
	}
	if err != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return fmt.Errorf("start embedded NATS server (data dir %q): %w", e.dataDir, err)
	}
	e.mu.Lock()
	e.srv, e.srvLog = srv, sl
	e.mu.Unlock()
	return nil
}

// checkStreamsLoaded fails when a stream directory of srv's store is not
// among the streams srv loaded, or the directory cannot be listed.
// nats-server skips, with a warning at most, a stream whose files it could
// not open or read when it started, and its whole store when it could not
// list it (both under EMFILE): a server started so would go on without
// those streams, their entries out of reach.
func checkStreamsLoaded(srv *server.Server) error {
	dir := filepath.Join(srv.StoreDir(), server.DEFAULT_GLOBAL_ACCOUNT, "streams")
	des, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // no stream yet
	case err != nil:
		return fmt.Errorf("list its streams: %w", err)
	}
	acc, err := srv.JszAccount(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return fmt.Errorf("list the streams it loaded: %w", err)
	}
	loaded := make(map[string]bool, len(acc.Streams))
	for _, sd := range acc.Streams {
		loaded[sd.Name] = true
	}
	for _, de := range des {
		// nats-server marks a stream being deleted with a leading "."
		// and removes it at start.
		if !de.IsDir() || strings.HasPrefix(de.Name(), ".") || loaded[de.Name()] {
			continue
		}
		return fmt.Errorf("it did not load stream %q from %s (see its warning logged above)", de.Name(), filepath.Join(dir, de.Name()))
	}
	return nil
}

// storeFault is what makes srv's store fail every write until restarted:
// a permanent write error, which srv logged through sl or nats-server's
// health check reports, or JetStream stopped by nats-server itself (it
// does so when the file system refuses it permission). nil when there is
// none, or srv is nil.
//
// The log comes first: the health check finds a stream's write error only
// by listing the store's directories, and, when it cannot (the process is
// out of file descriptors, the very cause of such an error), checks no
// stream and reports none. nats-server offers no other way to read it.
func storeFault(srv *server.Server, sl *serverLogger) error {
	if srv == nil {
		return nil
	}
	if sl != nil {
		if msg := sl.storeWriteError(); msg != "" {
			return fmt.Errorf("nats-server: %s", oneLine(msg))
		}
	}
	if !srv.JetStreamEnabled() {
		return errors.New("nats-server stopped its JetStream (the file system refused it a write? see its log)")
	}
	h := srv.Healthz(&server.HealthzOptions{Details: true})
	for _, he := range h.Errors {
		if he.Type == server.HealthzErrorStream && strings.Contains(he.Error, "write error") {
			return errors.New(he.Error)
		}
	}
	return nil
}
