package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// embeddedServerName is the server name of the embedded NATS server.
const embeddedServerName = "herald-embedded"

// dataDirLockName is the file in the data dir that the embedded server's
// lock is taken on (lockDataDir).
const dataDirLockName = "herald.lock"

// embedded is an in-process NATS server, the lock on its data dir, and the
// watch over its store (storeWatch, in storewatch.go) that stops its
// JetStream when the store fails and starts the server again once the
// cause is gone. It is the nats.InProcessConnProvider of the Log's
// connection, so that connection follows the server across restarts.
type embedded struct {
	dataDir string
	// listenAddr is where the server accepts TCP clients, with the port
	// it was given at its first start, so that a restart takes the same
	// one and other replicas find it again; "" for none.
	listenAddr string
	// bound is where the server's listener is bound (a wildcard host
	// shows as such: 0.0.0.0, ::), nil without listenAddr; a restart
	// binds the same.
	bound     net.Addr
	clientURL string // where other replicas reach the server (with listenAddr), kept across restarts
	// token is the authorization token the server requires of every
	// client, this Log's in-process connection included; "" for none.
	token    string
	maxStore int64 // JetStreamMaxStore, as startServer sets it
	logger   *slog.Logger
	lock     *os.File    // nil where directories cannot be locked
	lockFile os.FileInfo // the lock file as locked, to tell when the path names another; nil with lock

	mu  sync.Mutex
	srv *server.Server // nil between a restart's stop and start
	// srvLog is srv's logger, replaced with it: it records a write error
	// srv's store logged (serverLogger.storeWriteError), so that a line
	// an earlier server logs late never marks the one running now.
	srvLog *serverLogger

	watch storeWatch
}

// current is the server running now, nil during a restart.
func (e *embedded) current() *server.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv
}

// running is the server running now and its logger, both nil during a
// restart: taken together, so that the logger is that server's.
func (e *embedded) running() (*server.Server, *serverLogger) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.srv, e.srvLog
}

// InProcessConn implements nats.InProcessConnProvider: a connection to
// the server running now. nats.go asks again at every reconnect, so the
// Log's connection finds the server a restart brought up.
func (e *embedded) InProcessConn() (net.Conn, error) {
	srv := e.current()
	if srv == nil {
		return nil, errors.New("the embedded NATS server is restarting")
	}
	return srv.InProcessConn()
}

// stop ends the watch, shuts the server down, then lets its data dir go.
func (e *embedded) stop() {
	e.watch.stop()
	e.mu.Lock()
	srv := e.srv
	e.srv, e.srvLog = nil, nil
	e.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
	if e.lock != nil {
		_ = e.lock.Close()
	}
}

// startEmbedded starts an in-process NATS server with JetStream storing its
// files under dataDir, which it locks (ErrDataDirInUse while another holds
// it), and the watch over its store. When listenAddr is empty the server
// opens no socket at all. A token, when not empty, is required of every
// client. maxStore bounds the JetStream file store (0: only the disk does).
// The server is ready for connections when startEmbedded returns; on error
// nothing is left running or locked.
func startEmbedded(ctx context.Context, dataDir, listenAddr, token string, maxStore int64, logger *slog.Logger) (*embedded, error) {
	if dataDir == "" {
		return nil, fmt.Errorf("start embedded NATS server: Options.DataDir is required when no URLs are given")
	}
	if err := checkWritableDir(dataDir); err != nil {
		return nil, fmt.Errorf("start embedded NATS server: data dir %q is %w: %w", dataDir, ErrDataDirNotWritable, err)
	}
	// On a full disk nats-server starts, but fails the first write it
	// makes, and every later one to that stream until it is restarted.
	if err := checkFreeSpace(dataDir); err != nil {
		return nil, fmt.Errorf("start embedded NATS server: data dir %q has %w: free space on it and start again", dataDir, err)
	}
	lock, err := lockDataDir(dataDir)
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS server: data dir %q: %w", dataDir, err)
	}
	e := &embedded{dataDir: dataDir, listenAddr: listenAddr, token: token, maxStore: maxStore, logger: logger, lock: lock}
	if lock != nil {
		if e.lockFile, err = lock.Stat(); err != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("start embedded NATS server: data dir %q: stat the lock file: %w", dataDir, err)
		}
	}
	srv, sl, err := startServer(ctx, dataDir, listenAddr, token, maxStore, logger)
	if err != nil {
		if lock != nil {
			_ = lock.Close()
		}
		return nil, err
	}
	e.srv, e.srvLog = srv, sl
	if listenAddr != "" {
		e.clientURL = embeddedClientURL(srv)
		e.bound = srv.Addr()
	}
	if addr, ok := srv.Addr().(*net.TCPAddr); ok && listenAddr != "" {
		host, _, _ := net.SplitHostPort(listenAddr) // checked by startServer
		e.listenAddr = net.JoinHostPort(host, strconv.Itoa(addr.Port))
	}
	e.watch.start(e)
	return e, nil
}

// startServer starts the server of startEmbedded, on a data dir locked,
// with a logger of its own, which it returns with it.
func startServer(ctx context.Context, dataDir, listenAddr, token string, maxStore int64, logger *slog.Logger) (*server.Server, *serverLogger, error) {
	if maxStore == 0 {
		// Left unset, nats-server fixes its store limit once, at start,
		// at 75% of the space free then plus what it already stores, and
		// never raises it: started on a nearly full disk, it would refuse
		// every write ("insufficient resources") for the rest of its life,
		// however much space is freed. A limit larger than the disk is no
		// harm: nats-server does not check it against the disk, which is
		// then the limit, and storeWatch deals with the disk filling up.
		maxStore = math.MaxInt64
	}
	sopts := &server.Options{
		ServerName:        embeddedServerName,
		JetStream:         true,
		JetStreamMaxStore: maxStore,
		StoreDir:          dataDir,
		DontListen:        listenAddr == "",
		NoSigs:            true,
		NoLog:             true,
		// Every client must present it: the in-process connection and,
		// on ListenAddr, other replicas and tools, which otherwise read
		// and write the whole event log. nats-server compares it in
		// constant time.
		Authorization: token,
	}
	if listenAddr != "" {
		host, portStr, err := net.SplitHostPort(listenAddr)
		if err != nil {
			return nil, nil, fmt.Errorf("start embedded NATS server: invalid ListenAddr %q: %w", listenAddr, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil || port < 0 || port > 65535 {
			return nil, nil, fmt.Errorf("start embedded NATS server: invalid port in ListenAddr %q", listenAddr)
		}
		if port == 0 {
			port = server.RANDOM_PORT // nats-server treats 0 as "default port 4222".
		}
		sopts.Host = host
		sopts.Port = port
	}

	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, nil, fmt.Errorf("start embedded NATS server (data dir %q): %w", dataDir, err)
	}
	sl := &serverLogger{log: logger.With("component", "nats-server")}
	srv.SetLoggerV2(sl, false, false, false)
	srv.Start()

	fail := func(reason string) (*server.Server, *serverLogger, error) {
		srv.Shutdown()
		srv.WaitForShutdown()
		where := fmt.Sprintf("data dir %q", dataDir)
		if listenAddr != "" {
			where += fmt.Sprintf(", listen %s", listenAddr)
		}
		return nil, nil, fmt.Errorf("start embedded NATS server (%s): %s", where, oneLine(reason))
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
	return srv, sl, nil
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

// clientLogInterval is the least time between two lines serverLogger
// logs, at WARN, about nats-server's connections from outside: whoever
// reaches ListenAddr (a port scanner, a health check on the wrong port, a
// replica with an old token) makes one per connection, and must neither
// fill the log nor page an operator who alerts on ERROR.
const clientLogInterval = 10 * time.Second

// serverLogger forwards nats-server log lines to slog and remembers the
// first fatal error so start-up can report it, and the first line saying
// the server's store took a permanent write error, so that storeWatch
// finds it (storeFault) without nats-server's health check, which misses
// it when the error is the process running out of file descriptors.
// Each server has its own: what it remembers is about that server only.
//
// Errors and warnings about one connection from outside (clientScoped)
// are that connection's doing, not the server's: they are logged at WARN,
// at most one per clientLogInterval, and the rest at DEBUG; the next WARN
// line says how many were held back. Everything else nats-server reports
// as an error stays ERROR, however often.
type serverLogger struct {
	log *slog.Logger
	now func() time.Time // nil for time.Now; tests set it

	mu       sync.Mutex
	fatalMsg string
	writeErr string // the first line storeWriteFailed matched
	// clientNext is when the next client-scoped line may be logged at
	// WARN; clientHeld counts those logged at DEBUG since the last one.
	clientNext time.Time
	clientHeld int
}

func (l *serverLogger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatalMsg
}

// storeWriteError is the first line of the server saying its store took
// a permanent write error (storeWriteFailed), or "".
func (l *serverLogger) storeWriteError() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.writeErr
}

// Noticef implements server.Logger. Notices are start-up chatter: debug level.
func (l *serverLogger) Noticef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// Warnf implements server.Logger.
func (l *serverLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if clientScoped(msg) {
		l.client(msg)
		return
	}
	l.log.Warn(msg)
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
	msg := fmt.Sprintf(format, v...)
	if clientScoped(msg) {
		l.client(msg)
		return
	}
	if storeWriteFailed(msg) {
		l.mu.Lock()
		if l.writeErr == "" {
			l.writeErr = msg
		}
		l.mu.Unlock()
	}
	l.log.Error(msg)
}

// storeWriteFailed reports whether msg is nats-server saying that a store
// took a write error it keeps: "Filestore [<stream>] Critical write error:
// <err>" (filestore.go, setWriteErr: opening, writing or syncing a block
// file failed, say with EMFILE or EIO), "JetStream stream '<account> >
// <stream>' critical write error: <err>" (stream.go, setWriteErrLocked),
// and the like of a consumer or a Raft group. Nothing in nats-server
// clears one: every later write to that store fails, unanswered, until the
// server is restarted. Its health check reports a stream's alone, and only
// when it can list the store's directories.
func storeWriteFailed(msg string) bool {
	i := strings.Index(msg, "ritical write error: ")
	return i > 0 && (msg[i-1] == 'C' || msg[i-1] == 'c')
}

// Debugf implements server.Logger.
func (l *serverLogger) Debugf(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// Tracef implements server.Logger.
func (l *serverLogger) Tracef(format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...))
}

// client logs msg, about one connection from outside, at WARN if none was
// within clientLogInterval, else at DEBUG. No timer: the interval is
// checked when the next line comes, so a count held back is reported then.
func (l *serverLogger) client(msg string) {
	now := time.Now
	if l.now != nil {
		now = l.now
	}
	l.mu.Lock()
	t, held := now(), l.clientHeld
	warn := !t.Before(l.clientNext)
	if warn {
		l.clientNext, l.clientHeld = t.Add(clientLogInterval), 0
	} else {
		l.clientHeld++
	}
	l.mu.Unlock()
	switch {
	case !warn:
		l.log.Debug(msg)
	case held > 0:
		l.log.Warn(msg, "suppressed", held)
	default:
		l.log.Warn(msg)
	}
}

// clientScoped reports whether msg is about one of nats-server's
// connections from outside. nats-server starts those with the connection's
// address and kind-and-id, "<host:port> - cid:<n> - " (client.go,
// initClient and format): cid a client, wid a WebSocket client (whose
// address may be "<client IP>/<host:port>" behind a proxy), mid or mid_ws
// MQTT, rid a route, gid a gateway, lid or lid_ws a leaf node. Lines of
// its own internal clients (SYSTEM, JETSTREAM, ACCOUNT) and of the Log's
// in-process connection (address "pipe") are not: those are Herald's.
func clientScoped(msg string) bool {
	addr, rest, ok := strings.Cut(msg, " - ")
	if !ok {
		return false
	}
	if _, proxied, ok := strings.Cut(addr, "/"); ok {
		addr = proxied
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return false
	}
	id, _, ok := strings.Cut(rest, " - ")
	if !ok {
		return false
	}
	kind, n, _ := strings.Cut(id, ":")
	switch kind {
	case "cid", "wid", "mid", "mid_ws", "rid", "gid", "lid", "lid_ws":
	default:
		return false
	}
	_, err := strconv.ParseUint(n, 10, 64)
	return err == nil
}
