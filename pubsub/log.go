package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults applied by Open to zero-valued Options fields.
const (
	defaultStream          = "HERALD"
	defaultPartitions      = 1
	defaultDuplicateWindow = 2 * time.Minute
	defaultConnectTimeout  = 10 * time.Second
	defaultSetupTimeout    = 30 * time.Second
	defaultName            = "herald"
)

const (
	// reconnectWait is the pause between reconnect attempts to a server.
	reconnectWait = time.Second
	// closeTimeout bounds how long Close waits for the connection to drain.
	closeTimeout = 5 * time.Second
)

// Options configures Open.
type Options struct {
	// URLs of external NATS servers. Empty means: run an embedded server in-process.
	URLs []string
	// DataDir is where the embedded server keeps JetStream files (embedded only). Required when embedded.
	// DataDir and ListenAddr are ignored when URLs are set.
	DataDir string
	// ListenAddr "host:port" makes the embedded server also accept TCP clients (other replicas, the nats CLI).
	// Empty: no TCP listener at all (DontListen), the process connects in-process (nats.InProcessServer).
	// Port 0 picks a free port; ClientURL reports it.
	ListenAddr string
	// Token, when set, is the authorization token the embedded server requires of every client: TCP
	// clients on ListenAddr (nats://<token>@host:port) and this Log's own in-process connection, which
	// sends it. Ignored when URLs are set: give an external server's token in its URL. Never logged.
	Token string
	// MaxStore bounds the embedded server's JetStream file store, in bytes (embedded only): beyond it
	// writes are refused (JetStream's "insufficient resources"). 0: only the disk bounds it, and when
	// the disk fills the server stops taking writes until space is freed (see Health).
	MaxStore int64
	// Stream is the base name of the JetStream streams (default "HERALD"): the directory is <Stream>_ROOMS,
	// partition k is <Stream>_P<k>, and a stream named exactly <Stream> is the legacy (pre-partition) log.
	Stream string
	// Partitions is the number of partition streams (default 1, at most 256). It is fixed when the log is
	// created: Open refuses another count for an existing log (ErrLayoutConflict).
	Partitions int
	// Replicas is every stream's replica count (default 1).
	Replicas int
	// MaxMsgsPerSubject bounds how many messages each partition subject keeps (0 = unlimited). Per-subject
	// retention; the directory keeps every entry. It is the event log's, shared by every replica: Open
	// refuses to change the limit in force while a replica is alive (ErrHistoryRaised, ErrHistoryLowered),
	// and to lower it once the log holds entries.
	MaxMsgsPerSubject int64
	// DuplicateWindow is the JetStream de-duplication window (default 2m).
	DuplicateWindow time.Duration
	// ConnectTimeout bounds starting the embedded server and connecting to NATS (default 10s).
	ConnectTimeout time.Duration
	// SetupTimeout bounds what Open does once connected: checking JetStream and looking up,
	// creating or updating the streams (default 30s). It is longer than ConnectTimeout because
	// those requests wait out a JetStream leader election, which takes several seconds after a
	// NATS node dies, while a server that cannot be reached at all should be reported sooner.
	SetupTimeout time.Duration
	// Name is the NATS connection name (default "herald").
	Name string
	// Logger (default slog.Default()).
	Logger *slog.Logger
}

// withDefaults returns a copy of o with defaults filled in, or an error
// naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Stream == "" {
		o.Stream = defaultStream
	}
	if o.Partitions == 0 {
		o.Partitions = defaultPartitions
	}
	o.URLs = append([]string(nil), o.URLs...)
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow == 0 {
		o.DuplicateWindow = defaultDuplicateWindow
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = defaultConnectTimeout
	}
	if o.SetupTimeout == 0 {
		o.SetupTimeout = defaultSetupTimeout
	}
	if o.Name == "" {
		o.Name = defaultName
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case !ValidStreamName(o.Stream) || len(o.Stream) > MaxStreamName:
		return o, fmt.Errorf("invalid Options.Stream %s: must be 1 to %d ASCII letters, digits, '_' and '-' (the base of the streams and of the key-value buckets <Stream>_PRESENCE_REPLICAS and <Stream>_MIGRATION)",
			quoteShort(o.Stream), MaxStreamName)
	case o.Partitions < minPartitions || o.Partitions > maxPartitions:
		return o, fmt.Errorf("invalid Options.Partitions %d: must be between %d and %d", o.Partitions, minPartitions, maxPartitions)
	case o.Replicas < 0:
		return o, fmt.Errorf("invalid Options.Replicas %d: must be >= 1", o.Replicas)
	case o.MaxStore < 0:
		return o, fmt.Errorf("invalid Options.MaxStore %d: must be >= 0 (0 = the disk's size)", o.MaxStore)
	case o.MaxMsgsPerSubject < 0:
		return o, fmt.Errorf("invalid Options.MaxMsgsPerSubject %d: must be >= 0 (0 = unlimited)", o.MaxMsgsPerSubject)
	case o.DuplicateWindow < 0:
		return o, fmt.Errorf("invalid Options.DuplicateWindow %s: must be > 0", o.DuplicateWindow)
	case o.ConnectTimeout < 0:
		return o, fmt.Errorf("invalid Options.ConnectTimeout %s: must be > 0", o.ConnectTimeout)
	case o.SetupTimeout < 0:
		return o, fmt.Errorf("invalid Options.SetupTimeout %s: must be > 0", o.SetupTimeout)
	}
	return o, nil
}

// MaxStreamName is the longest Options.Stream: the longest stream made
// from it, KV_<Stream>_PRESENCE_REPLICAS (the liveness bucket), must fit
// NATS's 255 bytes.
const MaxStreamName = 255 - len("KV_") - len("_PRESENCE_REPLICAS")

// ValidStreamName reports whether name, of any length, is made of what
// NATS allows in the names of the log's streams and key-value buckets,
// all made from it: ASCII letters, digits, '_' and '-'.
func ValidStreamName(name string) bool {
	if name == "" {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Entry is one event read from the log.
type Entry struct {
	Seq       uint64    // sequence in the entry's stream (directory, partition or legacy)
	Subject   string    // the stored subject (never the herald-live one)
	Key       string    // partition entries: the key; directory entries: the key after "herald-rooms."; legacy: ""
	Rest      string    // partition entries: the tokens after the key ("posts", "msg.abc"); otherwise ""
	Partition int       // partition index; -1 for directory and legacy entries
	Data      []byte    // payload as appended
	Time      time.Time // when the stream stored it
}

// AppendResult says where an appended event landed.
type AppendResult struct {
	Seq       uint64 // stream sequence of the event
	Duplicate bool   // true when the de-duplication ID matched an earlier append in the window; Seq is the original's
}

// Keepalive of the NATS connection.
const (
	pingInterval = 5 * time.Second
	maxPingsOut  = 2
)

// Log is an open connection to the event log: a NATS connection (and, in
// embedded mode, the server it talks to) plus the directory and partition
// streams.
//
// Create one with Open and release it with Close. Its methods are safe for
// concurrent use.
type Log struct {
	opts  Options
	lay   layout
	log   *slog.Logger
	where string    // human description of the server, for messages
	emb   *embedded // nil: external servers
	nc    *nats.Conn
	js    jetstream.JetStream
	dir   jetstream.Stream
	parts []jetstream.Stream // index: partition

	// legacy is the pre-partition stream found by Open (nil if none);
	// hasLegacy turns false once DropLegacy deleted it.
	legacy    jetstream.Stream
	hasLegacy atomic.Bool

	maxPerSubject int64
	addTimeout    time.Duration // AddToDirectory's bound when its ctx has none
	lagSwitch     time.Duration // how long a read waits for its consumer's replica before creating another (replicaLagSwitch)
	lagWait       time.Duration // how long a read waits for its consumers' replicas in all (replicaLagWait)
	dirCreated    time.Time     // the directory stream's creation, as Open found it (Info refreshes CachedInfo)
	partCreated   []time.Time   // each partition stream's creation, as Open found it; index: partition
	epoch         time.Time
	clientURL     string

	// Health's look at the partitions (partitionHealth): the partition
	// the next call asks in turn, the partitions to ask at every call until
	// one answers as Open found it, and the deletion advisories of the
	// partition streams, which make a partition suspect.
	nextPart    atomic.Uint32
	suspectPart []atomic.Bool // index: partition
	partDeleted chan *nats.Msg

	lives      lives           // every open Live, told about reconnects and slow consumers
	reconnects reconnectSignal // tells every follow about reconnects
	// followsRenewed counts the consumers follow gave up on and created
	// again, for the tests: a follow that starts well needs none.
	followsRenewed atomic.Uint64

	connClosed chan struct{} // closed by the connection's ClosedHandler

	closeOnce sync.Once
	closeErr  error
}

// Open connects to NATS (starting the embedded server first when
// opts.URLs is empty) and creates the directory and partition streams or
// brings their configuration in line with opts. It notes whether a legacy
// stream exists but never changes it. Starting the embedded server and
// connecting are bounded by ctx and opts.ConnectTimeout; the JetStream
// set-up after that by ctx and opts.SetupTimeout, and its requests are
// retried while a JetStream leader election leaves them unanswered (see
// untilElected).
//
// Errors are single-line and wrap ErrUnreachable, ErrJetStreamDisabled,
// ErrStreamConflict or ErrLayoutConflict when they are about those
// situations.
func Open(ctx context.Context, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	connectCtx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()

	l := &Log{
		opts:       opts,
		lay:        newLayout(opts.Stream, opts.Partitions),
		log:        opts.Logger.With("component", "pubsub", "stream", opts.Stream),
		addTimeout: addTimeout,
		lagSwitch:  replicaLagSwitch,
		lagWait:    replicaLagWait,
		connClosed: make(chan struct{}),
	}
	ok := false
	defer func() {
		if !ok {
			_ = l.shutdown() // the set-up error is the one worth reporting
		}
	}()

	if len(opts.URLs) == 0 {
		l.emb, err = startEmbedded(connectCtx, opts.DataDir, opts.ListenAddr, opts.Token, opts.MaxStore, opts.Logger)
		if err != nil {
			return nil, err
		}
		l.where = fmt.Sprintf("embedded NATS server (data dir %q)", opts.DataDir)
		if opts.ListenAddr != "" {
			l.clientURL = l.emb.clientURL
			// Where it listens, not the client URL: that names 127.0.0.1
			// for a server that listens on every interface.
			l.where = fmt.Sprintf("embedded NATS server listening on %s (data dir %q)", BindDescription(l.emb.bound), opts.DataDir)
		}
	} else {
		l.where = redactURLs(opts.URLs)
		if opts.ListenAddr != "" {
			l.log.Warn("ListenAddr applies to the embedded server only; ignored because URLs are set",
				"listen_addr", opts.ListenAddr)
		}
		if opts.Token != "" {
			l.log.Warn("Token applies to the embedded server only; ignored because URLs are set (give a token in the URL)")
		}
	}

	if err := l.connect(connectCtx); err != nil {
		return nil, err
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, opts.SetupTimeout)
	defer cancelSetup()
	if err := l.checkJetStream(setupCtx); err != nil {
		return nil, err
	}
	if err := l.setupStreams(setupCtx); err != nil {
		return nil, err
	}
	l.watchPartitionDeletions()
	l.watchPartitionLeaders()
	ok = true
	l.log.Info("event log ready",
		"server", l.where,
		"directory", l.lay.dirStream,
		"partitions", l.lay.partitions,
		"legacy", l.hasLegacy.Load(),
		"max_msgs_per_subject", l.maxPerSubject,
		"epoch", l.epoch)
	return l, nil
}

// BindDescription says where a listener bound to addr accepts connections:
// "all interfaces, port 4222" for a wildcard host (0.0.0.0, ::), which a
// host-less listen address binds, otherwise the address itself.
func BindDescription(addr net.Addr) string {
	if addr == nil {
		return "nowhere"
	}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return fmt.Sprintf("all interfaces, port %d", tcp.Port)
	}
	return addr.String()
}

// embeddedClientURL is the URL other processes can use to reach srv.
func embeddedClientURL(srv *server.Server) string {
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		return srv.ClientURL()
	}
	host := srv.ClientURL() // carries the configured host
	h, _, err := net.SplitHostPort(strings.TrimPrefix(host, "nats://"))
	if err != nil || h == "" || net.ParseIP(h).IsUnspecified() {
		h = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(h, strconv.Itoa(addr.Port))
}

// connect opens the NATS connection.
func (l *Log) connect(ctx context.Context) error {
	nopts := []nats.Option{
		nats.Name(l.opts.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		// A silent partition (no TCP reset) is noticed at the ping after
		// maxPingsOut unanswered ones: 10 to 15 s after it began, not
		// nats.go's default two minutes or more. Readiness drops sooner,
		// when the stream check times out (TestNATSLinkLosingItsState).
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		// Fail publishes at once while reconnecting instead of buffering
		// them, so writes and API requests fail fast rather than time out.
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(false),
		nats.DrainTimeout(closeTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				l.log.Warn("NATS disconnected", "server", l.where, "err", err)
			} else {
				l.log.Info("NATS disconnected", "server", l.where)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			// Not ConnectedUrlRedacted: it hides a password, but shows a
			// token (nats://token@host) in full.
			l.log.Info("NATS reconnected", "server", redactURLs([]string{nc.ConnectedUrl()}))
			// Whatever was published while disconnected never reached
			// the live subscriptions.
			l.lives.reconnected()
			l.reconnects.fire()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
				if key, ok := l.lives.slowConsumer(sub); ok {
					l.log.Warn("live entries dropped: the consumer is too slow", "key", key, "subject", sub.Subject)
					return
				}
			}
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			l.log.Warn("NATS async error", "subject", subject, "err", err)
		}),
		nats.ClosedHandler(func(*nats.Conn) { close(l.connClosed) }),
	}
	url := ""
	var dialer *recordingDialer
	if l.emb != nil {
		// l.emb, not its server: a restart (storeWatch) replaces that.
		nopts = append(nopts, nats.InProcessServer(l.emb))
		if l.emb.token != "" {
			nopts = append(nopts, nats.Token(l.emb.token))
		}
	} else {
		url = strings.Join(l.opts.URLs, ",")
		// nats.Connect takes no context: bound each dial and handshake so
		// that trying every URL stays within what is left of ctx.
		per := l.opts.ConnectTimeout
		if dl, ok := ctx.Deadline(); ok {
			per = time.Until(dl)
		}
		per /= time.Duration(2 * len(l.opts.URLs))
		per = max(per, 100*time.Millisecond)
		dialer = &recordingDialer{d: net.Dialer{Timeout: per}}
		nopts = append(nopts, nats.Timeout(per), nats.SetCustomDialer(dialer))
	}
	nc, err := nats.Connect(url, nopts...)
	if err != nil {
		reason := err.Error()
		if dialErr := dialer.lastErr(); dialErr != nil && errors.Is(err, nats.ErrNoServers) {
			// "no servers available" hides why: say what the dial got.
			reason = dialErr.Error()
		}
		return newError(ErrUnreachable, err,
			"connect to NATS at %s: %s (is nats-server running and reachable from here?)", l.where, reason)
	}
	l.nc = nc
	if err := ctx.Err(); err != nil {
		return newError(ErrUnreachable, err, "connect to NATS at %s: %v", l.where, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("set up JetStream client for %s: %w", l.where, err)
	}
	l.js = js
	return nil
}

// checkJetStream asks for the account's JetStream information, which the
// meta leader answers, so that a server or account without JetStream is
// reported as such rather than as a stream that cannot be found.
func (l *Log) checkJetStream(ctx context.Context) error {
	var info *jetstream.AccountInfo
	err := untilElected(ctx, l.log, "the JetStream account info request", func(ctx context.Context) error {
		var err error
		info, err = l.js.AccountInfo(ctx)
		return err
	})
	if err != nil {
		switch {
		case errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
			return newError(ErrJetStreamDisabled, err,
				"JetStream is not enabled for this account on the NATS server at %s: enable JetStream for the account in the server configuration", l.where)
		case errors.Is(err, jetstream.ErrJetStreamNotEnabled):
			return newError(ErrJetStreamDisabled, err,
				"JetStream is not enabled on the NATS server at %s: start nats-server with -js", l.where)
		default:
			return fmt.Errorf("query JetStream account info at %s: %w", l.where, err)
		}
	}
	return checkAPILevel(l.where, l.nc.ConnectedServerVersion(), info.API.Level)
}

// minJSAPILevel is the JetStream API level of nats-server 2.11, the first
// to check an expected last sequence over a subject filter
// (AppendKeyed) and to keep per-message TTLs (Presence).
const minJSAPILevel = 1

// checkAPILevel refuses a server whose JetStream API level is below
// minJSAPILevel. A server before 2.11 ignores
// Nats-Expected-Last-Subject-Sequence-Subject and checks the written
// subject's own last sequence: AppendKeyed would store stale writes and
// refuse current ones, with nothing said until Presence fails.
func checkAPILevel(where, version string, level int) error {
	if level < minJSAPILevel {
		return newError(ErrServerTooOld, nil,
			"the NATS server at %s is nats-server %s (JetStream API level %d): the event log needs nats-server 2.11 or later, whose writes check a key's last sequence over all its subjects; upgrade NATS",
			where, version, level)
	}
	return nil
}

// Health returns nil when the NATS connection is up, the directory
// stream answers a StreamInfo request within ctx, and no partition stream
// is known to have been deleted, or deleted and created again, since Open,
// and, in embedded mode, the store takes writes. Otherwise the error says
// which part failed: the embedded store (wrapping ErrStoreFailed: naming
// the data dir, and whether a write failed or the data dir or its lock file
// was removed or replaced), "NATS disconnected ..." (wrapping
// ErrUnreachable), "stream HERALD_ROOMS unreachable: ...", or that the
// directory or a partition stream was deleted (and created again).
//
// The partitions are not all asked on every call: each call asks one, in
// turn, and first the lowest partition that is suspect (a stream deletion
// advisory named it, or an earlier call found it gone or changed, which
// keeps failing every call until it is back as it was), so a partition deleted
// or re-created is noticed by the next call when its advisory reached this
// replica and within Partitions calls otherwise. A partition that does not
// answer (no leader, say) fails nothing: it affects only its keys, which
// their writes report, and should not take every replica out of service.
func (l *Log) Health(ctx context.Context) error {
	// First: it is the cause of the failures below while it lasts.
	if err := l.storeFailure(); err != nil {
		return err
	}
	err := l.health(ctx)
	if err != nil {
		// The store may have failed while the requests were out: JetStream
		// stops without answering them, and they wait out ctx. The
		// failure, said before JetStream stops, is why.
		if ferr := l.storeFailure(); ferr != nil {
			return ferr
		}
	}
	return err
}

// health is Health's requests, once the store is known not to have failed.
func (l *Log) health(ctx context.Context) error {
	if !l.nc.IsConnected() {
		return newError(ErrUnreachable, nil, "NATS disconnected (%s) from %s", l.nc.Status(), l.where)
	}
	info, err := l.dir.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s unreachable: %w", l.lay.dirStream, err)
	}
	// A member of the stream's group that finds the group leaderless (cut
	// off from the others) answers the info request itself; only the
	// leader answers a message get, which fails while there is none.
	if _, err := lastSeqOf(ctx, l.nc, l.lay.dirStream, ">"); err != nil {
		return fmt.Errorf("stream %s unreachable: %w", l.lay.dirStream, err)
	}
	if opened := l.dirCreated; !info.Created.Equal(opened) {
		// Deleted and created again under this replica: its sequences
		// started over, so what the replica holds, the positions it
		// follows from and the epoch of its cursors are all stale.
		return fmt.Errorf("stream %s was deleted and created again (created %s; it was %s when this replica opened the log): restart the replica",
			l.lay.dirStream, info.Created.UTC().Format(time.RFC3339Nano), opened.UTC().Format(time.RFC3339Nano))
	}
	return l.partitionHealth(ctx)
}

// storeStopped fails a request the embedded server cannot serve while its
// JetStream is stopped (storeWatch): at once, saying why and wrapping
// ErrUnreachable, rather than after ctx for an API nobody answers. nil
// while the store is fine, and always with external servers.
func (l *Log) storeStopped(what string) error {
	if ferr := l.storeFailure(); ferr != nil {
		return newError(ErrUnreachable, ferr, "%s: %v", what, ferr)
	}
	return nil
}

// storeFailure is why the embedded server's store takes no writes just
// now (wrapping ErrStoreFailed; its JetStream is stopped meanwhile), or nil:
// always nil with external servers.
func (l *Log) storeFailure() error {
	if l.emb == nil {
		return nil
	}
	return l.emb.watch.err()
}

// partitionCheckTimeout bounds Health's request to one partition stream,
// so that a partition without a leader leaves the caller time to answer:
// Health asks at most two, and /readyz gives its checks 800 ms.
const partitionCheckTimeout = 300 * time.Millisecond

// watchPartitionDeletions subscribes to the JetStream advisories of the
// partition streams' deletion, which partitionHealth reads: no goroutine,
// and nothing is asked of the server until one comes. An advisory missed
// (this replica was disconnected, or the account may not subscribe to
// advisories, which the connection's error handler logs) is made up for by
// the partitions Health asks in turn.
func (l *Log) watchPartitionDeletions() {
	l.partDeleted = make(chan *nats.Msg, l.lay.partitions)
	for _, name := range l.lay.partStreams {
		if _, err := l.nc.ChanSubscribe(streamDeletedAdvisory+name, l.partDeleted); err != nil {
			l.log.Warn("partition stream deletions not watched; Health asks the partitions in turn", "stream", name, "err", err)
		}
	}
}

// streamDeletedAdvisory is the subject prefix of JetStream's advisory that
// a stream was deleted: $JS.EVENT.ADVISORY.STREAM.DELETED.<stream>.
const streamDeletedAdvisory = "$JS.EVENT.ADVISORY.STREAM.DELETED."

// streamLeaderAdvisory is the subject prefix of JetStream's advisory that a
// stream elected a leader: $JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.<stream>.
const streamLeaderAdvisory = "$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED."

// watchPartitionLeaders tells every Live when a partition stream has
// elected a leader (Live.TakeUnconfirmed): only a stream's leader
// republishes an entry, as it stores it, so an entry stored while the
// leader changed (the old one gone before republishing it, the new one
// storing it as a follower) is never republished, and no replica holding
// its key hears of it. One subscription for all partitions, whose
// callback nats.go runs on a goroutine of the connection's, ended by
// Close. An advisory missed while this replica was disconnected is made
// up for by the reconnect, which marks everything lost.
func (l *Log) watchPartitionLeaders() {
	_, err := l.nc.Subscribe(streamLeaderAdvisory+"*", func(m *nats.Msg) {
		if k := slices.Index(l.lay.partStreams, strings.TrimPrefix(m.Subject, streamLeaderAdvisory)); k >= 0 {
			l.lives.leaderElected(k)
		}
	})
	if err != nil {
		l.log.Warn("partition leader elections not watched; an entry stored during one may reach held rooms only with their next event", "err", err)
	}
}

// partitionHealth asks the partition whose turn it is and the first
// suspect one, if any, whether it is still the stream Open found.
func (l *Log) partitionHealth(ctx context.Context) error {
	for drained := false; !drained; {
		select {
		case m := <-l.partDeleted:
			name := strings.TrimPrefix(m.Subject, streamDeletedAdvisory)
			if k := slices.Index(l.lay.partStreams, name); k >= 0 {
				l.suspectPart[k].Store(true)
			}
		default:
			drained = true
		}
	}
	turn := int(l.nextPart.Add(1) % uint32(l.lay.partitions))
	for k := range l.suspectPart {
		if k != turn && l.suspectPart[k].Load() {
			if err := l.checkPartition(ctx, k); err != nil {
				return err
			}
			break
		}
	}
	return l.checkPartition(ctx, turn)
}

// checkPartition fails when partition k's stream is gone or is not the one
// Open found, and marks it suspect then; it clears the mark when the
// stream answers as Open found it. No answer fails nothing.
func (l *Log) checkPartition(ctx context.Context, k int) error {
	name := l.lay.partStreams[k]
	cctx, cancel := context.WithTimeout(ctx, partitionCheckTimeout)
	defer cancel()
	info, err := l.parts[k].Info(cctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		l.suspectPart[k].Store(true)
		return fmt.Errorf("stream %s was deleted (it was created %s when this replica opened the log): the keys it held get no events: restart the replica",
			name, l.partCreated[k].UTC().Format(time.RFC3339Nano))
	case err != nil:
		l.log.Debug("health: partition stream did not answer", "stream", name, "err", err)
		return nil
	case !info.Created.Equal(l.partCreated[k]):
		// Its sequences started over: the positions this replica reads
		// and follows the partition's keys from are past its end.
		l.suspectPart[k].Store(true)
		return fmt.Errorf("stream %s was deleted and created again (created %s; it was %s when this replica opened the log): restart the replica",
			name, info.Created.UTC().Format(time.RFC3339Nano), l.partCreated[k].UTC().Format(time.RFC3339Nano))
	}
	l.suspectPart[k].Store(false)
	return nil
}

// Connected reports whether the NATS connection is currently connected.
func (l *Log) Connected() bool { return l.nc.IsConnected() }

// Available reports whether the log can serve requests now: the NATS
// connection is up and, in embedded mode, the store runs (see Health).
// While it cannot, every request fails, most of them only at their
// deadline.
func (l *Log) Available() bool { return l.nc.IsConnected() && l.storeFailure() == nil }

// MaxMsgsPerSubject is the per-subject message limit in force on the
// partition streams after Open, read back from partition 0's configuration
// (0 = unlimited). It stays in force while this Log is open: a later Open
// refuses to change it while a replica is alive (see checkLimitKept).
func (l *Log) MaxMsgsPerSubject() int64 { return l.maxPerSubject }

// Epoch identifies this incarnation of the log: the latest epoch, as Open
// found them, among the directory and partition streams: a stream's
// creation time, or the later epoch it records in its metadata (see
// epoch.go). It survives restarts but changes when any of them is
// deleted and created again, which also restarts its sequences, so cursors
// from before can be refused.
func (l *Log) Epoch() time.Time { return l.epoch }

// Partitions is the number of partition streams.
func (l *Log) Partitions() int { return l.lay.partitions }

// PartitionOf is the partition that stores key's entries: FNV-1a (32 bit)
// of key modulo Partitions. It does not validate key.
func (l *Log) PartitionOf(key string) int { return partitionOf(key, l.lay.partitions) }

// ClientURL is the "nats://host:port" URL other processes can use to reach
// the embedded server when Options.ListenAddr is set, and "" otherwise. An
// unspecified listen host (empty, 0.0.0.0, ::) is reported as 127.0.0.1,
// so the URL says nothing of where the server listens: ListenAddr does. It
// never carries Options.Token.
func (l *Log) ClientURL() string { return l.clientURL }

// ListenAddr is the address the embedded server's listener is bound to
// when Options.ListenAddr is set, a wildcard host (0.0.0.0, ::) as such,
// and nil otherwise (external servers, or no listener).
func (l *Log) ListenAddr() net.Addr {
	if l.emb == nil {
		return nil
	}
	return l.emb.bound
}

// Close closes every Live still open (their Entries channels close), drains
// the NATS connection (at most 5s, then it is closed anyway), then shuts down
// the embedded server, if any, and waits for it to stop. FollowDirectory
// calls still running return an error. Close is idempotent; later calls
// return the first call's result.
func (l *Log) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.shutdown() })
	return l.closeErr
}

// shutdown releases whatever Open managed to set up.
func (l *Log) shutdown() error {
	l.lives.closeAll()
	var err error
	if l.nc != nil {
		switch derr := l.nc.Drain(); {
		case derr == nil:
			timer := time.NewTimer(closeTimeout + time.Second)
			select {
			case <-l.connClosed:
			case <-timer.C:
				err = fmt.Errorf("close NATS connection: drain did not finish within %s", closeTimeout)
				l.nc.Close()
			}
			timer.Stop()
		case errors.Is(derr, nats.ErrConnectionClosed), errors.Is(derr, nats.ErrConnectionReconnecting):
			// Already closed, or Drain closed it because it was not connected.
		default:
			err = fmt.Errorf("close NATS connection: %w", derr)
			l.nc.Close()
		}
	}
	if l.emb != nil {
		l.emb.stop()
	}
	return err
}

// recordingDialer dials TCP and remembers the last dial error, so a failed
// first connect can report the actual reason.
type recordingDialer struct {
	d net.Dialer

	mu   sync.Mutex
	last error
}

// Dial implements nats.CustomDialer.
func (r *recordingDialer) Dial(network, address string) (net.Conn, error) {
	c, err := r.d.Dial(network, address)
	if err != nil {
		r.mu.Lock()
		r.last = err
		r.mu.Unlock()
	}
	return c, err
}

// lastErr is the last dial error; nil-safe.
func (r *recordingDialer) lastErr() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}
