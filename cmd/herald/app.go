package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph"
	"github.com/heraldhq/herald/pubsub"
	"github.com/heraldhq/herald/server"
)

// app is one running Herald replica: the event log connection, the chat
// read model that follows it, and the HTTP server. It owns every goroutine
// it starts and stops them in Stop.
type app struct {
	cfg    config
	logger *slog.Logger

	log         *pubsub.Log
	relay       *pubsub.Relay
	disconnects *pubsub.NoticeListener // disconnectUser's notices, handed to server.DisconnectUser
	presence    *pubsub.Presence       // who is in which room, across the replicas
	chat        *chat.Service
	server      *server.Server
	http        *http.Server
	silent      *silentConns // the HTTP server's connections that have sent nothing yet
	listener    net.Listener
	conns       *connLimit // listener, bounded to what the open-file limit allows

	pprof *http.Server // nil unless --pprof

	roomLoads prometheus.Histogram

	stopFollowing context.CancelFunc
	wg            sync.WaitGroup
	serveErr      chan error
	stopOnce      sync.Once

	// stopStep names the step of Stop under way, so that run can say what
	// was still running when a stop outlasts its bound.
	stopStep atomic.Pointer[string]
}

// listeners are the sockets Herald serves on, bound before anything else
// is started.
type listeners struct {
	http  net.Listener
	pprof net.Listener // nil unless --pprof
}

// listen binds every listen address of cfg, and checks that the embedded
// NATS server's (--nats-listen) is free. On error, it names the flag (and
// its variable) with the address, and nothing is left bound.
func listen(cfg config) (listeners, error) {
	var ls listeners
	var err error
	if ls.http, err = net.Listen("tcp", cfg.Addr); err != nil {
		return ls, fmt.Errorf("--addr (%s): listen for HTTP on %s: %w", envName("addr"), cfg.Addr, err)
	}
	if cfg.PprofAddr != "" {
		if ls.pprof, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			ls.close()
			return listeners{}, fmt.Errorf("--pprof (%s): listen for pprof on %s: %w", envName("pprof"), cfg.PprofAddr, err)
		}
	}
	if len(cfg.NATSURLs) == 0 && cfg.NATSListen != "" {
		if err := checkNATSListen(cfg.NATSListen); err != nil {
			ls.close()
			return listeners{}, fmt.Errorf("--nats-listen (%s): listen for NATS clients on %s: %w", envName("nats-listen"), cfg.NATSListen, err)
		}
	}
	return ls, nil
}

// checkNATSListen binds addr, the embedded NATS server's client address,
// as that server will, and releases it at once: nats-server binds its
// own listener and takes no ready one, so this only makes a taken address
// fail the start before NATS is started (and its data directory created).
// Whatever takes the address between this check and NATS's start still
// fails the start then, in NATS's own words. Port 0 (a random port) is
// never taken.
func checkNATSListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err // validated already
	}
	if port == "0" {
		return nil
	}
	if host == "" {
		host = "0.0.0.0" // nats-server's default host: all IPv4 interfaces
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	return l.Close()
}

func (ls listeners) close() {
	if ls.http != nil {
		_ = ls.http.Close()
	}
	if ls.pprof != nil {
		_ = ls.pprof.Close()
	}
}

// startApp binds its listen addresses, connects to (or embeds) NATS, starts
// following the event log and starts serving HTTP. The read model catches
// up in the background; /readyz says when it has.
func startApp(ctx context.Context, cfg config, logger *slog.Logger) (*app, error) {
	// Bind first: a taken address fails the start at once, before NATS is
	// started (embedded, with its data directory) or a legacy log
	// migrated. Until Serve begins at the end of the start, the kernel
	// accepts connections into its backlog and they wait, unanswered:
	// /healthz and /readyz answer only once the replica is started.
	ls, err := listen(cfg)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			ls.close()
		}
	}()

	if cfg.Auth == "dev" {
		securityWarn(logger, devModeWarning(ls.http.Addr()))
	}
	a := &app{cfg: cfg, logger: logger, serveErr: make(chan error, 1)}

	// cfg.startTimeout bounds the set-up before the migration and the set-up
	// after it. The migration of a legacy log takes as long as the log is
	// big, and one cut short starts again from nothing: only ctx (a
	// signal) stops it.
	setup, cancelSetup := context.WithTimeout(ctx, cfg.startTimeout)
	defer cancelSetup()

	log, err := pubsub.Open(setup, pubsub.Options{
		URLs:              cfg.NATSURLs,
		DataDir:           cfg.DataDir,
		ListenAddr:        cfg.NATSListen,
		Token:             cfg.NATSToken,
		MaxStore:          cfg.MaxStore,
		Stream:            cfg.Stream,
		Partitions:        cfg.Partitions,
		Replicas:          cfg.StreamReplicas,
		MaxMsgsPerSubject: int64(cfg.RoomHistory),
		Logger:            logger,
	})
	if err != nil {
		switch {
		case errors.Is(err, pubsub.ErrLayoutConflict):
			return nil, fmt.Errorf("open the event log (--partitions %d): %w", cfg.Partitions, err)
		case errors.Is(err, pubsub.ErrReplicasLowered):
			return nil, fmt.Errorf("open the event log (--stream-replicas %d): %w", cfg.StreamReplicas, err)
		case errors.Is(err, pubsub.ErrHistoryLowered), errors.Is(err, pubsub.ErrHistoryRaised):
			return nil, fmt.Errorf("open the event log (--room-history %d): %w", cfg.RoomHistory, err)
		case errors.Is(err, pubsub.ErrDataDirNotWritable), errors.Is(err, pubsub.ErrDataDirFull):
			return nil, fmt.Errorf("--data-dir (HERALD_DATA_DIR): open the event log: %w", err)
		case errors.Is(err, pubsub.ErrDataDirInUse):
			return nil, fmt.Errorf("--data-dir (HERALD_DATA_DIR): open the event log: %w; give each replica its own, or "+
				"connect them to one NATS with --nats-url", err)
		}
		return nil, fmt.Errorf("open the event log: %w", err)
	}
	a.log = log
	if bound := log.ListenAddr(); bound != nil {
		logNATSListener(logger, bound, log.ClientURL(), cfg.NATSToken != "")
	}

	// This replica is alive, for the others' starts, from right after its
	// Open (the migration included): one starting meanwhile with another
	// --room-history is refused rather than change the limit this one
	// judges by. A start at the same moment that did so before this key
	// was written is caught by CheckLimitInForce.
	replica, err := newReplicaID()
	if err == nil {
		a.presence, err = log.Presence(setup, pubsub.PresenceOptions{Replica: replica, Replicas: cfg.StreamReplicas})
	}
	if err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("set up presence: %w", err)
	}
	// closeEarly undoes the start before the log follower runs
	// (closeBackground needs it).
	closeEarly := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.presence.Close(ctx)
		_ = log.Close()
	}
	if err := log.CheckLimitInForce(setup); err != nil {
		closeEarly()
		return nil, fmt.Errorf("open the event log (--room-history %d): %w", cfg.RoomHistory, err)
	}

	authn, err := newAuthenticator(setup, cfg)
	if err != nil {
		closeEarly()
		return nil, err
	}
	if cfg.beforeMigrate != nil {
		cfg.beforeMigrate()
	}
	if _, err := chat.Migrate(ctx, log, logger); err != nil {
		closeEarly()
		return nil, err
	}
	setup, cancelAfterMigration := context.WithTimeout(ctx, cfg.startTimeout)
	defer cancelAfterMigration()
	a.roomLoads = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "herald_room_load_seconds",
		Help:    "Time to load a room from its entries in the log when it is first used on this replica.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	a.chat = chat.NewService(log, chat.Options{
		History:       int(log.MaxMsgsPerSubject()),
		ApplyTimeout:  cfg.ApplyTimeout,
		MaxTextLength: cfg.MaxTextLength,
		RoomCache:     cfg.RoomCache,
		OnRoomLoad:    func(d time.Duration) { a.roomLoads.Observe(d.Seconds()) },
		Logger:        logger,
	})
	followCtx, cancel := context.WithCancel(context.Background())
	a.stopFollowing = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.chat.Run(followCtx); err != nil {
			logger.Error("following the event log stopped", "err", err)
		}
	}()

	a.relay = log.Relay()
	maxConns, acceptCap := connectionLimits(cfg, logger)
	handler, err := server.New(server.Options{
		Schema: graph.NewSchemaWith(a.chat, log.Epoch(), graph.Options{
			Sessions:        noticeDisconnector{log},
			Presence:        clusterPresence{a.presence},
			UntaggedCursors: cfg.UntaggedCursors,
		}),
		Presence:        a.presence,
		Authenticator:   authn,
		Readiness:       a.readiness,
		MaxBodyBytes:    cfg.MaxBodyBytes,
		Introspection:   cfg.Introspection,
		Logger:          logger,
		InitTimeout:     cfg.WSInitTimeout,
		PingInterval:    cfg.WSPingInterval,
		PongTimeout:     cfg.WSPongTimeout,
		QueueMessages:   cfg.WSQueue,
		QueueBytes:      cfg.WSQueueBytes,
		MaxMessageBytes: cfg.WSMaxMessageBytes,
		ViewerDirective: graph.ViewerDirective,
		ResumeArgument:  graph.ResumeArgument,
		Metrics:         a.metricsRegistry(),
		AllowedOrigins:  allowedOriginsFor(cfg),
		Relay:           natsRelay{a.relay},
		Limits: server.Limits{
			MaxConnections:    maxConns,
			MaxOperations:     cfg.WSMaxOperations,
			SubscribeRate:     cfg.WSSubscribeRate,
			SubscribeBurst:    cfg.WSSubscribeBurst,
			MutationRate:      cfg.MutationRate,
			MutationBurst:     cfg.MutationBurst,
			MaxDepth:          cfg.MaxDepth,
			MaxComplexity:     cfg.MaxComplexity,
			MaxVariablesBytes: cfg.MaxVariablesBytes,
		},
	})
	if err != nil {
		a.closeBackground()
		return nil, fmt.Errorf("set up the HTTP server: %w", err)
	}
	// Past this point a failed start must also stop the handler's
	// goroutines (fan-out helpers, keepalive keeper, parker).
	abandon := func() {
		_ = handler.Shutdown(setup) // nothing is connected: returns at once
		a.closeBackground()
	}
	listener := ls.http
	a.server = handler
	a.listener = listener
	a.disconnects, err = log.ListenNotices(disconnectTopic, func(data []byte) { handler.DisconnectUser(string(data)) })
	if err != nil {
		abandon()
		return nil, fmt.Errorf("listen for disconnectUser's notices: %w", err)
	}
	a.silent = newSilentConns()
	a.http = &http.Server{
		Handler:           handler,
		ConnState:         a.silent.track,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    maxHeaderBytes(cfg.MaxBodyBytes),
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	a.conns = newConnLimit(listener, acceptCap, maxConns, a.http.SetKeepAlivesEnabled, logger)
	if cfg.beforeServe != nil {
		cfg.beforeServe()
	}
	// A signal during the steps since the last that heeded ctx (building
	// the schema and the server take tens of milliseconds) still cancels
	// the start: nothing has been served, so nothing needs a drain.
	if err := ctx.Err(); err != nil {
		abandon()
		return nil, fmt.Errorf("start cancelled: %w", err)
	}
	// Nothing fails past this point: the servers own the listeners now.
	started = true
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.http.Serve(a.conns); !errors.Is(err, http.ErrServerClosed) {
			a.serveErr <- fmt.Errorf("serve HTTP on %s: %w", listener.Addr(), err)
		}
	}()
	if ls.pprof != nil {
		a.startPprof(ls.pprof)
	}
	logger.Info("Herald is serving", "addr", listener.Addr().String(), "graphiql", "http://"+displayAddr(listener.Addr()),
		"max_connections", maxConns, "max_accepted_connections", acceptCap)
	return a, nil
}

// headerAllowance is what the HTTP server takes of a request's headers
// (the request line's method and path, cookies, a bearer token) beyond its
// query string.
const headerAllowance = 64 << 10

// maxHeaderBytes is the HTTP server's bound on a request's line and
// headers: a GET's query string is the operation, held to --max-body-bytes
// as a POST's body is, so the bound must let through a query string that
// large, which Herald then refuses, above it, with its own 414 and a
// GraphQL error. net/http's default (1 MiB) would refuse one within a
// larger --max-body-bytes first, with a bare text/plain 431.
func maxHeaderBytes(maxBody int64) int {
	return int(min(maxBody, math.MaxInt32-headerAllowance)) + headerAllowance
}

// startPprof serves the runtime profiles on their own listener, never on
// the public one.
func (a *app) startPprof(l net.Listener) {
	mux := http.NewServeMux()
	// Everything but pprof.Cmdline, which would show the command line and
	// with it --jwt-secret when the key is given as a flag. Index answers
	// /debug/pprof/cmdline with 404.
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	a.pprof = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		// net/http/pprof extends it by a profile's or trace's seconds=.
		WriteTimeout: 30 * time.Second,
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.pprof.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			a.logger.Warn("pprof listener stopped", "err", err)
		}
	}()
	if onLoopback(l.Addr()) {
		a.logger.Info("pprof is served", "addr", l.Addr().String())
	} else {
		// Profiles show what the process holds in memory, and the profiler
		// costs CPU on demand: whoever reaches the port gets both.
		securityWarn(a.logger, "pprof is served beyond loopback: keep --pprof on 127.0.0.1 or [::1]", "addr", l.Addr().String())
	}
}

// logNATSListener says where the embedded NATS server accepts clients:
// bound is its listener's address, a wildcard as such (the client URL
// names 127.0.0.1 whatever the bind, so it alone would read as loopback
// only). Beyond loopback it is a security warning.
func logNATSListener(logger *slog.Logger, bound net.Addr, url string, token bool) {
	args := []any{"listen", pubsub.BindDescription(bound), "url", url, "token", token}
	if onLoopback(bound) {
		logger.Info("embedded NATS accepts clients from this host", args...)
		return
	}
	msg := "embedded NATS accepts clients beyond loopback: whoever reaches it with --nats-token reads and writes the whole event log, " +
		"and the connection has no TLS (the token and the events cross the network in the clear); keep the port on a private network"
	if !token {
		msg = "embedded NATS accepts clients beyond loopback WITHOUT a token: whoever reaches it reads and writes the whole event log; set --nats-token"
	}
	securityWarn(logger, msg, args...)
}

// onLoopback reports whether a listener's address is reachable from this
// host only. A wildcard address (":6060", "0.0.0.0:6060") is not.
func onLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// Addr is the address HTTP is served on.
func (a *app) Addr() string { return a.listener.Addr().String() }

// Err reports a fatal serving error, if one happens.
func (a *app) Err() <-chan error { return a.serveErr }

func (a *app) readiness(ctx context.Context) []server.Check {
	nats := server.Check{Name: "nats", OK: a.log.Connected()}
	if !nats.OK {
		nats.Detail = "not connected to NATS"
	}
	stream := server.Check{Name: "stream", OK: true}
	if err := a.log.Health(ctx); err != nil {
		stream.OK, stream.Detail = false, err.Error()
	}
	caughtUp, detail := a.chat.Ready()
	return []server.Check{nats, stream, {Name: "directory", OK: caughtUp, Detail: detail}}
}

// Stop drains the replica and stops it, in this order:
//
//  1. at once, /readyz fails (a "draining" check) and new WebSockets are
//     refused, while HTTP requests, /readyz included, are still served so
//     load balancers see the replica leave;
//  2. open WebSockets are closed with 1001 spread evenly over
//     --drain-timeout, and get --shutdown-timeout more for their close
//     handshakes;
//  3. once --drain-timeout has passed since the stop began (however few
//     sockets there were: a load balancer needs that time to see /readyz
//     fail), the HTTP server stops accepting, and in-flight requests get
//     --shutdown-timeout to finish;
//  4. the log follower stops and the NATS connection is drained (the
//     embedded server, if any, shut down).
//
// ctx cuts it short: when it ends, whatever is left is closed at once
// (sockets and HTTP connections dropped). Stop is safe to call more than
// once; later calls return at once.
func (a *app) Stop(ctx context.Context) error {
	var err error
	a.stopOnce.Do(func() {
		begun := time.Now()
		a.server.StartDrain()
		// Clients on kept-alive connections are told to reconnect after
		// their next request, which the load balancer sends elsewhere.
		a.conns.endKeepAlives()
		a.logger.Info("draining: /readyz fails, new WebSockets and HTTP streams are refused, open ones are ended over the drain window",
			"drain_timeout", a.cfg.DrainTimeout)

		a.setStopStep("closing WebSockets and HTTP streams (--drain-timeout, then --shutdown-timeout)")
		wsCtx, cancelWS := context.WithTimeout(ctx, a.cfg.DrainTimeout+a.cfg.ShutdownTimeout)
		if wsErr := a.server.Drain(wsCtx, a.cfg.DrainTimeout); wsErr != nil {
			err = fmt.Errorf("close WebSocket connections: %w", wsErr)
		}
		cancelWS()
		a.holdHTTP(ctx, begun.Add(a.cfg.DrainTimeout))

		// Sockets are hijacked, so http.Server does not track them: they
		// are all gone by now.
		a.setStopStep("finishing in-flight HTTP requests (--shutdown-timeout)")
		httpCtx, cancelHTTP := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
		a.silent.closeAll() // Shutdown would wait up to 5 s for each
		if shutdownErr := a.http.Shutdown(httpCtx); shutdownErr != nil {
			err = errors.Join(err, fmt.Errorf("finish in-flight HTTP requests: %w", shutdownErr))
			_ = a.http.Close()
		}
		cancelHTTP()

		err = errors.Join(err, a.closeBackground())
		a.setStopStep("")
	})
	return err
}

// holdHTTP keeps the HTTP listener open, answering requests (/readyz with
// 503), until the end of the drain window or ctx: with few sockets or none
// to close, the drain would otherwise close the listener at once, before
// any load balancer polling /readyz could take the replica out, and the
// requests it kept sending here would be refused.
func (a *app) holdHTTP(ctx context.Context, until time.Time) {
	rest := time.Until(until)
	if rest <= 0 {
		return
	}
	a.setStopStep("serving HTTP until the drain window ends (--drain-timeout)")
	t := time.NewTimer(rest)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// setStopStep records the step of Stop (or of closeBackground) under
// way; "" when none is.
func (a *app) setStopStep(step string) { a.stopStep.Store(&step) }

// StopStep is the step of Stop under way, "" when none is.
func (a *app) StopStep() string {
	if step := a.stopStep.Load(); step != nil {
		return *step
	}
	return ""
}

func (a *app) closeBackground() error {
	a.setStopStep("stopping the log follower and the HTTP serving goroutines")
	a.stopFollowing()
	if a.pprof != nil {
		_ = a.pprof.Close()
	}
	a.wg.Wait()
	if a.presence != nil {
		a.setStopStep("clearing this replica's presence")
		// Every subscription has ended: delete this replica's keys, so
		// the others see its users leave now rather than after the TTL.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := a.presence.Close(ctx); err != nil {
			a.logger.Warn("presence not cleared; it expires by itself", "err", err)
		}
		cancel()
	}
	if a.relay != nil {
		a.setStopStep("closing the relay")
		a.relay.Close()
	}
	if a.disconnects != nil {
		a.setStopStep("closing disconnectUser's notices")
		_ = a.disconnects.Close()
	}
	a.setStopStep("closing the event log (draining NATS)")
	if err := a.log.Close(); err != nil {
		return fmt.Errorf("close the event log: %w", err)
	}
	return nil
}

// metricsRegistry is what /metrics serves: the server's instruments, the
// Go runtime and process, and how many log entries this replica applied.
func (a *app) metricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "herald_events_applied_total",
			Help: "Event log entries (room directory and held rooms) applied on this replica.",
		}, func() float64 { return float64(a.chat.Applied()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_rooms_held",
			Help: "Rooms this replica holds in memory.",
		}, func() float64 { return float64(a.chat.Stats().RoomsHeld) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_room_bytes_held",
			Help: "Estimated bytes of the rooms this replica holds (what --room-cache budgets).",
		}, func() float64 { return float64(a.chat.Stats().BytesHeld) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "herald_room_evictions_total",
			Help: "Rooms evicted because the rooms held exceeded --room-cache.",
		}, func() float64 { return float64(a.chat.Stats().Evictions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "herald_room_resyncs_total",
			Help: "Re-syncs from the log of held rooms that missed live events.",
		}, func() float64 { return float64(a.chat.Stats().Resyncs) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_http_connections",
			Help: "Connections open on the HTTP listener: plain HTTP, WebSockets and HTTP streams.",
		}, func() float64 { return float64(a.conns.open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_http_connections_max",
			Help: "Connections the HTTP listener holds at most (the open-file limit less a reserve for the store and NATS).",
		}, func() float64 { return float64(a.conns.capacity()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "herald_http_accept_waits_total",
			Help: "New connections that waited to be accepted because the HTTP listener held its most.",
		}, func() float64 { return float64(a.conns.waited()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_live_subscriptions",
			Help: "NATS subscriptions to live room subjects (one per held room).",
		}, func() float64 { return float64(a.chat.Stats().LiveSubscriptions) }),
		a.roomLoads,
	)
	return reg
}

func displayAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		if ok {
			return fmt.Sprintf("localhost:%d", tcp.Port)
		}
	}
	return addr.String()
}
