// Command loadgen drives a Herald server with WebSocket (or HTTP stream)
// subscribers and HTTP publishers and reports deliveries/s, latency,
// loss/duplication/reordering and, given --server-pid, the server's memory
// and CPU.
//
// A run: create --rooms rooms (HTTP createRoom), or take the existing
// rooms listed in --room-ids; open --connections WebSockets (both
// subprotocols with --protocol both, bound round-robin to the --sources
// addresses), each with --subs subscriptions to the rooms round-robin
// (with --transport sse or multipart, --connections HTTP streams instead,
// each a POST carrying one subscription, bound to the sources alike);
// post probe messages until every subscription has seen one (so all are
// live; probes are not counted); then either publish --events
// messages (round-robin over rooms, at --rate per second or as fast as
// --inflight allows) and wait for every delivery, or, with --idle, only
// hold the connections, answering pings. Each message's text is
// lg|<room index>|<per-room seq>|<send unix nanos>, from which every
// subscriber's latency, losses, duplicates and reorderings are computed.
// With --transport centrifugo the server is Centrifugo (issue 14): --url is
// its base URL, each connection a WebSocket at /connection/websocket
// speaking its JSON client protocol, each room a channel (nothing is
// created), each post a publication through its HTTP API (/api/publish)
// whose data is {"text": <the same text>}.
// --publish-url sends the posts to another replica than the one the
// WebSockets are on (rooms are created at --url); --started-file tells other tools (bench/seed
// rate's --wait-file) when the publish or idle phase starts.
//
// Scale: each WebSocket (or stream) is one file descriptor, so one process
// holds up to about 19,000 connections under a 20,000 open-file limit (Go
// raises the soft limit to the hard one at start). Readers use one
// goroutine per connection and 1 KiB read/write buffers (a stream: two
// 4 KiB read buffers, one for the HTTP framing and one for its lines). Beyond one process, run several
// loadgens with distinct --room-prefix and --user-prefix and add up their
// JSON reports (each process publishes to and measures its own rooms).
//
// CPU: the server's utime+stime come from /proc/<pid>/stat in clock ticks;
// the tick rate is read from the auxiliary vector (AT_CLKTCK), assuming
// 100 if that fails. Own CPU comes from getrusage.
//
// Exit status: 0 pass; 1 deliveries lost, duplicated, reordered or
// misrouted (a result on a subscription id or channel never subscribed
// counts as misrouted; so does a sequence number above --events),
// results that are not the load generator's (foreign, among them a text
// marked "lg|" that does not parse), a drain not complete within --drain-timeout, or publishes
// failed (with --require-zero-loss, the default), or, whatever that flag
// says, a frame from the server that is not valid JSON (a delivery cut
// short counts as a bad frame, never as a delivery), a connection or
// stream the server ended, or a subscription it completed or failed on a
// connection it kept open, before the run's end (in idle runs too), or a
// failed reading of --server-pid (its CPU and RSS are then null in the
// JSON, not 0); 2 bad flags; 3 setup failed (a connection, subscription
// or room could not be set up in time).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var sources, rate, jsonPath, roomIDs string
	var quiet bool
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/graphql", "Herald's GraphQL endpoint (WebSockets use the same URL with ws://)")
	fs.StringVar(&cfg.Transport, "transport", transportWS, "how subscribers subscribe: ws (WebSockets), sse (graphql-sse event streams), multipart (Apollo's multipart subscriptions) or centrifugo (a Centrifugo server's JSON protocol on WebSockets; --url is then its base URL, e.g. http://127.0.0.1:8000); each HTTP stream is one POST carrying one subscription")
	fs.StringVar(&cfg.Protocol, "protocol", "both", "WebSocket subprotocol: transport (graphql-transport-ws), legacy (graphql-ws) or both (alternating)")
	fs.IntVar(&cfg.Connections, "connections", 100, "WebSocket connections (or HTTP streams)")
	fs.IntVar(&cfg.SubsPerConn, "subs", 1, "subscriptions per WebSocket (an HTTP stream carries one)")
	fs.IntVar(&cfg.Rooms, "rooms", 10, "rooms, created at start; subscriptions and events go round-robin over them")
	fs.StringVar(&roomIDs, "room-ids", "", "file of existing room ids, one a line, to use instead of creating rooms (--rooms is then their number)")
	fs.StringVar(&cfg.PublishURL, "publish-url", "", "send the posts (probes, events) here instead of --url, e.g. another replica; rooms are still created at --url (default --url)")
	fs.StringVar(&cfg.StartedFile, "started-file", "", "create this file when every subscription is live and publishing (or idling) starts")
	fs.StringVar(&cfg.RoomPrefix, "room-prefix", "", "room name prefix (default lg-<base36 time>; names must be new on the server)")
	fs.StringVar(&sources, "sources", "", "local source addresses, round-robin: a range 127.0.0.1-127.0.0.8 or a comma list (default: kernel's choice)")
	fs.StringVar(&cfg.Query, "query", DefaultQuery, "subscription document; takes $r: ID! (the room) and must select the message text")
	fs.IntVar(&cfg.Events, "events", 1000, "messages to publish (ignored with --idle)")
	fs.StringVar(&rate, "rate", "0", "publish rate, events per second (N or N/s); 0 = as fast as --inflight allows")
	fs.IntVar(&cfg.Inflight, "inflight", 8, "publish requests in flight at most (and at most one per room)")
	fs.DurationVar(&cfg.Idle, "idle", 0, "idle mode: hold the subscribed connections this long, publish nothing")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "Herald's PID, to report its RSS and CPU from /proc")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "lg", "connection users are <prefix><i>; the publisher is <prefix>-publisher")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 64, "connections being set up at once")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", 2*time.Minute, "bound on creating rooms, connecting, subscribing and waiting for live subscriptions")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", 15*time.Second, "bound on one connection's dial, upgrade and connection_ack")
	fs.DurationVar(&cfg.PublishTimeout, "publish-timeout", 0, "bound on publishing the events (0: 5m, plus events/rate when paced)")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", 15*time.Second, "after the last publish, how long to wait for outstanding deliveries")
	fs.DurationVar(&cfg.Settle, "settle", 300*time.Millisecond, "after the drain, how long to keep listening for late duplicates")
	fs.BoolVar(&cfg.RequireZeroLoss, "require-zero-loss", true, "fail (exit 1) on any lost, duplicated, reordered, misrouted or foreign delivery, an incomplete drain or a failed publish")
	fs.StringVar(&jsonPath, "json", "", "write the full report as JSON to this file")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "loadgen: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var err error
	if cfg.Sources, err = parseSources(sources); err != nil {
		fmt.Fprintf(stderr, "loadgen: --sources: %v\n", err)
		return 2
	}
	if cfg.Rate, err = parseRate(rate); err != nil {
		fmt.Fprintf(stderr, "loadgen: --rate: %v\n", err)
		return 2
	}
	if roomIDs != "" {
		if cfg.RoomIDs, err = readRoomIDs(roomIDs); err != nil {
			fmt.Fprintf(stderr, "loadgen: --room-ids: %v\n", err)
			return 2
		}
		roomsGiven := false
		fs.Visit(func(f *flag.Flag) { roomsGiven = roomsGiven || f.Name == "rooms" })
		if roomsGiven && cfg.Rooms != len(cfg.RoomIDs) {
			fmt.Fprintf(stderr, "loadgen: --rooms %d but %s holds %d room ids\n", cfg.Rooms, roomIDs, len(cfg.RoomIDs))
			return 2
		}
		cfg.Rooms = len(cfg.RoomIDs)
	}
	if !quiet {
		cfg.Progress = stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "loadgen: %v\n", err)
		return 2
	}
	writeSummary(stdout, rep)
	if jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "loadgen: --json: %v\n", err)
			return 1
		}
	}
	switch {
	case rep.Setup.Failed:
		return 3
	case !rep.Pass:
		return 1
	}
	return 0
}

// readRoomIDs reads room ids, one a line; blank lines and lines starting
// with # are skipped.
func readRoomIDs(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ids []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			ids = append(ids, line)
		}
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s holds no room id", path)
	}
	return ids, nil
}

// parseSources parses "a-b" (an IPv4 range) or "a,b,c".
func parseSources(s string) ([]net.IP, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok && !strings.Contains(s, ",") {
		a, b := net.ParseIP(strings.TrimSpace(lo)).To4(), net.ParseIP(strings.TrimSpace(hi)).To4()
		if a == nil || b == nil {
			return nil, fmt.Errorf("%q: want an IPv4 range like 127.0.0.1-127.0.0.8", s)
		}
		x, y := ipv4Int(a), ipv4Int(b)
		if y < x || y-x >= 1<<16 {
			return nil, fmt.Errorf("%q: empty or too large range", s)
		}
		var out []net.IP
		for v := x; v <= y; v++ {
			out = append(out, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4())
		}
		return out, nil
	}
	var out []net.IP
	for part := range strings.SplitSeq(s, ",") {
		ip := net.ParseIP(strings.TrimSpace(part))
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP address", part)
		}
		out = append(out, ip)
	}
	return out, nil
}

func ipv4Int(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}

func parseRate(s string) (float64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want events per second, e.g. 500 or 500/s", s)
	}
	return v, nil
}

func writeSummary(w io.Writer, r *Report) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	c := r.Config
	p("loadgen %s (%s mode): %d %s (%s) x %d subs, %d rooms", verdict, r.Mode, c.Connections, connectionsOf(c.Transport), c.Protocol, c.SubsPerConn, c.Rooms)
	rooms := fmt.Sprintf("%d rooms", r.Setup.RoomsCreated)
	switch {
	case c.RoomIDs > 0:
		rooms = fmt.Sprintf("%d rooms given", c.RoomIDs)
	case c.Transport == transportCentrifugo:
		rooms = fmt.Sprintf("%d channels (nothing to create)", c.Rooms)
	}
	p("  setup:       %s; %d/%d connections established %v, %d failed; %d/%d subscriptions live (%d probes); %d open at end, %d ended by the server; %d subscriptions ended by the server",
		rooms, r.Setup.ConnectionsEstablished, c.Connections, r.Setup.ByProtocol, r.Setup.ConnectionsFailed,
		r.Setup.SubscriptionsLive, r.Setup.Subscriptions, r.Setup.ProbesPosted, r.Setup.ConnectionsOpenAtEnd, r.Setup.ConnectionsClosedByServer,
		r.Setup.SubscriptionsEndedByServer)
	p("  phases (s):  rooms %.2f, connect %.2f, live %.2f, publish %.2f, drain %.2f, idle %.2f, close %.2f, total %.2f",
		r.Phases.CreateRooms, r.Phases.Connect, r.Phases.Live, r.Phases.Publish, r.Phases.Drain, r.Phases.Idle, r.Phases.Close, r.Phases.Total)
	if pr := r.Publish; pr != nil {
		p("  publish:     %d sent, %d acked, %d failed in %.2fs (%.0f/s); HTTP p50 %.2f ms, p99 %.2f ms, max %.2f ms",
			pr.Sent, pr.Acked, pr.Failed, pr.DurationSec, pr.RatePerSec, pr.HTTPLatency.P50Ms, pr.HTTPLatency.P99Ms, pr.HTTPLatency.MaxMs)
	}
	if d := r.Delivery; d != nil {
		p("  deliveries:  %d/%d in %.2fs = %.0f/s (drain complete: %v)", d.Received, d.Expected, d.WindowSec, d.PerSecond, d.DrainComplete)
		p("  anomalies:   lost %d, duplicated %d, reordered %d, misrouted %d, unacked-but-delivered %d, foreign %d, bad frames %d; %d subscribers affected",
			d.Lost, d.Duplicated, d.Reordered, d.Misrouted, d.Unacked, d.Foreign, d.BadFrames, len(r.Subscribers))
		for i, s := range r.Subscribers {
			if i == 10 {
				p("               ... %d more in the JSON report", len(r.Subscribers)-10)
				break
			}
			p("               conn %d sub %d (%s, room %d): received %d, lost %d, dup %d, reordered %d, misrouted %d",
				s.Conn, s.Sub, s.Protocol, s.Room, s.Received, s.Lost, s.Duplicated, s.Reordered, s.Misrouted)
		}
	}
	if l := r.Latency; l != nil {
		p("  latency:     p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms (mean %.2f, n %d)",
			l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs, l.MeanMs, l.Count)
	}
	if i := r.Idle; i != nil {
		switch {
		case r.Server == nil:
			p("  idle:        %.1fs (no --server-pid: server CPU not measured); own CPU %.3fs", i.DurationSec, i.SelfCPUSec)
		case i.ServerCPUSec == nil || i.ServerCPUUsPerConnPerSec == nil:
			p("  idle:        %.1fs (the server could not be read: server CPU not measured); own CPU %.3fs", i.DurationSec, i.SelfCPUSec)
		default:
			p("  idle:        %.1fs; server CPU %.3fs = %.2f µs per connection per second; own CPU %.3fs",
				i.DurationSec, *i.ServerCPUSec, *i.ServerCPUUsPerConnPerSec, i.SelfCPUSec)
		}
	}
	if s := r.Server; s != nil {
		p("  server %d:  RSS %d kB before, %d kB connected, %d kB after (%.1f kB per connection)",
			s.PID, s.RSSBeforeKB, s.RSSAfterConnectKB, s.RSSAfterRunKB, s.RSSPerConnKB)
		if r.Delivery != nil {
			p("               CPU %.3fs during publish = %.4fs per 1,000 deliveries; %.3fs over the whole run",
				s.PublishCPUSec, s.CPUSecPer1000Delivered, s.CPUSecTotalRun)
		}
	}
	p("  loadgen:     CPU %.3fs total, %.3fs setup, %.3fs publish (%.4fs per 1,000 deliveries); peak RSS %d kB",
		r.Self.CPUSecTotal, r.Self.CPUSecSetup, r.Self.CPUSecPublish, r.Self.CPUSecPer1000Delivered, r.Self.MaxRSSKB)
	p("  keepalive:   %d pings answered, %d ka received (on streams: comments, heartbeats)", r.PingsAnswered, r.KeepAlives)
	cc := make([]string, 0, len(r.CloseCodes))
	for _, k := range sortedKeys(r.CloseCodes) {
		cc = append(cc, fmt.Sprintf("%s x%d", k, r.CloseCodes[k]))
	}
	p("  close codes: %s", orNone(strings.Join(cc, ", ")))
	es := make([]string, 0, len(r.Errors))
	for _, k := range sortedKeys(r.Errors) {
		es = append(es, fmt.Sprintf("%s x%d", k, r.Errors[k]))
	}
	p("  errors:      %s", orNone(strings.Join(es, ", ")))
	for _, e := range r.ErrorSample {
		p("               %s", e)
	}
	for _, f := range r.Failures {
		p("  FAILURE:     %s", f)
	}
}

// connectionsOf names what a transport's subscribers hold open.
func connectionsOf(transport string) string {
	if transport == transportSSE || transport == transportMultipart {
		return "streams"
	}
	return "connections"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
