package pubsub

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedServerName is the server name of the embedded NATS server.
const embeddedServerName = "herald-embedded"

// dataDirLockName is the file in the data dir that the embedded server's
// lock is taken on (lockDataDir).
const dataDirLockName = "herald.lock"

// embedded is an in-process NATS server and the lock on its data dir.
type embedded struct {
	srv  *server.Server
	lock *os.File // nil where directories cannot be locked
}

// stop shuts the server down, then lets its data dir go.
func (e *embedded) stop() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	if e.lock != nil {
		_ = e.lock.Close()
	}
}

// startEmbedded starts an in-process NATS server with JetStream storing its
// files under dataDir, which it locks (ErrDataDirInUse while another holds
// it). When listenAddr is empty the server opens no socket at all. The
// server is ready for connections when startEmbedded returns; on error
// nothing is left running or locked.
func startEmbedded(ctx context.Context, dataDir, listenAddr string, logger *slog.Logger) (*embedded, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("start embedded NATS server: Options.DataDir is required when no URLs are given")
	}
	if err := checkWritableDir(dataDir); err != nil {
		return nil, fmt.Errorf("start embedded NATS server: data dir %q is %w: %w", dataDir, ErrDataDirNotWritable, err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS server: data dir %q: %w", dataDir, err)
	}
	srv, err := startServer(ctx, dataDir, listenAddr, logger)
	if err != nil {
		if lock != nil {
			_ = lock.Close()
		}
		return nil, err
	}
	return &embedded{srv: srv, lock: lock}, nil
}

// startServer starts the server of startEmbedded, on a data dir locked.
func startServer(ctx context.Context, dataDir, listenAddr string, logger *slog.Logger) (*server.Server, error) {
	sopts := &server.Options{
		ServerName: embeddedServerName,
		JetStream:  true,
		StoreDir:   dataDir,
		DontListen: listenAddr == "",
		NoSigs:     true,
		NoLog:      true,
	}
	if listenAddr != "" {
		host, portStr, err := net.SplitHostPort(listenAddr)
		if err != nil {
			return nil, fmt.Errorf("start embedded NATS server: invalid ListenAddr %q: %w", listenAddr, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 {
			return nil, fmt.Errorf("start embedded NATS server: invalid port in ListenAddr %q", listenAddr)
		}
		if port == 0 {
			port = server.RANDOM_PORT // nats-server treats 0 as "default port 4222".
		}
		sopts.Host = host
		sopts.Port = port
	}

	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS server (data dir %q): %w", dataDir, err)
	}
	sl := &serverLogger{log: logger.With("component", "nats-server")}
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()

	fail := func(reason string) (*server.Server, error) {
		srv.Shutdown()
		srv.WaitForShutdown()
		where := fmt.Sprintf("data dir %q", dataDir)
		if listenAddr != "" {
			where += fmt.Sprintf(", listen %s", listenAddr)
		}
		return nil, fmt.Errorf("start embedded NATS server (%s): %s", where, oneLine(reason))
	}
	// Start runs JetStream set-up synchronously and reports problems through
	// the logger; listener problems show up shortly after. Poll in short
	// steps so a fatal error or ctx ends the wait early.
	for {
		if msg := sl.fatal(); msg != "" {
			return fail(msg)
		}
		if srv.ReadyForConnections(50 * time.Millisecond) {
			break
		}
		if err := ctx.Err(); err != nil {
			if msg := sl.fatal(); msg != "" {
				return fail(msg)
			}
			return fail("not ready for connections: " + err.Error())
		}
	}
	if !srv.JetStreamEnabled() {
		if msg := sl.fatal(); msg != "" {
			return fail(msg)
		}
		return fail("JetStream did not start")
	}
	return srv, nil
}

// checkWritableDir creates dir if needed and proves a file can be written in it.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".herald-write-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	werr := f.Close()
	rerr := os.Remove(name)
	if werr != nil {
		return werr
	}
	return rerr
}

// serverLogger forwards nats-server log lines to slog and remembers the
// first fatal error so start-up can report it.
type serverLogger struct {
	log *slog.Logger

	mu       sync.Mutex
	fatalMsg string
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg
}

// Noticef implements server.Logger. Notices are start-up chatter: debug level.
func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// Warnf implements server.Logger.
func (l *serverLogger) Warnf(format string, v ...any) {
	l.log.Warn(fmt.Sprintf(format, v...))
}

// Fatalf implements server.Logger. It does not exit the process.
func (l *serverLogger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.fatalMsg == "" {
		l.fatalMsg = msg
	}
	l.mu.Unlock()
	l.log.Error(msg)
}

// Errorf implements server.Logger.
func (l *serverLogger) Errorf(format string, v ...any) {
	l.log.Error(fmt.Sprintf(format, v...))
}

// Debugf implements server.Logger.
func (l *serverLogger) Debugf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// Tracef implements server.Logger.
func (l *serverLogger) Tracef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}
