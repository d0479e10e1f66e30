package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph"
	"github.com/heraldhq/herald/pubsub"
	"github.com/heraldhq/herald/server"
)

// startHerald runs a whole Herald stack in-process (embedded NATS in a
// temp dir, the chat service, the real schema, the server with dev auth)
// on an httptest listener and returns its GraphQL URL.
func startHerald(t *testing.T, tweak func(*server.Options)) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	log, err := pubsub.Open(ctx, pubsub.Options{
		DataDir: t.TempDir(),
		Logger:  quiet,
	})
	if err != nil {
		t.Fatalf("open event log: %v", err)
	}
	svc := chat.NewService(log, chat.Options{})
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = svc.Run(runCtx)
	}()
	opts := server.Options{
		Schema:          graph.NewSchema(svc, log.Epoch(), nil),
		Authenticator:   auth.Dev{},
		Readiness:       func(context.Context) []server.Check { return nil },
		ViewerDirective: graph.ViewerDirective,
		ResumeArgument:  graph.ResumeArgument,
		Logger:          quiet,
	}
	if tweak != nil {
		tweak(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		hs.Close()
		stop()
		<-ran
		if err := log.Close(); err != nil {
			t.Errorf("close event log: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for ok, _ := svc.Ready(); !ok; ok, _ = svc.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("read model did not catch up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return hs.URL + "/graphql"
}

// TestSmoke publishes 100 events to 300 subscribers over both protocols,
// bound to several loopback source addresses, and expects every delivery
// exactly once and in order.
func TestSmoke(t *testing.T) {
	url := startHerald(t, nil)
	ips, err := parseSources("127.0.0.1-127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep, err := Run(ctx, Config{
		URL:             url,
		Protocol:        "both",
		Connections:     300,
		SubsPerConn:     2,
		Rooms:           4,
		Sources:         ips,
		Events:          100,
		Inflight:        4,
		ServerPID:       os.Getpid(), // the server is in-process: exercises the /proc readings
		RequireZeroLoss: true,
		SetupTimeout:    30 * time.Second,
		DrainTimeout:    15 * time.Second,
		Progress:        &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	var summary bytes.Buffer
	writeSummary(&summary, rep)
	t.Logf("progress:\n%s\nsummary:\n%s", progress.String(), summary.String())
	if !rep.Pass || rep.Setup.Failed {
		t.Fatalf("run failed: %v", rep.Failures)
	}
	s := rep.Setup
	if s.ConnectionsEstablished != 300 || s.ByProtocol[protoTransport] != 150 || s.ByProtocol[protoLegacy] != 150 {
		t.Errorf("connections: %+v", s)
	}
	if s.Subscriptions != 600 || s.SubscriptionsLive != 600 || s.ConnectionsOpenAtEnd != 300 || s.RoomsCreated != 4 {
		t.Errorf("setup: %+v", s)
	}
	p := rep.Publish
	if p == nil || p.Sent != 100 || p.Acked != 100 || p.Failed != 0 {
		t.Fatalf("publish: %+v", p)
	}
	d := rep.Delivery
	// 600 subscriptions over 4 rooms = 150 per room; 25 events per room.
	if d.Expected != 600*25 || d.Received != d.Expected || !d.DrainComplete {
		t.Errorf("delivery: %+v", d)
	}
	if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Misrouted != 0 || d.Unacked != 0 || d.Foreign != 0 || len(rep.Subscribers) != 0 {
		t.Errorf("anomalies: %+v, %d subscribers", d, len(rep.Subscribers))
	}
	if d.PerSecond <= 0 || d.WindowSec <= 0 {
		t.Errorf("rate: %+v", d)
	}
	l := rep.Latency
	if l.Count != uint64(d.Received) || l.P50Ms <= 0 || l.P50Ms > l.P90Ms || l.P90Ms > l.P99Ms || l.P99Ms > l.MaxMs || l.MaxMs > 20000 {
		t.Errorf("latency: %+v", l)
	}
	if len(rep.Errors) != 0 {
		t.Errorf("errors: %v %v", rep.Errors, rep.ErrorSample)
	}
	// Every socket was closed by us with 1000 and the server echoed it.
	if rep.CloseCodes["1000"] != 300 || len(rep.CloseCodes) != 1 {
		t.Errorf("close codes: %v", rep.CloseCodes)
	}
	if rep.KeepAlives < 150 { // legacy sockets get ka right after the ack
		t.Errorf("keepalives: %d", rep.KeepAlives)
	}
	if sv := rep.Server; sv == nil || sv.RSSBeforeKB <= 0 || sv.RSSAfterRunKB <= 0 || sv.PublishCPUSec < 0 {
		t.Errorf("server: %+v", sv)
	}
	if rep.Self.CPUSecTotal <= 0 {
		t.Errorf("self: %+v", rep.Self)
	}
	// Every phase of a publish run is timed (the drain may end at once),
	// within the run's total; an idle run's phase is not.
	ph := rep.Phases
	if ph.CreateRooms <= 0 || ph.Connect <= 0 || ph.Live <= 0 || ph.Publish <= 0 || ph.Drain < 0 || ph.Close <= 0 || ph.Idle != 0 ||
		ph.Total < ph.CreateRooms+ph.Connect+ph.Live+ph.Publish+ph.Drain+ph.Close {
		t.Errorf("phases: %+v", ph)
	}
	// The report is JSON-encodable with the documented keys.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"p99_ms"`, `"per_sec"`, `"rss_per_conn_kb"`, `"cpu_sec_per_1000_deliveries"`, `"close_codes"`, `"subscribers_with_anomalies":[]`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
}

// TestIdleAndPings holds connections idle under a short ping interval
// and expects every transport ping answered and nobody closed as dead;
// it also drives the command line (flags, summary, --json).
func TestIdleAndPings(t *testing.T) {
	url := startHerald(t, func(o *server.Options) {
		o.PingInterval = 200 * time.Millisecond
		o.PongTimeout = 300 * time.Millisecond
	})
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	var stdout, stderr bytes.Buffer
	code := cli([]string{"--url", url, "--connections", "20", "--rooms", "3", "--idle", "1500ms",
		"--sources", "127.0.0.1,127.0.0.2", "--server-pid", "0", "--json", jsonPath}, &stdout, &stderr)
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	var rep Report
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "idle" || rep.Idle == nil || rep.Idle.DurationSec < 1.4 || rep.Publish != nil || rep.Delivery != nil {
		t.Errorf("report: %+v", rep)
	}
	if ph := rep.Phases; ph.Idle < 1.4 || ph.Publish != 0 || ph.Drain != 0 || ph.Connect <= 0 || ph.Close <= 0 || ph.Total < ph.Idle {
		t.Errorf("phases: %+v", ph)
	}
	// 10 transport sockets pinged about every 200 ms for 1.5 s; the
	// legacy ones get ka frames.
	if rep.PingsAnswered < 30 || rep.KeepAlives < 30 {
		t.Errorf("pings answered %d, ka %d", rep.PingsAnswered, rep.KeepAlives)
	}
	if rep.Setup.ConnectionsOpenAtEnd != 20 || rep.CloseCodes["1000"] != 20 || len(rep.Errors) != 0 {
		t.Errorf("setup %+v, close codes %v, errors %v", rep.Setup, rep.CloseCodes, rep.ErrorSample)
	}

	// Bad flags exit 2.
	if code := cli([]string{"--url", url, "--protocol", "nope"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad protocol: exit %d", code)
	}
}

// TestSetupFailure: a server that is not there fails setup (exit 3).
func TestSetupFailure(t *testing.T) {
	hs := httptest.NewServer(nil)
	url := hs.URL + "/graphql"
	hs.Close()
	code := cli([]string{"--url", url, "--connections", "2", "--events", "1", "--setup-timeout", "3s", "--quiet"}, io.Discard, io.Discard)
	if code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
}

// TestSmokeStreams publishes 60 events to 150 subscribers on HTTP streams
// of each kind, bound to several loopback source addresses, and expects
// every delivery exactly once and in order, and the streams closed
// quietly at the end.
func TestSmokeStreams(t *testing.T) {
	url := startHerald(t, nil)
	ips, err := parseSources("127.0.0.1-127.0.0.3")
	if err != nil {
		t.Fatal(err)
	}
	for _, transport := range []string{transportSSE, transportMultipart} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rep, err := Run(ctx, Config{
				URL:             url,
				Transport:       transport,
				Connections:     150,
				Rooms:           3,
				Sources:         ips,
				Events:          60,
				Inflight:        3,
				ServerPID:       os.Getpid(),
				RequireZeroLoss: true,
				SetupTimeout:    30 * time.Second,
				DrainTimeout:    15 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			var summary bytes.Buffer
			writeSummary(&summary, rep)
			t.Logf("summary:\n%s", summary.String())
			if !rep.Pass || rep.Setup.Failed {
				t.Fatalf("run failed: %v", rep.Failures)
			}
			s := rep.Setup
			if s.ConnectionsEstablished != 150 || s.ByProtocol[transport] != 150 || s.SubscriptionsLive != 150 || s.ConnectionsOpenAtEnd != 150 {
				t.Errorf("setup: %+v", s)
			}
			if rep.Config.Transport != transport || rep.Config.Protocol != transport {
				t.Errorf("config report: %+v", rep.Config)
			}
			// 50 subscribers per room, 20 events per room.
			d := rep.Delivery
			if d.Expected != 150*20 || d.Received != d.Expected || !d.DrainComplete {
				t.Errorf("delivery: %+v", d)
			}
			if d.Lost != 0 || d.Duplicated != 0 || d.Reordered != 0 || d.Misrouted != 0 || d.Foreign != 0 || len(rep.Subscribers) != 0 {
				t.Errorf("anomalies: %+v, %d subscribers", d, len(rep.Subscribers))
			}
			if l := rep.Latency; l.Count != uint64(d.Received) || l.P50Ms <= 0 || l.P99Ms > l.MaxMs {
				t.Errorf("latency: %+v", l)
			}
			if len(rep.Errors) != 0 || len(rep.CloseCodes) != 0 {
				t.Errorf("errors %v %v, close codes %v", rep.Errors, rep.ErrorSample, rep.CloseCodes)
			}
		})
	}
}

// TestIdleStreams holds streams idle under a short keepalive interval
// through the command line and expects the keepalives counted and every
// stream open to the end; a stream refused by the server fails setup.
func TestIdleStreams(t *testing.T) {
	for _, transport := range []string{transportSSE, transportMultipart} {
		t.Run(transport, func(t *testing.T) {
			// A server of its own: one that has not yet seen the other
			// transport's streams go could refuse these.
			url := startHerald(t, func(o *server.Options) {
				o.PingInterval = 200 * time.Millisecond
				o.Limits.MaxConnections = 30
			})
			jsonPath := filepath.Join(t.TempDir(), "report.json")
			var stdout, stderr bytes.Buffer
			code := cli([]string{"--url", url, "--transport", transport, "--connections", "20", "--rooms", "3", "--idle", "1s",
				"--sources", "127.0.0.1,127.0.0.2", "--json", jsonPath}, &stdout, &stderr)
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			if code != 0 {
				t.Fatalf("exit code %d", code)
			}
			var rep Report
			b, err := os.ReadFile(jsonPath)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			// 20 streams, a keepalive about every 200 ms for 1 s.
			if rep.Mode != "idle" || rep.KeepAlives < 60 || rep.Setup.ConnectionsOpenAtEnd != 20 || len(rep.Errors) != 0 {
				t.Errorf("mode %s, keepalives %d, setup %+v, errors %v", rep.Mode, rep.KeepAlives, rep.Setup, rep.ErrorSample)
			}

			// Over the server's limit of 30 streams: setup fails (exit 3),
			// and the refusal is reported.
			stdout.Reset()
			code = cli([]string{"--url", url, "--transport", transport, "--connections", "40", "--rooms", "1", "--idle", "1s",
				"--setup-timeout", "10s"}, &stdout, io.Discard)
			if code != 3 || !strings.Contains(stdout.String(), "HTTP 503") {
				t.Errorf("over the limit: exit %d, summary:\n%s", code, stdout.String())
			}
		})
	}
	if code := cli([]string{"--transport", "sse", "--subs", "2"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("two subscriptions on a stream: exit %d, want 2", code)
	}
}
