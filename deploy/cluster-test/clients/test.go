package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// config is what the flags say.
type config struct {
	url            string   // nginx, e.g. http://127.0.0.1:18080
	direct         []string // each replica, for the final read-model check
	clients        int
	sseClients     int
	multiClients   int
	rooms          int
	roomsPerClient int
	rate           float64 // posts per second per room
	publish        time.Duration
	connectWait    time.Duration
	settle         time.Duration
	quiet          time.Duration
	deadline       time.Duration
	readTimeout    time.Duration
	postTimeout    time.Duration
	reconnectLimit time.Duration
	stagger        time.Duration
	resume         bool
	startedFile    string
	progress       time.Duration
}

func parseFlags(args []string) (config, error) {
	var c config
	var direct string
	fs := flag.NewFlagSet("clients", flag.ContinueOnError)
	fs.StringVar(&c.url, "url", "", "Herald through nginx: http://host:port (required)")
	fs.StringVar(&direct, "direct", "", "comma-separated http://host:port of every replica, for the final check that each read model holds every message")
	fs.IntVar(&c.clients, "clients", 30, "WebSocket clients")
	fs.IntVar(&c.sseClients, "sse-clients", 0, "event-stream clients besides (graphql-sse distinct connections: a stream per room, resumed by Last-Event-ID)")
	fs.IntVar(&c.multiClients, "multipart-clients", 6, "Apollo multipart subscription clients besides (a POST per room, resubscribed with $after set to the last cursor)")
	fs.IntVar(&c.rooms, "rooms", 6, "rooms, one publisher each")
	fs.IntVar(&c.roomsPerClient, "rooms-per-client", 3, "rooms each client subscribes to")
	fs.Float64Var(&c.rate, "rate", 8, "messages per second per room")
	fs.DurationVar(&c.publish, "publish", 50*time.Second, "how long the publishers post")
	fs.DurationVar(&c.connectWait, "connect-wait", 20*time.Second, "how long every client may take to connect before publishing starts")
	fs.DurationVar(&c.settle, "settle", 30*time.Second, "after publishing: how long clients may take to receive everything")
	fs.DurationVar(&c.quiet, "quiet", 3*time.Second, "after everything arrived: how long to keep listening for duplicates")
	fs.DurationVar(&c.deadline, "deadline", 4*time.Minute, "hard bound on the whole run")
	fs.DurationVar(&c.readTimeout, "read-timeout", 30*time.Second, "a socket silent this long (no event, no ping) is taken as dead and reconnected")
	fs.DurationVar(&c.postTimeout, "post-timeout", 30*time.Second, "how long one message may be retried before the test fails")
	fs.DurationVar(&c.stagger, "reconnect-stagger", time.Second, "client n waits (n mod 4) times this before reconnecting after a working socket ends, so resumes replay what was missed meanwhile")
	fs.BoolVar(&c.resume, "resume", true, "resubscribe after the last cursor (false: without one, a negative control that must fail)")
	fs.DurationVar(&c.reconnectLimit, "reconnect-limit", 45*time.Second, "how long a client may stay unable to reconnect before the test fails")
	fs.StringVar(&c.startedFile, "started-file", "", "file to create when publishing starts (the driver times its failures from it)")
	fs.DurationVar(&c.progress, "progress", 5*time.Second, "interval of progress lines (0: none)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, u := range strings.Split(direct, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.direct = append(c.direct, strings.TrimRight(u, "/"))
		}
	}
	c.url = strings.TrimRight(c.url, "/")
	switch {
	case !strings.HasPrefix(c.url, "http://"):
		return c, errors.New("-url must be http://host:port")
	case c.sseClients < 0 || c.multiClients < 0:
		return c, errors.New("-sse-clients and -multipart-clients must not be negative")
	case c.clients < 1 || c.rooms < 1 || c.roomsPerClient < 1 || c.roomsPerClient > c.rooms:
		return c, errors.New("need -clients >= 1, -rooms >= 1 and 1 <= -rooms-per-client <= -rooms")
	case c.rate <= 0 || c.rate > 1000:
		return c, errors.New("-rate must be in (0, 1000]")
	}
	return c, nil
}

// room is one room and its publisher's progress.
type room struct {
	label      string // r0, r1, ...; messages are "<label>:<n>"
	id         string
	seedCursor string
	posted     atomic.Int64 // messages 0..posted-1 are stored
	firstTry   []atomic.Int64
	done       atomic.Bool // the publisher stopped; posted is final
}

// report collects violations; a fatal one stops the run at once.
type report struct {
	mu         sync.Mutex
	violations []string
	count      int
	fatal      context.CancelCauseFunc

	postRetries   map[string]int // by reason
	retriedPosts  int
	subErrors     map[string]int // transient subscribe errors, by code
	unexpComplete int

	slowest        time.Duration
	slowestHistory []string
}

const keepViolations = 40

func (r *report) violation(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	if len(r.violations) < keepViolations {
		r.violations = append(r.violations, fmt.Sprintf(format, args...))
	}
}

// abort records a violation that makes going on pointless and stops the run.
func (r *report) abort(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.violation("%s", msg)
	r.fatal(errors.New(msg))
}

// slowPost remembers the slowest post and its failed attempts.
func (r *report) slowPost(d time.Duration, history []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d > r.slowest {
		r.slowest, r.slowestHistory = d, history
	}
}

func (r *report) countPostRetry(reason string) {
	r.mu.Lock()
	r.postRetries[reason]++
	r.mu.Unlock()
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "cluster-clients: "+format+"\n", args...)
}

func runTest(parent context.Context, cfg config) int {
	start := time.Now()
	ctx, cancel := context.WithTimeoutCause(parent, cfg.deadline, fmt.Errorf("the run exceeded -deadline %s", cfg.deadline))
	defer cancel()
	ctx, fatal := context.WithCancelCause(ctx)
	defer fatal(nil)
	rep := &report{fatal: fatal, postRetries: map[string]int{}, subErrors: map[string]int{}}
	h := &httpClient{base: cfg.url, c: &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32, IdleConnTimeout: 30 * time.Second},
	}}

	// Rooms and their seed messages. The cluster is healthy now; failing
	// here is a set-up failure.
	runID := fmt.Sprintf("%x", rand.Uint32())
	maxN := int(cfg.rate*cfg.publish.Seconds()) + 16
	rooms := make([]*room, cfg.rooms)
	for i := range rooms {
		r := &room{label: fmt.Sprintf("r%d", i), firstTry: make([]atomic.Int64, maxN)}
		id, err := h.createRoom(ctx, fmt.Sprintf("cluster-%s-%s", runID, r.label), cfg.postTimeout, rep)
		if err != nil {
			logf("FAIL: set-up: create room %s: %v", r.label, err)
			return 1
		}
		r.id = id
		msg, err := h.post(ctx, r, "seed", cfg.postTimeout, rep)
		if err != nil {
			logf("FAIL: set-up: post the seed message of %s: %v", r.label, err)
			return 1
		}
		r.seedCursor = msg.Cursor
		rooms[i] = r
	}
	logf("run %s: %d rooms created through %s, each with a seed message, in %s", runID, len(rooms), cfg.url, time.Since(start).Round(time.Millisecond))

	// Clients: client c subscribes rooms c, c+1, ... (mod rooms), so every
	// room has the same number of subscribers when clients is a multiple
	// of rooms.
	wsURL := "ws" + strings.TrimPrefix(cfg.url, "http") + "/graphql"
	clients := make([]*client, cfg.clients+cfg.sseClients+cfg.multiClients)
	clientCtx, stopClients := context.WithCancel(ctx)
	defer stopClients()
	var clientWG sync.WaitGroup
	streams := streamHTTP()
	defer streams.CloseIdleConnections()
	for i := range clients {
		c := &client{n: i, url: wsURL, cfg: cfg, rep: rep, closes: map[string]int{}}
		switch {
		case i >= cfg.clients+cfg.sseClients:
			c.kind, c.url, c.http = overMultipart, cfg.url+"/graphql", streams
		case i >= cfg.clients:
			c.kind, c.url, c.http = overSSE, cfg.url+"/graphql", streams
		}
		for j := range cfg.roomsPerClient {
			r := rooms[(i+j)%len(rooms)]
			c.subs = append(c.subs, &sub{room: r, cursor: r.seedCursor})
		}
		clients[i] = c
		clientWG.Add(1)
		go func() { defer clientWG.Done(); c.run(clientCtx) }()
	}
	// Every client connected once (its subscriptions sent) before posting.
	connectBy := time.Now().Add(cfg.connectWait)
	for {
		n := 0
		for _, c := range clients {
			if c.everConnected.Load() {
				n++
			}
		}
		if n == len(clients) {
			break
		}
		if time.Now().After(connectBy) || ctx.Err() != nil {
			rep.abort("only %d of %d clients connected within -connect-wait %s", n, len(clients), cfg.connectWait)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Publishers.
	var pubWG sync.WaitGroup
	pubStart := time.Now()
	if ctx.Err() == nil {
		if cfg.startedFile != "" {
			// The start time, then the rooms' IDs (the driver kills the
			// NATS node that leads the first room's partition).
			started := pubStart.Format(time.RFC3339Nano) + "\n"
			for _, r := range rooms {
				started += r.id + "\n"
			}
			if err := os.WriteFile(cfg.startedFile, []byte(started), 0o644); err != nil {
				logf("FAIL: write -started-file: %v", err)
				return 1
			}
		}
		logf("%d clients connected after %s; publishing %.0f messages/s in each of %d rooms for %s", len(clients), time.Since(start).Round(time.Millisecond), cfg.rate, len(rooms), cfg.publish)
		for _, r := range rooms {
			pubWG.Add(1)
			go func() { defer pubWG.Done(); publish(ctx, h, r, cfg, rep) }()
		}
	}
	pubDone := make(chan struct{})
	go func() { pubWG.Wait(); close(pubDone) }()

	// Progress until the publishers are done and then until every client
	// has everything (bounded by -settle), or the run is stopped.
	var tick <-chan time.Time
	if cfg.progress > 0 {
		t := time.NewTicker(cfg.progress)
		defer t.Stop()
		tick = t.C
	}
	var settleBy time.Time
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-tick:
			progress(pubStart, rooms, clients)
		case <-pubDone:
			pubDone = nil
			settleBy = time.Now().Add(cfg.settle)
			logf("publishing done after %s: %s", time.Since(pubStart).Round(100*time.Millisecond), postedSummary(rooms))
		case <-poll.C:
			if pubDone != nil {
				continue
			}
			if allReceived(clients) {
				logf("every client has every message, %s after publishing ended; listening %s more for duplicates",
					time.Since(settleBy.Add(-cfg.settle)).Round(10*time.Millisecond), cfg.quiet)
				select {
				case <-time.After(cfg.quiet):
				case <-ctx.Done():
				}
				break wait
			}
			if time.Now().After(settleBy) {
				rep.violation("not every client received every message within -settle %s after publishing ended (details below)", cfg.settle)
				break wait
			}
		}
	}
	stopped := ctx.Err() != nil
	stopClients()
	waitBounded(&clientWG, 10*time.Second)
	if stopped {
		// Let the publishers see the cancellation.
		waitBounded(&pubWG, 10*time.Second)
	}

	// Completeness, per client and room.
	for _, c := range clients {
		c.mu.Lock()
		for _, s := range c.subs {
			n := int(s.room.posted.Load())
			if s.next != n && s.room.done.Load() {
				if s.next < n {
					rep.violation("client %d room %s: received %s:0..%d of 0..%d, missing %s:%d..%d (last cursor %q, %d connections, last disconnect: %s)",
						c.n, s.room.label, s.room.label, s.next-1, n-1, s.room.label, s.next, n-1, s.cursor, c.connects, c.lastReason)
				} else {
					rep.violation("client %d room %s: received up to %s:%d but only 0..%d were posted", c.n, s.room.label, s.room.label, s.next-1, n-1)
				}
			}
		}
		c.mu.Unlock()
	}
	// Every replica's read model holds seed + N messages per room: no post
	// was stored twice, whatever the retries. A stopped run has no final
	// count to check.
	countsOK := false
	if !stopped {
		countsOK = checkCounts(ctx, cfg, h, rooms, rep)
	}

	printSummary(cfg, start, pubStart, rooms, clients, rep, stopped, countsOK)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		logf("FAIL: run stopped: %v", cause)
		return 1
	}
	if parent.Err() != nil {
		logf("FAIL: interrupted")
		return 1
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()
	if rep.count > 0 {
		return 1
	}
	return 0
}

func waitBounded(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		logf("warning: goroutines still running %s after they were told to stop", d)
	}
}

func allReceived(clients []*client) bool {
	for _, c := range clients {
		c.mu.Lock()
		for _, s := range c.subs {
			if int64(s.next) != s.room.posted.Load() {
				c.mu.Unlock()
				return false
			}
		}
		c.mu.Unlock()
	}
	return true
}

func postedSummary(rooms []*room) string {
	var b strings.Builder
	total := int64(0)
	for _, r := range rooms {
		total += r.posted.Load()
	}
	fmt.Fprintf(&b, "%d messages posted (", total)
	for i, r := range rooms {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%d", r.label, r.posted.Load())
	}
	b.WriteString(")")
	return b.String()
}

func progress(pubStart time.Time, rooms []*room, clients []*client) {
	connected, reconnects, have, want := 0, 0, 0, 0
	for _, c := range clients {
		c.mu.Lock()
		if c.connected {
			connected++
		}
		reconnects += c.reconnects
		for _, s := range c.subs {
			have += s.next
			want += int(s.room.posted.Load())
		}
		c.mu.Unlock()
	}
	logf("t+%02.0fs %s; deliveries %d/%d; %d/%d clients connected; %d reconnects",
		time.Since(pubStart).Seconds(), postedSummary(rooms), have, want, connected, len(clients), reconnects)
}

// checkCounts asks nginx and every replica for each room's messageCount,
// which must be N+1 (the seed). Replicas that just restarted may still be
// catching up: bounded retries.
func checkCounts(ctx context.Context, cfg config, h *httpClient, rooms []*room, rep *report) bool {
	targets := append([]string{cfg.url}, cfg.direct...)
	ok := true
	for _, base := range targets {
		hc := &httpClient{base: base, c: h.c}
		for _, r := range rooms {
			want := int(r.posted.Load()) + 1
			got, err := -1, error(nil)
			for try := 0; try < 50; try++ {
				got, err = hc.messageCount(ctx, r.id)
				if err == nil && got == want {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if err != nil {
				rep.violation("%s: messageCount of room %s: %v", base, r.label, err)
				ok = false
			} else if got != want {
				rep.violation("%s: room %s has messageCount %d, want %d (%d posted + the seed): a post was stored %s",
					base, r.label, got, want, want-1, map[bool]string{true: "twice", false: "not at all"}[got > want])
				ok = false
			}
		}
	}
	return ok
}

// printSummary reports the run. A stopped run (-deadline, an abort, an
// interrupt) did not check the counts and never passes, whatever it found
// so far: runTest says why it stopped after the summary.
func printSummary(cfg config, start, pubStart time.Time, rooms []*room, clients []*client, rep *report, stopped, countsOK bool) {
	var (
		deliveries, reconnects int
		byKind                 [3]int // deliveries by transport
		closes                 = map[string]int{}
		maxGap                 time.Duration
		maxGapWhere            string
		latencies              []time.Duration
		maxOutage              time.Duration
		maxOutageWhere         string
	)
	subsPerRoom := map[*room]int{}
	for _, c := range clients {
		c.mu.Lock()
		reconnects += c.reconnects
		for k, v := range c.closes {
			closes[k] += v
		}
		if c.maxOutage > maxOutage {
			maxOutage, maxOutageWhere = c.maxOutage, fmt.Sprintf("client %d", c.n)
		}
		for _, s := range c.subs {
			subsPerRoom[s.room]++
			deliveries += s.received
			byKind[c.kind] += s.received
			if s.maxGap > maxGap {
				maxGap, maxGapWhere = s.maxGap, fmt.Sprintf("client %d, room %s, before %s", c.n, s.room.label, s.maxGapBefore)
			}
			latencies = append(latencies, s.latencies...)
		}
		c.mu.Unlock()
	}
	posted := 0
	for _, r := range rooms {
		posted += int(r.posted.Load())
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Round(time.Millisecond)
	}
	rep.mu.Lock()
	defer rep.mu.Unlock()

	logf("---- summary (%s in all, %s since publishing started) ----", time.Since(start).Round(100*time.Millisecond), time.Since(pubStart).Round(100*time.Millisecond))
	logf("events: %d messages posted in %d rooms; %d deliveries to %d clients (%d subscriptions): %d to %d WebSocket clients, %d to %d event-stream clients, %d to %d multipart clients",
		posted, len(rooms), deliveries, len(clients), len(clients)*cfg.roomsPerClient,
		byKind[overWebSocket], cfg.clients, byKind[overSSE], cfg.sseClients, byKind[overMultipart], cfg.multiClients)
	logf("reconnects: %d (%s); longest time a client was without a socket: %s (%s)",
		reconnects, countsString(closes), maxOutage.Round(time.Millisecond), orNone(maxOutageWhere))
	logf("posts: %d needed retries; retried attempts by reason: %s", rep.retriedPosts, countsString(rep.postRetries))
	if rep.slowest > 0 {
		logf("slowest post: %s; its failed attempts: %s", rep.slowest.Round(time.Millisecond), orNone(strings.Join(rep.slowestHistory, "; ")))
	}
	if len(rep.subErrors) > 0 || rep.unexpComplete > 0 {
		logf("subscriptions: transient errors %s; completed by the server unasked: %d", countsString(rep.subErrors), rep.unexpComplete)
	}
	logf("longest delivery gap: %s (%s)", maxGap.Round(time.Millisecond), orNone(maxGapWhere))
	logf("post-to-delivery latency: p50 %s, p99 %s, max %s", pct(0.50), pct(0.99), pct(1))
	for _, r := range rooms {
		n := int(r.posted.Load())
		complete := 0
		for _, c := range clients {
			c.mu.Lock()
			for _, s := range c.subs {
				if s.room == r && s.next == n {
					complete++
				}
			}
			c.mu.Unlock()
		}
		logf("room %s: %d posted; %d/%d subscribers received %s:0..%d exactly once, in order", r.label, n, complete, subsPerRoom[r], r.label, n-1)
	}
	switch {
	case stopped:
		logf("messageCount not checked: the run was stopped")
	case countsOK:
		logf("messageCount = posted + seed in every room, through nginx and on each of %d replicas", len(cfg.direct))
	}
	if rep.count == 0 {
		if !stopped {
			logf("PASS")
		}
		return
	}
	logf("FAIL: %d violations%s:", rep.count, map[bool]string{true: fmt.Sprintf(" (first %d shown)", keepViolations), false: ""}[rep.count > keepViolations])
	for _, v := range rep.violations {
		logf("  - %s", v)
	}
}

func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || (m[keys[i]] == m[keys[j]] && keys[i] < keys[j]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s ×%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
