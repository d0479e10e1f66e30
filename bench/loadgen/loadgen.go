package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/internal/procstat"
)

// Subprotocols.
const (
	protoTransport = "graphql-transport-ws"
	protoLegacy    = "graphql-ws"
)

// DefaultQuery is the subscription each subscriber runs; $r is the room.
const DefaultQuery = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`

// Config is everything a run needs. Zero values are defaulted by Run
// where a default makes sense (see withDefaults).
type Config struct {
	// URL is the GraphQL HTTP endpoint, e.g. http://127.0.0.1:8080/graphql;
	// the WebSocket URL is the same with ws:// (or wss://).
	URL string
	// Transport is how subscribers subscribe: "ws" (WebSockets, the
	// default), "sse" (graphql-sse's distinct connections mode: one POST
	// answered with an event stream per subscription) or "multipart"
	// (Apollo's multipart HTTP subscriptions: one POST per subscription)
	// or "centrifugo" (a Centrifugo server: WebSockets speaking its JSON
	// client protocol, one channel per room, posts through its HTTP API;
	// URL and PublishURL are then its base URL, e.g.
	// http://127.0.0.1:8000).
	Transport string
	// Protocol is, for WebSockets, "transport" (graphql-transport-ws),
	// "legacy" (graphql-ws) or "both" (even connections transport, odd
	// ones legacy).
	Protocol string
	// Connections is the number of WebSockets (or HTTP streams);
	// SubsPerConn subscriptions each, to Rooms rooms round-robin. An HTTP
	// stream carries exactly one subscription.
	Connections int
	SubsPerConn int
	Rooms       int
	// RoomPrefix names the rooms created (<prefix>-<i>); must be unused on
	// the server (room names are unique). Default lg-<base36 time>.
	RoomPrefix string
	// RoomIDs, if set, are existing rooms to use instead of creating
	// Rooms rooms (Rooms is then their number).
	RoomIDs []string
	// PublishURL, if set, is where the posts (the probes and the events)
	// go instead of URL: another replica, so that every event crosses
	// replicas on its way to the subscribers. Rooms are still created at
	// URL, so that the subscribers' replica knows them when they
	// subscribe.
	PublishURL string
	// StartedFile, if set, is created when the publish (or idle) phase
	// starts, i.e. once every subscription is live: other tools can start
	// on it.
	StartedFile string
	// Sources are the local addresses connections bind to, round-robin;
	// empty: let the kernel choose.
	Sources []net.IP
	// Query is the subscription document; it must take $r: ID! and its
	// results must contain the message text.
	Query string
	// Events is the number of messages to publish, round-robin over rooms.
	Events int
	// Rate is events per second; 0 publishes as fast as possible.
	Rate float64
	// Inflight bounds concurrent publish requests (at most one per room
	// at a time, so that a room's sequence numbers are stored in order).
	Inflight int
	// Idle > 0 selects idle mode: hold the subscribed connections this
	// long, answering pings, and publish nothing.
	Idle time.Duration
	// ServerPID, if > 0, is the server process whose RSS and CPU are read
	// from /proc.
	ServerPID int
	// UserPrefix names the connection users (<prefix><i>) and, with
	// "-publisher", the publishing user. Default "lg".
	UserPrefix string
	// DialConcurrency bounds connections being set up at once (default 64).
	DialConcurrency int
	// SetupTimeout bounds creating rooms, connecting, subscribing and
	// waiting for every subscription to be live (default 2m).
	SetupTimeout time.Duration
	// PublishTimeout bounds publishing the events (default 5m, plus
	// Events/Rate when paced): a server whose posts stall fails the run
	// rather than holding it for one HTTP timeout per event.
	PublishTimeout time.Duration
	// DrainTimeout bounds waiting for deliveries after the last publish
	// (default 15s); Settle is then waited for late duplicates (default
	// 300ms).
	DrainTimeout time.Duration
	Settle       time.Duration
	// HandshakeTimeout bounds one connection's dial, upgrade and
	// connection_ack (default 15s).
	HandshakeTimeout time.Duration
	// RequireZeroLoss makes any lost, duplicated, reordered or misrouted
	// delivery, any result that is not the load generator's (foreign), a
	// drain that did not complete within DrainTimeout and any failed
	// publish fail the run. Whatever it says, a run fails on a frame that
	// is not valid JSON (bad frames), on a connection the server closed
	// or a subscription it ended before the run's end and on a failed
	// reading of ServerPID.
	RequireZeroLoss bool
	// Progress, if set, receives progress lines.
	Progress io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.Transport == "" {
		c.Transport = transportWS
	}
	if c.Protocol == "" {
		c.Protocol = "both"
	}
	if c.SubsPerConn == 0 {
		c.SubsPerConn = 1
	}
	if c.Rooms == 0 {
		c.Rooms = max(len(c.RoomIDs), 1)
	}
	if c.RoomPrefix == "" {
		c.RoomPrefix = "lg-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	if c.Query == "" {
		c.Query = DefaultQuery
	}
	if c.Inflight == 0 {
		c.Inflight = 8
	}
	if c.UserPrefix == "" {
		c.UserPrefix = "lg"
	}
	if c.DialConcurrency == 0 {
		c.DialConcurrency = 64
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 2 * time.Minute
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Minute
		if c.Rate > 0 {
			c.PublishTimeout += time.Duration(float64(c.Events) / c.Rate * float64(time.Second))
		}
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = 300 * time.Millisecond
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 15 * time.Second
	}
	var problems []string
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("url %q: want http://host:port/graphql", c.URL))
	}
	if c.PublishURL != "" {
		if u, err := url.Parse(c.PublishURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("publish url %q: want http://host:port/graphql", c.PublishURL))
		}
	}
	if len(c.RoomIDs) > 0 && c.Rooms != len(c.RoomIDs) {
		problems = append(problems, fmt.Sprintf("%d rooms but %d room ids", c.Rooms, len(c.RoomIDs)))
	}
	for _, id := range c.RoomIDs {
		if id == "" {
			problems = append(problems, "a room id is empty")
			break
		}
	}
	problems = append(problems, c.transportProblems()...)
	if c.Connections < 1 {
		problems = append(problems, "connections must be at least 1")
	}
	if c.SubsPerConn < 1 || c.Rooms < 1 || c.Inflight < 1 || c.DialConcurrency < 1 {
		problems = append(problems, "subs, rooms, inflight and dial concurrency must be at least 1")
	}
	if c.Events < 0 || c.Rate < 0 || c.Idle < 0 || c.PublishTimeout < 0 {
		problems = append(problems, "events, rate, idle and publish timeout must not be negative")
	}
	if c.Idle == 0 && c.Events == 0 {
		problems = append(problems, "nothing to do: give events or idle")
	}
	if len(problems) > 0 {
		return c, errors.New(strings.Join(problems, "; "))
	}
	return c, nil
}

// Report is the outcome of a run; it is written as JSON by --json.
type Report struct {
	Mode     string          `json:"mode"` // "publish" or "idle"
	Config   ConfigReport    `json:"config"`
	Pass     bool            `json:"pass"`
	Failures []string        `json:"failures"`
	Setup    SetupReport     `json:"setup"`
	Publish  *PublishReport  `json:"publish,omitempty"`
	Delivery *DeliveryReport `json:"delivery,omitempty"`
	Latency  *LatencyReport  `json:"latency,omitempty"`
	Idle     *IdleReport     `json:"idle,omitempty"`
	// Subscribers lists every subscription with a lost, duplicated,
	// reordered, misrouted or unacknowledged delivery (all others had
	// none).
	Subscribers []SubscriberReport `json:"subscribers_with_anomalies"`
	Errors      map[string]int     `json:"errors"`
	ErrorSample []string           `json:"error_samples"`
	// CloseCodes counts close frames received from the server, by code,
	// including the 1000 answering our own close at the end.
	CloseCodes map[string]int `json:"close_codes"`
	// PingsAnswered counts graphql-transport-ws pings answered with pong
	// and Centrifugo's {} pings answered with {}; KeepAlives counts legacy
	// ka frames received, Centrifugo pings that its connect reply said not
	// to answer, and on HTTP streams comment lines (SSE: the keepalive,
	// and the comment a stream opens with) and heartbeat parts (multipart).
	PingsAnswered int64         `json:"pings_answered"`
	KeepAlives    int64         `json:"keepalives_received"`
	Server        *ServerReport `json:"server,omitempty"`
	Self          SelfReport    `json:"self"`
	Phases        PhaseReport   `json:"phases_sec"`
}

type ConfigReport struct {
	URL             string   `json:"url"`
	Transport       string   `json:"transport"`
	Protocol        string   `json:"protocol"`
	Connections     int      `json:"connections"`
	SubsPerConn     int      `json:"subs_per_conn"`
	Rooms           int      `json:"rooms"`
	RoomPrefix      string   `json:"room_prefix"`
	RoomIDs         int      `json:"room_ids_given,omitempty"`
	PublishURL      string   `json:"publish_url,omitempty"`
	Sources         []string `json:"sources"`
	Query           string   `json:"query"`
	Events          int      `json:"events"`
	Rate            float64  `json:"rate"`
	Inflight        int      `json:"inflight"`
	IdleSec         float64  `json:"idle_sec"`
	ServerPID       int      `json:"server_pid"`
	RequireZeroLoss bool     `json:"require_zero_loss"`
	ClockTicks      int64    `json:"clock_ticks"`
}

type SetupReport struct {
	Failed                 bool           `json:"failed"`
	RoomsCreated           int            `json:"rooms_created"`
	ConnectionsEstablished int            `json:"connections_established"`
	ConnectionsFailed      int            `json:"connections_failed"`
	ByProtocol             map[string]int `json:"connections_by_protocol"`
	Subscriptions          int            `json:"subscriptions"`
	SubscriptionsLive      int            `json:"subscriptions_live"`
	ProbesPosted           int            `json:"probes_posted"`
	ConnectionsOpenAtEnd   int            `json:"connections_open_at_end"`
	// ConnectionsClosedByServer counts the connections (or streams) that
	// ended before the load generator closed them: closed or completed by
	// the server, or broken. Any fails the run.
	ConnectionsClosedByServer int `json:"connections_closed_by_server"`
	// SubscriptionsEndedByServer counts the subscriptions the server ended
	// (complete or error) before the end of the run on a connection it
	// kept open. Any fails the run.
	SubscriptionsEndedByServer int `json:"subscriptions_ended_by_server"`
}

type PublishReport struct {
	Sent        int           `json:"sent"`
	Acked       int           `json:"acked"`
	Failed      int           `json:"failed"`
	DurationSec float64       `json:"duration_sec"`
	RatePerSec  float64       `json:"rate_per_sec"`
	HTTPLatency LatencyReport `json:"http_latency"`
}

// DeliveryReport counts the deliveries. Misrouted counts events delivered
// to a subscription of another room and results on a subscription id (or
// Centrifugo channel) the connection never subscribed with. BadFrames
// counts frames (results, messages, parts) that are not valid JSON or not
// of the protocol: a result cut short is one, never a delivery; any fails
// the run.
type DeliveryReport struct {
	Expected      int64   `json:"expected"`
	Received      int64   `json:"received"` // distinct (subscription, seq) pairs
	Lost          int64   `json:"lost"`
	Duplicated    int64   `json:"duplicated"`
	Reordered     int64   `json:"reordered"`
	Misrouted     int64   `json:"misrouted"`
	Unacked       int64   `json:"unacked"` // received but the publish had failed
	Foreign       int64   `json:"foreign"` // valid results that are no event or probe of ours
	BadFrames     int64   `json:"bad_frames"`
	WindowSec     float64 `json:"window_sec"`
	PerSecond     float64 `json:"per_sec"`
	DrainComplete bool    `json:"drain_complete"`
}

type SubscriberReport struct {
	Conn       int    `json:"conn"`
	Sub        int    `json:"sub"`
	Protocol   string `json:"protocol"`
	Room       int    `json:"room"`
	Received   int    `json:"received"`
	Lost       int    `json:"lost"`
	Duplicated int    `json:"duplicated"`
	Reordered  int    `json:"reordered"`
	Misrouted  int    `json:"misrouted"`
	Unacked    int    `json:"unacked"`
}

type IdleReport struct {
	DurationSec float64 `json:"duration_sec"`
	// ServerCPUSec is the server's CPU during the idle window;
	// ServerCPUUsPerConnPerSec = that / connections / seconds, in µs.
	// Each server measure is null when it was not measured (no server PID,
	// or a reading of the server failed, which fails the run): never 0.
	ServerCPUSec             *float64 `json:"server_cpu_sec"`
	ServerCPUUsPerConnPerSec *float64 `json:"server_cpu_us_per_conn_per_sec"`
	// ServerRSSPerConnKB is (RSS at the end of the idle period - RSS before
	// connecting) / established connections.
	ServerRSSPerConnKB *float64 `json:"server_rss_per_conn_kb"`
	SelfCPUSec         float64  `json:"self_cpu_sec"`
}

type ServerReport struct {
	PID               int     `json:"pid"`
	RSSBeforeKB       int64   `json:"rss_before_kb"`
	RSSAfterConnectKB int64   `json:"rss_after_connect_kb"`
	RSSAfterRunKB     int64   `json:"rss_after_run_kb"`
	RSSPerConnKB      float64 `json:"rss_per_conn_kb"` // (after_connect - before) / established connections
	// CPU during the publish phase (first publish → last delivery or
	// drain timeout).
	PublishCPUSec          float64 `json:"publish_cpu_sec"`
	CPUSecPer1000Delivered float64 `json:"cpu_sec_per_1000_deliveries"`
	CPUSecTotalRun         float64 `json:"cpu_sec_total_run"`
}

type SelfReport struct {
	CPUSecTotal            float64 `json:"cpu_sec_total"`
	CPUSecSetup            float64 `json:"cpu_sec_setup"`
	CPUSecPublish          float64 `json:"cpu_sec_publish"`
	CPUSecPer1000Delivered float64 `json:"cpu_sec_per_1000_deliveries"`
	MaxRSSKB               int64   `json:"max_rss_kb"`
}

type PhaseReport struct {
	CreateRooms float64 `json:"create_rooms"`
	Connect     float64 `json:"connect"`
	Live        float64 `json:"wait_live"`
	Publish     float64 `json:"publish"`
	Drain       float64 `json:"drain"`
	Idle        float64 `json:"idle"`
	Close       float64 `json:"close"`
	Total       float64 `json:"total"`
}

// ---- run state ----

type sub struct {
	room      int
	tr        seqTracker
	misrouted int
	probe     atomic.Bool
	dead      atomic.Bool // error or complete received
}

// conn is one subscriber connection: a WebSocket, or an HTTP stream
// carrying one subscription.
type conn struct {
	idx     int
	proto   string          // the WebSocket subprotocol, or the stream transport
	ws      *websocket.Conn // nil for an HTTP stream
	stream  net.Conn        // an HTTP stream's connection; nil for a WebSocket
	subs    []*sub
	pong    bool // Centrifugo: its connect reply asked for an answer to each ping
	wmu     sync.Mutex
	closing atomic.Bool
	done    chan struct{}
}

func (c *conn) write(msg []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, msg)
}

func (c *conn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

type roomState struct {
	id    string
	mu    sync.Mutex
	seq   int
	acked []bool // acked[seq]; index 0 unused
	subs  int    // subscriptions to this room on established connections
}

type run struct {
	cfg   Config
	wsURL string
	http  *http.Client
	rooms []*roomState
	conns []*conn // nil for connections that failed

	hist      histogram // delivery latency
	pubHist   histogram // publish HTTP round trip
	delivered atomic.Int64
	foreign   atomic.Int64
	badFrames atomic.Int64 // frames that are not valid JSON or not of the protocol
	strays    atomic.Int64 // results on a subscription id or channel never subscribed
	dropped   atomic.Int64 // connections that ended before the loadgen closed them
	pings     atomic.Int64
	kas       atomic.Int64
	lastRecv  atomic.Int64 // unix nanos of the last marked delivery

	emu        sync.Mutex
	errs       map[string]int
	errSamples []string
	closeCodes map[string]int

	// Readings of the server (taken by Run's goroutine only): how many,
	// how many failed and the first failure.
	procReadings, procFailed int
	procErr                  string
}

func (r *run) errorf(category, format string, args ...any) {
	r.emu.Lock()
	defer r.emu.Unlock()
	r.errs[category]++
	if len(r.errSamples) < 20 {
		r.errSamples = append(r.errSamples, category+": "+fmt.Sprintf(format, args...))
	}
}

func (r *run) closeCode(code int) {
	r.emu.Lock()
	r.closeCodes[strconv.Itoa(code)]++
	r.emu.Unlock()
}

func (r *run) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "loadgen: "+format+"\n", args...)
	}
}

// Run executes one load run. It returns an error only for an invalid
// configuration; every other failure is in the report (Pass false,
// Setup.Failed for setup failures).
//
// A run goes through its phases in order, each timed in Report.Phases:
// set up the rooms, connect the subscribers, wait until every
// subscription is live, then either hold the connections idle or publish
// and drain the deliveries (then let late duplicates settle, counted only
// in the total), and close every connection. The server's RSS and CPU
// are sampled between phases.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	selfStart := selfCPU()
	r := newRun(cfg)
	defer r.http.CloseIdleConnections()
	rep := r.newReport()
	var server serverSamples
	setupCtx, cancelSetup := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancelSetup()

	r.setUpRooms(setupCtx, rep)
	server.before = r.sample("before")
	if !rep.Setup.Failed {
		r.connectSubscribers(setupCtx, rep)
		r.confirmLive(setupCtx, rep)
	}
	server.afterConnect = r.sample("after connect")
	rep.Self.CPUSecSetup = (selfCPU() - selfStart).Seconds()

	if !rep.Setup.Failed {
		r.writeStartedFile(rep)
		if cfg.Idle > 0 {
			r.holdIdle(ctx, rep, server.before)
		} else {
			r.publishAndDrain(ctx, rep, &server)
		}
	}

	server.afterRun = r.sample("after run")
	rep.Setup.ConnectionsOpenAtEnd = r.openConnections()
	rep.Setup.SubscriptionsEndedByServer = r.endedSubscriptions()
	r.closeConnections(rep)
	r.finishReport(ctx, rep, server, start, selfStart)
	return rep, nil
}

// newRun prepares the state of a run of cfg (already defaulted), with an
// HTTP client for its GraphQL requests; the caller closes the client's
// idle connections when the run is over.
func newRun(cfg Config) *run {
	wsURL := "ws" + strings.TrimPrefix(cfg.URL, "http")
	if cfg.Transport == transportCentrifugo {
		wsURL = centrifugoEndpoint(cfg.URL, centrifugoWSPath, true)
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2*cfg.Inflight + 4,
		MaxIdleConnsPerHost: 2*cfg.Inflight + 4,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &run{
		cfg:        cfg,
		wsURL:      wsURL,
		http:       &http.Client{Transport: tr, Timeout: 30 * time.Second},
		errs:       map[string]int{},
		closeCodes: map[string]int{},
	}
}

// newReport starts the run's report; its error and close code counts are
// the run's own maps, filled in as the run goes.
func (r *run) newReport() *Report {
	rep := &Report{Mode: "publish", Config: r.cfg.report(), Errors: r.errs, CloseCodes: r.closeCodes}
	if r.cfg.Idle > 0 {
		rep.Mode = "idle"
	}
	return rep
}

// fail records why the run does not pass.
func (rep *Report) fail(format string, args ...any) {
	rep.Failures = append(rep.Failures, fmt.Sprintf(format, args...))
}

// serverSamples are the server's RSS and CPU read between the phases of
// a run; a reading that failed (or of no server PID) is not ok.
type serverSamples struct {
	before       procSample // after the rooms are set up, before connecting
	afterConnect procSample // once every subscription is live (or setup failed)
	publishStart procSample
	publishEnd   procSample // after the drain
	afterRun     procSample // before closing the connections
}

// sample reads the server's RSS and CPU, counting a failed reading as an
// error of the run (and, in finishReport, a failure: a server that cannot
// be read has crashed or is not the one measured).
func (r *run) sample(what string) procSample {
	s, err := sampleProc(r.cfg.ServerPID)
	if r.cfg.ServerPID > 0 {
		r.procReadings++
	}
	if err != nil {
		r.errorf("proc", "%s: %v", what, err)
		if r.procFailed++; r.procFailed == 1 {
			r.procErr = fmt.Sprintf("%s: %v", what, err)
		}
	}
	return s
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// setUpRooms fills r.rooms: the room IDs given, Centrifugo's channels
// (which need no creating), or rooms created with createRoom. A room that
// cannot be created fails setup and leaves the rest uncreated.
func (r *run) setUpRooms(ctx context.Context, rep *Report) {
	t0 := time.Now()
	defer func() { rep.Phases.CreateRooms = time.Since(t0).Seconds() }()
	r.rooms = make([]*roomState, r.cfg.Rooms)
	for i := range r.rooms {
		if len(r.cfg.RoomIDs) > 0 {
			r.rooms[i] = &roomState{id: r.cfg.RoomIDs[i]}
			continue
		}
		if r.cfg.Transport == transportCentrifugo {
			// A room is a channel, which exists while it has subscribers.
			r.rooms[i] = &roomState{id: fmt.Sprintf("%s-%d", r.cfg.RoomPrefix, i)}
			continue
		}
		id, err := r.createRoom(ctx, fmt.Sprintf("%s-%d", r.cfg.RoomPrefix, i))
		if err != nil {
			r.errorf("create-room", "%v", err)
			rep.fail("setup: create room %d: %v", i, err)
			rep.Setup.Failed = true
			return
		}
		r.rooms[i] = &roomState{id: id}
		rep.Setup.RoomsCreated++
	}
}

// connectSubscribers opens every connection with its subscriptions and
// counts them, by protocol and per room; a connection that failed fails
// setup.
func (r *run) connectSubscribers(ctx context.Context, rep *Report) {
	t0 := time.Now()
	r.connectAll(ctx)
	rep.Phases.Connect = time.Since(t0).Seconds()
	s := &rep.Setup
	s.ByProtocol = map[string]int{}
	for _, c := range r.conns {
		if c == nil {
			s.ConnectionsFailed++
			continue
		}
		s.ConnectionsEstablished++
		s.ByProtocol[c.proto]++
		s.Subscriptions += len(c.subs)
		for _, sb := range c.subs {
			r.rooms[sb.room].subs++
		}
	}
	r.progress("connected %d/%d (%d failed) in %.1fs", s.ConnectionsEstablished, r.cfg.Connections, s.ConnectionsFailed, rep.Phases.Connect)
	if s.ConnectionsFailed > 0 {
		s.Failed = true
		rep.fail("setup: %d of %d connections failed", s.ConnectionsFailed, r.cfg.Connections)
	}
}

// confirmLive waits (waitLive) until every subscription has seen a probe
// of its room; one that has not by the end of setup fails it.
func (r *run) confirmLive(ctx context.Context, rep *Report) {
	t0 := time.Now()
	live, probes := r.waitLive(ctx)
	rep.Setup.SubscriptionsLive, rep.Setup.ProbesPosted = live, probes
	rep.Phases.Live = time.Since(t0).Seconds()
	r.progress("%d/%d subscriptions live after %.1fs (%d probes)", live, rep.Setup.Subscriptions, rep.Phases.Live, probes)
	if want := r.cfg.Connections * r.cfg.SubsPerConn; live < want {
		rep.Setup.Failed = true
		rep.fail("setup: %d of %d subscriptions live", live, want)
	}
}

// writeStartedFile tells other tools, through --started-file, that every
// subscription is live and the run proper begins.
func (r *run) writeStartedFile(rep *Report) {
	if r.cfg.StartedFile == "" {
		return
	}
	if err := os.WriteFile(r.cfg.StartedFile, []byte(time.Now().UTC().Format(time.RFC3339Nano)+"\n"), 0o644); err != nil {
		r.errorf("started-file", "%v", err)
		rep.fail("setup: --started-file: %v", err)
	}
}

// holdIdle keeps the connections open for cfg.Idle (or until ctx ends)
// and reports what holding them cost the server: its CPU over the period
// and its RSS at the end over before (sampled before connecting).
func (r *run) holdIdle(ctx context.Context, rep *Report, before procSample) {
	t0 := time.Now()
	s0, c0 := r.sample("idle start"), selfCPU()
	pause(ctx, r.cfg.Idle)
	s1, c1 := r.sample("idle end"), selfCPU()
	d := time.Since(t0)
	rep.Phases.Idle = d.Seconds()
	ir := &IdleReport{DurationSec: d.Seconds(), SelfCPUSec: (c1 - c0).Seconds()}
	if s0.ok && s1.ok {
		cpu := (s1.cpu - s0.cpu).Seconds()
		ir.ServerCPUSec = &cpu
		if n := rep.Setup.ConnectionsEstablished; n > 0 {
			us := cpu * 1e6 / float64(n) / d.Seconds()
			ir.ServerCPUUsPerConnPerSec = &us
			if before.ok {
				// Steady state: what holding an idle connection costs once
				// the set-up's garbage is collected.
				kb := float64(s1.rssKB-before.rssKB) / float64(n)
				ir.ServerRSSPerConnKB = &kb
			}
		}
	}
	rep.Idle = ir
}

// publishAndDrain publishes the events, waits for their deliveries and
// then for late duplicates, and reports the deliveries; the server's CPU
// and this process's are measured from the first publish to the end of
// the drain.
func (r *run) publishAndDrain(ctx context.Context, rep *Report, server *serverSamples) {
	server.publishStart = r.sample("publish start")
	c0 := selfCPU()
	started := r.publishEvents(ctx, rep)
	expected := r.expectedDeliveries()
	complete := r.drainDeliveries(ctx, rep, expected)
	server.publishEnd = r.sample("publish end")
	rep.Self.CPUSecPublish = (selfCPU() - c0).Seconds()
	rep.Delivery = r.deliveryReport(started, expected, complete)
	if !complete {
		r.progress("drain incomplete after %s: %d of %d deliveries", r.cfg.DrainTimeout, rep.Delivery.Received, expected)
	}
	r.settle(ctx)
}

// publishEvents publishes (publish) and reports the publishing; it
// returns when it began, the start of the delivery window.
func (r *run) publishEvents(ctx context.Context, rep *Report) (started time.Time) {
	started = time.Now()
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	pr := r.publish(pctx)
	cancel()
	d := time.Since(started)
	if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		rep.fail("publish: not done within %s (%d of %d events sent)", r.cfg.PublishTimeout, pr.Sent, r.cfg.Events)
	}
	rep.Phases.Publish = d.Seconds()
	pr.DurationSec = d.Seconds()
	if d > 0 {
		pr.RatePerSec = float64(pr.Sent) / d.Seconds()
	}
	pr.HTTPLatency = r.pubHist.report()
	rep.Publish = &pr
	r.progress("published %d (%d acked, %d failed) in %.1fs", pr.Sent, pr.Acked, pr.Failed, d.Seconds())
	return started
}

// expectedDeliveries is how many deliveries the acknowledged publishes
// owe: each room's acknowledged events times its subscriptions.
func (r *run) expectedDeliveries() int64 {
	var expected int64
	for _, rs := range r.rooms {
		n := 0
		for _, a := range rs.acked {
			if a {
				n++
			}
		}
		expected += int64(n) * int64(rs.subs)
	}
	return expected
}

// drainDeliveries waits (drain) for the expected deliveries, a count
// trusted only when every publish was acknowledged, and reports whether
// they all arrived.
func (r *run) drainDeliveries(ctx context.Context, rep *Report, expected int64) (complete bool) {
	t0 := time.Now()
	complete = r.drain(ctx, expected, rep.Publish.Failed == 0)
	rep.Phases.Drain = time.Since(t0).Seconds()
	return complete
}

// deliveryReport counts the deliveries so far and their rate over the
// window from the first publish (started) to the last delivery.
func (r *run) deliveryReport(started time.Time, expected int64, complete bool) *DeliveryReport {
	window := time.Duration(r.lastRecv.Load() - started.UnixNano())
	if r.lastRecv.Load() == 0 {
		window = 0
	}
	dr := &DeliveryReport{Expected: expected, Received: r.delivered.Load(), WindowSec: window.Seconds(), DrainComplete: complete}
	if window > 0 {
		dr.PerSecond = float64(dr.Received) / window.Seconds()
	}
	return dr
}

// settle gives late duplicates cfg.Settle to show.
func (r *run) settle(ctx context.Context) {
	pause(ctx, r.cfg.Settle)
}

// openConnections counts the connections the server has not closed.
func (r *run) openConnections() int {
	n := 0
	for _, c := range r.conns {
		if c != nil && c.alive() {
			n++
		}
	}
	return n
}

// endedSubscriptions counts the subscriptions the server ended on a
// connection it has not closed (those on a closed one are counted with
// their connection). Counted before closeAll, which ends every one.
func (r *run) endedSubscriptions() int {
	n := 0
	for _, c := range r.conns {
		if c == nil || !c.alive() {
			continue
		}
		for _, s := range c.subs {
			if s.dead.Load() {
				n++
			}
		}
	}
	return n
}

// closeConnections closes every connection and waits for every reader
// (closeAll).
func (r *run) closeConnections(rep *Report) {
	t0 := time.Now()
	r.closeAll()
	rep.Phases.Close = time.Since(t0).Seconds()
}

// finishReport computes the report's statistics once every reader has
// stopped: the deliveries per subscription, the server's and this
// process's costs, and whether the run passed.
func (r *run) finishReport(ctx context.Context, rep *Report, server serverSamples, start time.Time, selfStart time.Duration) {
	if rep.Delivery != nil {
		r.tallyDeliveries(rep)
		l := r.hist.report()
		rep.Latency = &l
		if r.cfg.RequireZeroLoss {
			rep.requireZeroLoss()
		}
	}
	if rep.Subscribers == nil {
		rep.Subscribers = []SubscriberReport{}
	}
	rep.Server = serverReport(r.cfg.ServerPID, server, rep.Setup.ConnectionsEstablished, rep.Delivery)
	rep.Self.CPUSecTotal = (selfCPU() - selfStart).Seconds()
	rep.Self.MaxRSSKB = selfMaxRSSKB()
	if rep.Delivery != nil && rep.Delivery.Received > 0 {
		rep.Self.CPUSecPer1000Delivered = rep.Self.CPUSecPublish * 1000 / float64(rep.Delivery.Received)
	}
	r.failOnServerTrouble(rep)
	rep.Phases.Total = time.Since(start).Seconds()
	rep.PingsAnswered, rep.KeepAlives = r.pings.Load(), r.kas.Load()
	r.emu.Lock()
	rep.ErrorSample = append([]string{}, r.errSamples...)
	r.emu.Unlock()
	if ctx.Err() != nil {
		rep.fail("interrupted: %v", ctx.Err())
	}
	rep.Pass = len(rep.Failures) == 0
	if rep.Failures == nil {
		rep.Failures = []string{}
	}
}

// failOnServerTrouble fails the run, whatever RequireZeroLoss says, on
// what makes its numbers no measure of the server: frames that are not
// valid JSON (a delivery cut short is not one), connections the server
// closed or subscriptions it ended before the end (an idle run that holds
// none has measured sockets without subscriptions, or nothing; a publish
// run's rate and costs are over fewer subscribers), and readings of the
// server's process that failed (its CPU and RSS are then not measured,
// not 0).
func (r *run) failOnServerTrouble(rep *Report) {
	if n := r.badFrames.Load(); n > 0 {
		rep.fail("protocol: %d frames from the server not valid JSON or not of the protocol (bad-frame)", n)
	}
	s := &rep.Setup
	s.ConnectionsClosedByServer = int(r.dropped.Load())
	if s.ConnectionsClosedByServer > 0 || s.ConnectionsOpenAtEnd < s.ConnectionsEstablished {
		rep.fail("connections: %d of %d ended by the server before the end of the run (%d open at the end)",
			max(s.ConnectionsClosedByServer, s.ConnectionsEstablished-s.ConnectionsOpenAtEnd), s.ConnectionsEstablished, s.ConnectionsOpenAtEnd)
	}
	if s.SubscriptionsEndedByServer > 0 {
		rep.fail("subscriptions: %d of %d ended by the server before the end of the run (sub-complete, sub-error)",
			s.SubscriptionsEndedByServer, s.Subscriptions)
	}
	if r.procFailed > 0 {
		rep.fail("server: %d of %d readings of PID %d failed (%s): its CPU and RSS are not measured",
			r.procFailed, r.procReadings, r.cfg.ServerPID, r.procErr)
	}
}

// tallyDeliveries adds every subscription's lost, duplicated, reordered,
// misrouted and unacknowledged deliveries to rep.Delivery and lists the
// subscriptions that had any in rep.Subscribers; results on a
// subscription never opened count as misrouted.
func (r *run) tallyDeliveries(rep *Report) {
	dr := rep.Delivery
	dr.Foreign = r.foreign.Load()
	dr.BadFrames = r.badFrames.Load()
	dr.Misrouted = r.strays.Load()
	for _, c := range r.conns {
		if c == nil {
			continue
		}
		for j, s := range c.subs {
			lost, unacked := s.tr.finish(r.rooms[s.room].acked)
			dr.Lost += int64(lost)
			dr.Duplicated += int64(s.tr.dup)
			dr.Reordered += int64(s.tr.reordered)
			dr.Misrouted += int64(s.misrouted + s.tr.invalid)
			dr.Unacked += int64(unacked)
			if lost+s.tr.dup+s.tr.reordered+s.misrouted+unacked+s.tr.invalid > 0 {
				rep.Subscribers = append(rep.Subscribers, SubscriberReport{Conn: c.idx, Sub: j, Protocol: c.proto, Room: s.room,
					Received: s.tr.received, Lost: lost, Duplicated: s.tr.dup, Reordered: s.tr.reordered, Misrouted: s.misrouted, Unacked: unacked})
			}
		}
	}
}

// requireZeroLoss fails the run on any lost, duplicated, reordered or
// misrouted delivery, on any result that is not the load generator's, on
// a drain that did not complete in time (a delivery that came later is
// not lost, but late) and on any failed publish.
func (rep *Report) requireZeroLoss() {
	dr := rep.Delivery
	if dr.Lost > 0 || dr.Duplicated > 0 || dr.Reordered > 0 || dr.Misrouted > 0 {
		rep.fail("delivery: %d lost, %d duplicated, %d reordered, %d misrouted", dr.Lost, dr.Duplicated, dr.Reordered, dr.Misrouted)
	}
	if dr.Foreign > 0 {
		rep.fail("delivery: %d results that are no event or probe of the load generator (foreign)", dr.Foreign)
	}
	// With a failed publish the drain cannot know its count, so it never
	// completes: the failed publish is the failure.
	if !dr.DrainComplete && rep.Publish.Failed == 0 {
		rep.fail("delivery: drain not complete within the drain timeout (%d of %d deliveries by then)", dr.Received, dr.Expected)
	}
	if rep.Publish.Failed > 0 {
		rep.fail("publish: %d of %d failed", rep.Publish.Failed, rep.Publish.Sent)
	}
}

// serverReport is what the run cost the server with PID pid, from its
// samples (nil without a PID): its RSS per established connection after
// connecting, its CPU while publishing (per 1000 deliveries when there
// were any) and over the whole run.
func serverReport(pid int, s serverSamples, conns int, delivery *DeliveryReport) *ServerReport {
	if pid <= 0 {
		return nil
	}
	sr := &ServerReport{PID: pid, RSSBeforeKB: s.before.rssKB, RSSAfterConnectKB: s.afterConnect.rssKB, RSSAfterRunKB: s.afterRun.rssKB}
	if conns > 0 && s.before.ok && s.afterConnect.ok {
		sr.RSSPerConnKB = float64(s.afterConnect.rssKB-s.before.rssKB) / float64(conns)
	}
	if s.publishStart.ok && s.publishEnd.ok {
		sr.PublishCPUSec = (s.publishEnd.cpu - s.publishStart.cpu).Seconds()
		if delivery != nil && delivery.Received > 0 {
			sr.CPUSecPer1000Delivered = sr.PublishCPUSec * 1000 / float64(delivery.Received)
		}
	}
	if s.before.ok && s.afterRun.ok {
		sr.CPUSecTotalRun = (s.afterRun.cpu - s.before.cpu).Seconds()
	}
	return sr
}

// transportProblems checks Transport and what it allows.
func (c Config) transportProblems() []string {
	switch c.Transport {
	case transportWS:
		switch c.Protocol {
		case "transport", "legacy", "both":
			return nil
		}
		return []string{fmt.Sprintf("protocol %q: want transport, legacy or both", c.Protocol)}
	case transportCentrifugo:
		// Centrifugo refuses a second subscription to one channel on a
		// connection; round-robin gives a connection distinct rooms only
		// when there are enough of them.
		if c.SubsPerConn > c.Rooms {
			return []string{fmt.Sprintf("%d subscriptions per connection over %d rooms: Centrifugo takes one subscription per channel on a connection", c.SubsPerConn, c.Rooms)}
		}
		return nil
	case transportSSE, transportMultipart:
		var problems []string
		if c.SubsPerConn != 1 {
			problems = append(problems, fmt.Sprintf("%d subscriptions per connection: an %s stream carries one", c.SubsPerConn, c.Transport))
		}
		if u, err := url.Parse(c.URL); err == nil && u.Scheme != "http" {
			problems = append(problems, fmt.Sprintf("url %q: %s streams are opened over plain http only", c.URL, c.Transport))
		}
		return problems
	}
	return []string{fmt.Sprintf("transport %q: want ws, sse, multipart or centrifugo", c.Transport)}
}

func (c Config) report() ConfigReport {
	srcs := make([]string, len(c.Sources))
	for i, s := range c.Sources {
		srcs[i] = s.String()
	}
	protocol := c.Protocol
	if c.Transport != transportWS {
		protocol = c.Transport
	}
	return ConfigReport{URL: c.URL, Transport: c.Transport, Protocol: protocol, Connections: c.Connections, SubsPerConn: c.SubsPerConn,
		Rooms: c.Rooms, RoomPrefix: c.RoomPrefix, RoomIDs: len(c.RoomIDs), PublishURL: c.PublishURL, Sources: srcs, Query: c.Query, Events: c.Events, Rate: c.Rate,
		Inflight: c.Inflight, IdleSec: c.Idle.Seconds(), ServerPID: c.ServerPID, RequireZeroLoss: c.RequireZeroLoss,
		ClockTicks: procstat.ClockTicks()}
}

// ---- HTTP GraphQL ----

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// graphql posts one operation to target.
func (r *run) graphql(ctx context.Context, target, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Herald-User", r.cfg.UserPrefix+"-publisher")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	var res struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, b)
	}
	if len(res.Errors) > 0 {
		return fmt.Errorf("HTTP %d: %s (%v)", resp.StatusCode, res.Errors[0].Message, res.Errors[0].Extensions["code"])
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if out != nil {
		return json.Unmarshal(res.Data, out)
	}
	return nil
}

func (r *run) createRoom(ctx context.Context, name string) (string, error) {
	var out struct {
		CreateRoom struct{ ID string } `json:"createRoom"`
	}
	// At the replica the subscribers are on, which knows the room as soon
	// as it answers; another replica may take a moment to.
	err := r.graphql(ctx, r.cfg.URL, `mutation($n: String!) { createRoom(name: $n) { id } }`, map[string]any{"n": name}, &out)
	if err == nil && out.CreateRoom.ID == "" {
		err = errors.New("createRoom returned no id")
	}
	return out.CreateRoom.ID, err
}

const postMutation = `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`

// post posts a probe or an event, at PublishURL if set.
func (r *run) post(ctx context.Context, roomID, text string) error {
	target := r.cfg.URL
	if r.cfg.PublishURL != "" {
		target = r.cfg.PublishURL
	}
	if r.cfg.Transport == transportCentrifugo {
		return r.centrifugoPublish(ctx, target, roomID, text)
	}
	return r.graphql(ctx, target, postMutation, map[string]any{"r": roomID, "t": text}, nil)
}

// ---- connections ----

func (r *run) connectAll(ctx context.Context) {
	r.conns = make([]*conn, r.cfg.Connections)
	next := make(chan int)
	var wg sync.WaitGroup
	var done atomic.Int64
	for range min(r.cfg.DialConcurrency, r.cfg.Connections) {
		wg.Go(func() {
			for i := range next {
				c, err := r.connect(ctx, i)
				if err != nil {
					r.errorf("connect", "conn %d: %v", i, err)
					continue
				}
				r.conns[i] = c
				if n := done.Add(1); n%2000 == 0 {
					r.progress("%d connections up", n)
				}
			}
		})
	}
	for i := range r.cfg.Connections {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
}

// connect opens connection i and subscribes on it.
func (r *run) connect(ctx context.Context, i int) (*conn, error) {
	switch r.cfg.Transport {
	case transportWS:
		return r.connectWS(ctx, i)
	case transportCentrifugo:
		return r.connectCentrifugo(ctx, i)
	}
	return r.openStream(ctx, i)
}

// dialer dials connection i from its source address, if any.
func (r *run) dialer(i int) *net.Dialer {
	nd := &net.Dialer{Timeout: r.cfg.HandshakeTimeout}
	if len(r.cfg.Sources) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: r.cfg.Sources[i%len(r.cfg.Sources)]}
	}
	return nd
}

// connectWS opens WebSocket i and starts its subscriptions.
func (r *run) connectWS(ctx context.Context, i int) (*conn, error) {
	proto := protoTransport
	if r.cfg.Protocol == "legacy" || (r.cfg.Protocol == "both" && i%2 == 1) {
		proto = protoLegacy
	}
	d := websocket.Dialer{
		NetDialContext:   r.dialer(i).DialContext,
		Subprotocols:     []string{proto},
		HandshakeTimeout: r.cfg.HandshakeTimeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
	}
	hctx, cancel := context.WithTimeout(ctx, r.cfg.HandshakeTimeout)
	defer cancel()
	ws, resp, err := d.DialContext(hctx, r.wsURL, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %v (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	if ws.Subprotocol() != proto {
		ws.Close()
		return nil, fmt.Errorf("server chose subprotocol %q, offered %q", ws.Subprotocol(), proto)
	}
	c := &conn{idx: i, proto: proto, ws: ws, done: make(chan struct{})}
	fail := func(err error) (*conn, error) {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			r.closeCode(ce.Code)
		}
		ws.Close()
		return nil, err
	}
	init, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"user": fmt.Sprintf("%s%d", r.cfg.UserPrefix, i)}})
	if err := c.write(init); err != nil {
		return fail(fmt.Errorf("connection_init: %w", err))
	}
	deadline, _ := hctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	for acked := false; !acked; {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			return fail(fmt.Errorf("waiting for connection_ack: %w", err))
		}
		var f struct{ Type string }
		if err := json.Unmarshal(msg, &f); err != nil {
			return fail(fmt.Errorf("waiting for connection_ack: bad frame %.100q", msg))
		}
		switch f.Type {
		case "connection_ack":
			acked = true
		case "ping":
			if err := c.write([]byte(`{"type":"pong"}`)); err != nil {
				return fail(err)
			}
			r.pings.Add(1)
		case "ka":
			r.kas.Add(1)
		default:
			return fail(fmt.Errorf("waiting for connection_ack: got %.200s", msg))
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	start := "subscribe"
	if proto == protoLegacy {
		start = "start"
	}
	for j := range r.cfg.SubsPerConn {
		room := (i*r.cfg.SubsPerConn + j) % r.cfg.Rooms
		c.subs = append(c.subs, r.newSub(room))
		m, _ := json.Marshal(map[string]any{"id": strconv.Itoa(j + 1), "type": start,
			"payload": map[string]any{"query": r.cfg.Query, "variables": map[string]any{"r": r.rooms[room].id}}})
		if err := c.write(m); err != nil {
			return fail(fmt.Errorf("%s: %w", start, err))
		}
	}
	go r.read(c)
	return c, nil
}

// read is a WebSocket's only reader goroutine (GraphQL or Centrifugo).
func (r *run) read(c *conn) {
	defer close(c.done)
	for {
		_, msg, err := c.ws.ReadMessage()
		if err != nil {
			closing := c.closing.Load()
			if !closing {
				r.dropped.Add(1) // not the load generator's own close
			}
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				r.closeCode(ce.Code)
				if closing && ce.Code == websocket.CloseNormalClosure {
					return
				}
				r.errorf("closed", "conn %d (%s): server closed %d %q", c.idx, c.proto, ce.Code, ce.Text)
				return
			}
			if !closing {
				r.errorf("read", "conn %d (%s): %v", c.idx, c.proto, err)
			}
			return
		}
		if c.proto == transportCentrifugo {
			r.centrifugoFrame(c, msg, time.Now())
			continue
		}
		r.frame(c, msg, time.Now())
	}
}

var (
	prefixID    = []byte(`{"id":"`)
	segNext     = []byte(`,"type":"next"`)
	segData     = []byte(`,"type":"data"`)
	segError    = []byte(`,"type":"error"`)
	segComplete = []byte(`,"type":"complete"`)
	frPing      = []byte(`{"type":"ping"}`)
	frKA        = []byte(`{"type":"ka"}`)
	markerLG    = []byte(`"lg|`)
	markerProbe = []byte(`"probe|`)
)

// frame handles one server frame. Herald writes id-carrying frames as
// {"id":"<id>","type":...,"payload":...}; that shape is parsed without
// a JSON decoder (the reader goroutines of thousands of sockets would
// otherwise dominate the load generator's CPU); anything else goes
// through encoding/json.
func (r *run) frame(c *conn, msg []byte, now time.Time) {
	if bytes.HasPrefix(msg, prefixID) {
		rest := msg[len(prefixID):]
		q := bytes.IndexByte(rest, '"')
		if q > 0 {
			id, rest := rest[:q], rest[q+1:]
			switch {
			case bytes.HasPrefix(rest, segNext), bytes.HasPrefix(rest, segData):
				r.next(c, string(id), msg, now)
				return
			case bytes.HasPrefix(rest, segError):
				r.subEnded(c, string(id), "sub-error", msg)
				return
			case bytes.HasPrefix(rest, segComplete):
				r.subEnded(c, string(id), "sub-complete", msg)
				return
			}
		}
	}
	switch {
	case bytes.Equal(msg, frPing):
		r.pong(c)
		return
	case bytes.Equal(msg, frKA):
		r.kas.Add(1)
		return
	}
	var f struct {
		Type    string          `json:"type"`
		ID      string          `json:"id"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(msg, &f); err != nil {
		r.badFrame(c, "bad-frame", msg)
		return
	}
	switch f.Type {
	case "ping":
		r.pong(c)
	case "pong":
	case "ka":
		r.kas.Add(1)
	case "next", "data":
		r.next(c, f.ID, msg, now)
	case "error":
		r.subEnded(c, f.ID, "sub-error", msg)
	case "complete":
		r.subEnded(c, f.ID, "sub-complete", msg)
	default:
		r.errorf("unexpected-frame", "conn %d: %.200s", c.idx, msg)
	}
}

func (r *run) pong(c *conn) {
	if c.proto != protoTransport {
		return
	}
	if err := c.write([]byte(`{"type":"pong"}`)); err != nil && !c.closing.Load() {
		r.errorf("pong", "conn %d: %v", c.idx, err)
		return
	}
	r.pings.Add(1)
}

// newSub is a subscription to room, whose valid sequence numbers are
// those the run can publish (no room gets more than cfg.Events).
func (r *run) newSub(room int) *sub {
	return &sub{room: room, tr: newSeqTracker(r.cfg.Events)}
}

// sub is the subscription id names, exactly as the load generator wrote
// it: "01" or "+1" is no id of ours, though strconv reads it as 1.
func (c *conn) sub(id string) *sub {
	if id == "" || id[0] < '1' || id[0] > '9' {
		return nil
	}
	j, err := strconv.Atoi(id)
	if err != nil || j > len(c.subs) {
		return nil
	}
	return c.subs[j-1]
}

func (r *run) subEnded(c *conn, id, category string, msg []byte) {
	if s := c.sub(id); s != nil {
		s.dead.Store(true)
	}
	r.errorf(category, "conn %d (%s) sub %s: %.300s", c.idx, c.proto, id, msg)
}

// next handles a result of the subscription id on a WebSocket; one on an
// id the connection never subscribed with is misrouted.
func (r *run) next(c *conn, id string, msg []byte, now time.Time) {
	s := c.sub(id)
	if s == nil {
		if !validJSON(msg) {
			r.badFrame(c, "bad-frame", msg)
			return
		}
		r.stray(c, "unknown-id", msg)
		return
	}
	r.result(c, s, msg, now)
}

// badFrame counts a frame, message or part of the server's that is not
// valid JSON or not of the protocol: nothing can be read from it.
func (r *run) badFrame(c *conn, category string, msg []byte) {
	r.badFrames.Add(1)
	r.errorf(category, "conn %d (%s): %.200s", c.idx, c.proto, msg)
}

// stray counts a result on a subscription id (or Centrifugo channel) that
// the connection never subscribed with: a misrouted delivery.
func (r *run) stray(c *conn, category string, msg []byte) {
	r.strays.Add(1)
	r.errorf(category, "conn %d (%s): %.200s", c.idx, c.proto, msg)
}

// result handles a result of s, msg holding it (and maybe its envelope):
// text "lg|<room>|<seq>|<sendUnixNano>" is a measured event,
// "probe|<room>|<round>" a liveness probe. msg is not kept. A msg that is
// not valid JSON (a frame cut short) is a bad frame, not a delivery: the
// fast paths that lead here only look at its first bytes. A text marked
// "lg|" or "probe|" that does not parse is no event or probe of ours, so
// it is foreign, as is any other result that is not the load generator's;
// an event or probe of another room is misrouted.
func (r *run) result(c *conn, s *sub, msg []byte, now time.Time) {
	if !validJSON(msg) {
		r.badFrame(c, "bad-frame", msg)
		return
	}
	if i := bytes.Index(msg, markerLG); i >= 0 {
		room, seq, sent, ok := parseEventText(msg[i+len(markerLG):])
		if !ok {
			r.foreign.Add(1)
			r.errorf("bad-text", "conn %d: %.200s", c.idx, msg)
			return
		}
		if room != s.room {
			s.misrouted++
			return
		}
		switch s.tr.observe(seq) {
		case obsNew, obsReordered:
			r.hist.record(now.Sub(time.Unix(0, sent)))
			r.delivered.Add(1)
			for {
				l := r.lastRecv.Load()
				if now.UnixNano() <= l || r.lastRecv.CompareAndSwap(l, now.UnixNano()) {
					break
				}
			}
		}
		return
	}
	if i := bytes.Index(msg, markerProbe); i >= 0 {
		room, _, _, ok := parseFields(msg[i+len(markerProbe):], 2)
		switch {
		case !ok: // no probe of ours, as a bad "lg|" text is no event
			r.foreign.Add(1)
			r.errorf("bad-text", "conn %d: %.200s", c.idx, msg)
		case room != s.room:
			s.misrouted++
		default:
			s.probe.Store(true)
		}
		return
	}
	r.foreign.Add(1)
	if bytes.Contains(msg, []byte(`"errors"`)) {
		r.errorf("result-error", "conn %d: %.300s", c.idx, msg)
	}
}

// parseEventText parses `<room>|<seq>|<sendUnixNano>"`.
func parseEventText(b []byte) (room, seq int, sent int64, ok bool) {
	a, bb, cc, ok := parseFields(b, 3)
	return int(a), int(bb), cc, ok
}

// parseFields parses n (2 or 3) '|'-separated decimal numbers ending at
// '"'.
func parseFields(b []byte, n int) (f0, f1 int, f2 int64, ok bool) {
	var vals [3]int64
	k := 0
	var v int64
	digits := 0
	for _, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			if digits > 18 {
				return 0, 0, 0, false
			}
			v = v*10 + int64(ch-'0')
			digits++
		case ch == '|' || ch == '"':
			if digits == 0 || k >= n {
				return 0, 0, 0, false
			}
			vals[k] = v
			k++
			v, digits = 0, 0
			if ch == '"' {
				if k != n {
					return 0, 0, 0, false
				}
				return int(vals[0]), int(vals[1]), vals[2], true
			}
		default:
			return 0, 0, 0, false
		}
	}
	return 0, 0, 0, false
}

// waitLive posts a probe to every room that still has a subscription
// which has not seen one, every 250 ms, until all live connections'
// subscriptions have seen a probe of their room (a subscription that saw
// an event is attached to the room's stream, so it sees every later event)
// or ctx ends. It returns how many subscriptions are live and how many
// probes it posted.
func (r *run) waitLive(ctx context.Context) (live, probes int) {
	pending := make([]bool, len(r.rooms))
	for round := 1; ; round++ {
		live = 0
		waiting := false
		clear(pending)
		for _, c := range r.conns {
			if c == nil {
				continue
			}
			for _, s := range c.subs {
				switch {
				case s.probe.Load():
					live++
				case c.alive() && !s.dead.Load():
					pending[s.room] = true
					waiting = true
				}
			}
		}
		if !waiting || ctx.Err() != nil {
			return live, probes
		}
		var wg sync.WaitGroup
		sem := make(chan struct{}, r.cfg.Inflight)
		for room, p := range pending {
			if !p {
				continue
			}
			probes++
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if err := r.post(ctx, r.rooms[room].id, fmt.Sprintf("probe|%d|%d", room, round)); err != nil && ctx.Err() == nil {
					r.errorf("probe", "room %d: %v", room, err)
				}
			})
		}
		wg.Wait()
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// publish posts cfg.Events messages round-robin over the rooms, paced
// at cfg.Rate (or as fast as cfg.Inflight allows). A room has at most one
// post in flight, and its sequence number is assigned when its post is
// sent, so the log holds each room's messages in sequence order and any
// reordering seen by a subscriber is the server's.
func (r *run) publish(ctx context.Context) PublishReport {
	var pr PublishReport
	var sent, acked, failed atomic.Int64
	events := make(chan int)
	var wg sync.WaitGroup
	for range r.cfg.Inflight {
		wg.Go(func() {
			for e := range events {
				rs := r.rooms[e%len(r.rooms)]
				room := e % len(r.rooms)
				rs.mu.Lock()
				rs.seq++
				seq := rs.seq
				for len(rs.acked) <= seq {
					rs.acked = append(rs.acked, false)
				}
				t := time.Now()
				err := r.post(ctx, rs.id, fmt.Sprintf("lg|%d|%d|%d", room, seq, t.UnixNano()))
				r.pubHist.record(time.Since(t))
				sent.Add(1)
				if err == nil {
					rs.acked[seq] = true
					acked.Add(1)
				} else {
					failed.Add(1)
					if ctx.Err() == nil {
						r.errorf("publish", "room %d seq %d: %v", room, seq, err)
					}
				}
				rs.mu.Unlock()
			}
		})
	}
	start := time.Now()
	lastLog := start
	for e := range r.cfg.Events {
		if r.cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(e) / r.cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		events <- e
		if time.Since(lastLog) > 5*time.Second {
			lastLog = time.Now()
			r.progress("published %d/%d, %d deliveries so far", sent.Load(), r.cfg.Events, r.delivered.Load())
		}
	}
	close(events)
	wg.Wait()
	pr.Sent, pr.Acked, pr.Failed = int(sent.Load()), int(acked.Load()), int(failed.Load())
	return pr
}

// drain waits until expected deliveries have arrived (only trusted when
// every publish was acknowledged; otherwise a stored-but-unacknowledged
// event could make up the count) or DrainTimeout passes.
func (r *run) drain(ctx context.Context, expected int64, exact bool) bool {
	deadline := time.Now().Add(r.cfg.DrainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if exact && r.delivered.Load() >= expected {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return r.delivered.Load() >= expected && exact
}

// closeAll closes every WebSocket with 1000 and every HTTP stream (as a
// client that is done with it does: it closes the connection), and waits
// for the readers.
func (r *run) closeAll() {
	var wg sync.WaitGroup
	next := make(chan *conn)
	for range min(64, len(r.conns)) {
		wg.Go(func() {
			for c := range next {
				c.closing.Store(true)
				if c.stream != nil {
					_ = c.stream.Close()
					continue
				}
				_ = c.ws.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.CloseNormalClosure, "loadgen done"), time.Now().Add(time.Second))
			}
		})
	}
	for _, c := range r.conns {
		if c != nil {
			next <- c
		}
	}
	close(next)
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range r.conns {
		if c == nil {
			continue
		}
		select {
		case <-c.done:
		case <-time.After(time.Until(deadline)):
		}
		if c.ws != nil {
			_ = c.ws.Close()
		}
		<-c.done
	}
}

// sortedKeys is used by the summary.
func sortedKeys(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
