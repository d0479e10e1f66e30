package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/server"
)

// TestOnLoopbackSpecificAddresses: onLoopback decides whether a
// listener is reachable beyond this host (pprof, embedded NATS, dev mode
// warnings). A specific non-loopback address (a LAN or public IP) is
// beyond loopback, as the wildcards are; any 127/8 address and ::1 are not.
func TestOnLoopbackSpecificAddresses(t *testing.T) {
	for _, tt := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 6060}, false},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 6060}, false},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 6060}, false},
		{&net.TCPAddr{IP: net.ParseIP("0.0.0.0"), Port: 6060}, false},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 6060}, true},
		{&net.TCPAddr{IP: net.ParseIP("::1"), Port: 6060}, true},
		{&net.UnixAddr{Name: "/tmp/x.sock", Net: "unix"}, false},
	} {
		if got := onLoopback(tt.addr); got != tt.want {
			t.Errorf("onLoopback(%s) = %v, want %v: a listener on a specific non-loopback address must be warned about as beyond loopback",
				tt.addr, got, tt.want)
		}
	}
}

// TestFailedStartReleasesEverything: a start that fails after the
// event log was opened (here: the JWK Set URL answers 404) releases the
// HTTP and pprof addresses it bound and closes the embedded NATS server,
// so that the same data directory and addresses start a replica at once.
func TestFailedStartReleasesEverything(t *testing.T) {
	jwks := httptest.NewServer(http.NotFoundHandler())
	defer jwks.Close()
	dir := t.TempDir()
	addr, pprofAddr := freeAddr(t), freeAddr(t)
	cfg, err := parseConfig([]string{"--addr", addr, "--pprof", pprofAddr, "--data-dir", dir,
		"--auth", "jwt", "--jwks-url", jwks.URL + "/jwks"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DrainTimeout = 0
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := startApp(ctx, cfg, logger)
	if err == nil {
		stopTestApp(t, a)
		t.Fatal("started with a JWK Set URL answering 404")
	}
	if !strings.Contains(err.Error(), "set up JWT authentication") {
		t.Fatalf("err = %v, want the JWT set-up's failure", err)
	}
	for _, l := range []struct{ flag, addr string }{{"--addr", addr}, {"--pprof", pprofAddr}} {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			t.Errorf("%s %s still bound after a start that failed past the listen: %v", l.flag, l.addr, err)
			continue
		}
		ln.Close()
	}
	// The embedded NATS server of the failed start must be gone: the data
	// directory is free for a replica started now.
	dev := testConfig(t, dir)
	again, err := startApp(ctx, dev, logger)
	if err != nil {
		t.Fatalf("the data directory of a failed start is still held (its embedded NATS left running): %v", err)
	}
	stopTestApp(t, again)
}

// TestServeFailureIsReported: when serving HTTP fails (the
// listener gone), the app reports it on Err, which run turns into exit
// code 1, rather than staying up deaf.
func TestServeFailureIsReported(t *testing.T) {
	a := startStoppedByTest(t, testConfig(t, t.TempDir()), slog.LevelWarn)
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(stopCtx) // the listener is closed already: Shutdown may say so
	}()
	_ = a.listener.Close()
	select {
	case err := <-a.Err():
		if err == nil || !strings.Contains(err.Error(), "serve HTTP on") {
			t.Fatalf("Err() = %v, want the serving failure", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("HTTP serving failed (listener closed) and Err() reported nothing within 5s: the replica would stay up, serving nothing")
	}
}

// TestStopHonoursShutdownTimeout: a request that stays in flight
// (its body never sent) holds the stop for --shutdown-timeout, no longer:
// Stop then reports it, and the request's connection is closed.
func TestStopHonoursShutdownTimeout(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = 0
	cfg.ShutdownTimeout = 500 * time.Millisecond
	a := startStoppedByTest(t, cfg, slog.LevelError)

	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: 100\r\n\r\n")
	br := bufio.NewReader(conn)
	if interim, err := http.ReadResponse(br, nil); err != nil || interim.StatusCode != http.StatusContinue {
		t.Fatalf("waiting for 100 Continue: %v, %v", interim, err)
	}

	stopped := make(chan error, 1)
	begun := time.Now()
	go func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stopped <- a.Stop(stopCtx)
	}()
	select {
	case err := <-stopped:
		if took := time.Since(begun); took > 5*time.Second {
			t.Errorf("Stop took %s with --shutdown-timeout %s: the in-flight request held it past its timeout", took, cfg.ShutdownTimeout)
		}
		if err == nil || !strings.Contains(err.Error(), "finish in-flight HTTP requests") {
			t.Errorf("Stop = %v, want it to report the request it could not finish", err)
		}
	case <-time.After(16 * time.Second):
		t.Fatal("Stop did not return")
	}
	// The connection of the request cut short is closed, not left to the
	// handler, still running after the stop.
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = br.ReadByte()
	if err == nil || isTimeout(err) {
		t.Errorf("the connection of the request the stop gave up on: read %v; want it closed by the stop", err)
	}
}

// TestStopCutShortByContext: Stop's context ending (a second
// signal, the stop's bound) cuts the drain window short: with a long
// --drain-timeout and nothing open, Stop returns soon after its context
// ends, not at the window's end.
func TestStopCutShortByContext(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = 30 * time.Second
	cfg.ShutdownTimeout = 2 * time.Second
	a := startStoppedByTest(t, cfg, slog.LevelError)
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelStop()
	begun := time.Now()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = a.Stop(stopCtx)
	}()
	select {
	case <-stopped:
	case <-time.After(35 * time.Second):
		t.Fatal("Stop did not return")
	}
	if took := time.Since(begun); took > 8*time.Second {
		t.Errorf("Stop whose context ended after 300ms took %s: the drain window (--drain-timeout %s) was not cut short",
			took.Round(time.Millisecond), cfg.DrainTimeout)
	}
}

var goroutineID = regexp.MustCompile(`^goroutine (\d+) `)

// heraldGoroutines maps the id of each goroutine running Herald's code
// or NATS's to its stack, leaving out those a test started itself.
func heraldGoroutines() map[string]string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	out := map[string]string{}
	for _, g := range strings.Split(b.String(), "\n\n") {
		m := goroutineID.FindStringSubmatch(g)
		if m == nil || strings.Contains(g, "main.Test") {
			continue
		}
		if strings.Contains(g, "heraldhq/herald/") || strings.Contains(g, "main.(*app)") ||
			strings.Contains(g, "nats-server") || strings.Contains(g, "nats.go") {
			out[m[1]] = g
		}
	}
	return out
}

// TestStopLeavesNoGoroutines: after Stop returns, nothing the
// replica started runs on (relay, presence, notices, follower, NATS).
func TestStopLeavesNoGoroutines(t *testing.T) {
	before := heraldGoroutines()
	cfg := testConfig(t, t.TempDir())
	a := startStoppedByTest(t, cfg, slog.LevelError)
	createRoom(t, a.Addr(), "alice", "goroutines")
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelStop()
	if err := a.Stop(stopCtx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	var left []string
	for deadline := time.Now().Add(3 * time.Second); ; {
		left = left[:0]
		for id, g := range heraldGoroutines() {
			if _, ok := before[id]; !ok {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("%d goroutines of the replica still run after Stop returned:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

// TestHealthcheckBoundedWait: `herald healthcheck` against a
// replica that accepts but never answers (hung) exits 1 within its
// timeout, so that the container's HEALTHCHECK does not hang.
func TestHealthcheckBoundedWait(t *testing.T) {
	addr, _ := silentServer(t)
	result := make(chan int, 1)
	var stderr strings.Builder
	begun := time.Now()
	go func() { result <- run([]string{"healthcheck", "--addr", addr}, noEnv, &stderr) }()
	select {
	case code := <-result:
		if code != 1 {
			t.Errorf("healthcheck of a hung replica: exit %d, want 1", code)
		}
		if took := time.Since(begun); took > healthcheckTimeout+2*time.Second {
			t.Errorf("healthcheck took %s, beyond its timeout %s", took, healthcheckTimeout)
		}
	case <-time.After(healthcheckTimeout + 5*time.Second):
		t.Fatalf("healthcheck of a replica that never answers still waiting after %s: it must give up at %s",
			healthcheckTimeout+5*time.Second, healthcheckTimeout)
	}
}

// TestHealthcheckHelp: `herald healthcheck -h` prints the flags and
// exits 0, as `herald -h` does.
func TestHealthcheckHelp(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"healthcheck", "-h"}, noEnv, &out); code != 0 {
		t.Fatalf("herald healthcheck -h: exit %d, want 0", code)
	}
	if !strings.Contains(out.String(), "-addr") {
		t.Errorf("herald healthcheck -h printed no flags: %q", out.String())
	}
}

// TestNATSRelayRoundTrip: the relay over NATS carries a request's
// headers and body to the stream's holder and its answer's headers and
// body back; a holder that does not answer within the sender's context is
// an error, never an empty answer.
func TestNATSRelayRoundTrip(t *testing.T) {
	a := startTestApp(t, testConfig(t, t.TempDir()))
	relay := natsRelay{a.relay}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan server.RelayMessage, 1)
	stop, err := relay.Listen("DDDDDDDDDDDDDDDDDDDDDD", func(_ context.Context, m server.RelayMessage) server.RelayMessage {
		got <- m
		return server.RelayMessage{Header: http.Header{"X-Answer": {"pong-header"}}, Body: []byte("pong")}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	answer, err := relay.Send(ctx, "DDDDDDDDDDDDDDDDDDDDDD", server.RelayMessage{Header: http.Header{"X-Ask": {"ping-header"}}, Body: []byte("ping")})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	select {
	case m := <-got:
		if m.Header.Get("X-Ask") != "ping-header" || string(m.Body) != "ping" {
			t.Errorf("the holder got header %v body %q; want X-Ask: ping-header and body ping", m.Header, m.Body)
		}
	default:
		t.Error("the holder's handler was not called")
	}
	if answer.Header.Get("X-Answer") != "pong-header" || string(answer.Body) != "pong" {
		t.Errorf("the sender got header %v body %q; want X-Answer: pong-header and body pong", answer.Header, answer.Body)
	}

	release := make(chan struct{})
	defer close(release)
	stopSlow, err := relay.Listen("EEEEEEEEEEEEEEEEEEEEEE", func(ctx context.Context, _ server.RelayMessage) server.RelayMessage {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return server.RelayMessage{Header: http.Header{}}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stopSlow()
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if m, err := relay.Send(short, "EEEEEEEEEEEEEEEEEEEEEE", server.RelayMessage{Header: http.Header{}}); err == nil {
		t.Errorf("Send to a holder that did not answer within the context: %+v, nil error; want an error", m)
	}
}

// TestGetQueryStringWithLargeHeaders: a GET whose query string is
// just within --max-body-bytes is served even with several KiB of other
// headers (a bearer token, cookies): the HTTP server's header bound leaves
// an allowance beyond the query string (headerAllowance), not only
// net/http's 4 KiB of slack.
func TestGetQueryStringWithLargeHeaders(t *testing.T) {
	const maxBody = 1 << 20
	cfg := testConfig(t, t.TempDir())
	cfg.MaxBodyBytes = maxBody
	a := startTestApp(t, cfg)
	prefix := "query=" + url.QueryEscape("{rooms{totalCount}}#")
	target := "http://" + a.Addr() + "/graphql?" + prefix + strings.Repeat("x", maxBody-len(prefix)-64)
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Cookie", "session="+strings.Repeat("c", 16<<10))
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET with a query string within --max-body-bytes (%d) and a 16 KiB cookie: %d %q; want 200 (the header bound must leave room beyond the query string)",
			maxBody, resp.StatusCode, body)
	}
}

// TestStopReportsEventLogNotClosed: a stop whose NATS connection
// cannot be drained (the server hangs) reports it, so that run exits 1
// (an unclean shutdown), not 0 as if every write had been flushed.
func TestStopReportsEventLogNotClosed(t *testing.T) {
	nats := newExternalNATS(t)
	proxy := newFreezingProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(nats.port)))
	cfg := testConfig(t, t.TempDir())
	cfg.NATSURLs = []string{"nats://" + proxy.addr()}
	cfg.ShutdownTimeout = time.Second
	a := startStoppedByTest(t, cfg, slog.LevelError)
	proxy.freeze()
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancelStop()
	err := a.Stop(stopCtx)
	if err == nil || !strings.Contains(err.Error(), "close the event log") {
		t.Fatalf("Stop with NATS hung = %v; want it to report that the event log was not closed cleanly", err)
	}
}

// TestDrainGivesSocketsShutdownTimeout: sockets closed at the end
// of --drain-timeout get --shutdown-timeout more for their close
// handshakes: a client slow to answer its close frame (here: never, so
// the server gives up on it after its close grace of about a second) is
// not dropped as if the stop had been cut short, and the stop is clean.
func TestDrainGivesSocketsShutdownTimeout(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = 200 * time.Millisecond
	cfg.ShutdownTimeout = 4 * time.Second
	a := startStoppedByTest(t, cfg, slog.LevelError)
	conn := dialTransportWS(t, a.Addr())
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := conn.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"user": "alice"}}); err != nil {
		t.Fatal(err)
	}
	var ack struct{ Type string }
	if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_init: %+v, %v", ack, err)
	}
	// From here the client reads nothing: it never answers the close.
	stopCtx, cancelStop := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelStop()
	begun := time.Now()
	if err := a.Stop(stopCtx); err != nil {
		t.Fatalf("Stop after %s with a socket slow to close (--drain-timeout %s, --shutdown-timeout %s): %v; want a clean stop, the socket given --shutdown-timeout beyond the drain window",
			time.Since(begun).Round(time.Millisecond), cfg.DrainTimeout, cfg.ShutdownTimeout, err)
	}
}

// addrListener is a loopback listener that reports another address, so
// that the warning about a pprof listener beyond loopback can be checked
// without binding beyond loopback.
type addrListener struct {
	net.Listener
	addr net.Addr
}

func (l addrListener) Addr() net.Addr { return l.addr }

// TestPprofBeyondLoopbackIsWarned: --pprof on loopback is logged
// at INFO; beyond loopback it is a security warning (profiles show what
// the process holds in memory).
func TestPprofBeyondLoopbackIsWarned(t *testing.T) {
	for _, tt := range []struct {
		name string
		addr net.Addr // nil: the listener's own
		warn bool
	}{
		{"loopback", nil, false},
		{"a LAN address", &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 6060}, true},
		{"every interface", &net.TCPAddr{IP: net.IPv4zero, Port: 6060}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var ln net.Listener = l
			if tt.addr != nil {
				ln = addrListener{l, tt.addr}
			}
			var logs strings.Builder
			a := &app{logger: slog.New(slog.NewTextHandler(&logs, nil))}
			a.startPprof(ln)
			_ = a.pprof.Close()
			a.wg.Wait()
			warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "pprof is served beyond loopback")
			if warned != tt.warn {
				t.Errorf("pprof on %s: warned %v, want %v; logs:\n%s", ln.Addr(), warned, tt.warn, logs.String())
			}
		})
	}
}

// startStoppedByTest starts a replica logging at level and waits until it
// is ready, for a test that stops it itself.
func startStoppedByTest(t *testing.T, cfg config, level slog.Level) *app {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
	a, err := startApp(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("start herald: %v", err)
	}
	waitReady(t, a)
	return a
}
