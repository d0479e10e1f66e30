//go:build centrifugo

package main

// The load generator against a real Centrifugo, built by bench/run from
// the version it pins. It needs that binary, so it is kept out of
// `go test ./...` by the build tag:
//
//	CENTRIFUGO_BIN=/path/to/centrifugo go test -tags centrifugo -run RealCentrifugo ./bench/loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startCentrifugo runs $CENTRIFUGO_BIN with bench/centrifugo/config.json
// on a free loopback port, its clients pinged every pingInterval (and
// closed without a pong within pongTimeout), and returns its base URL and
// PID; the process is stopped at cleanup.
func startCentrifugo(t *testing.T, pingInterval, pongTimeout string) (string, int) {
	t.Helper()
	bin := os.Getenv("CENTRIFUGO_BIN")
	if bin == "" {
		t.Fatal("CENTRIFUGO_BIN is not set: the centrifugo build tag needs a Centrifugo binary (bench/run builds one)")
	}
	config, err := filepath.Abs("../../bench/centrifugo/config.json")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config", config, "--http_server.address", "127.0.0.1",
		"--http_server.port", fmt.Sprint(port), "--log.level", "warn")
	// Centrifugo reads every CENTRIFUGO_ variable as configuration.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CENTRIFUGO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "CENTRIFUGO_CLIENT_PING_INTERVAL="+pingInterval, "CENTRIFUGO_CLIENT_PONG_TIMEOUT="+pongTimeout)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		t.Logf("centrifugo's log:\n%s", logs.String())
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(15 * time.Second); ; {
		resp, err := (&http.Client{Timeout: time.Second}).Get(base + "/")
		if err == nil {
			resp.Body.Close()
			return base, cmd.Process.Pid
		}
		select {
		case <-exited:
			t.Fatalf("centrifugo exited: %v", waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("centrifugo did not answer within 15 s")
		}
	}
}

// TestRealCentrifugo publishes 100 events to 300 connections of two
// subscriptions each, then holds 50 connections idle while Centrifugo
// pings them every second.
func TestRealCentrifugo(t *testing.T) {
	ips, err := parseSources("127.0.0.1-127.0.0.4")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("publish", func(t *testing.T) {
		base, pid := startCentrifugo(t, "25s", "8s")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		rep, err := Run(ctx, Config{URL: base, Transport: transportCentrifugo, Connections: 300, SubsPerConn: 2, Rooms: 4,
			Sources: ips, Events: 100, Inflight: 4, ServerPID: pid, RequireZeroLoss: true,
			SetupTimeout: 30 * time.Second, DrainTimeout: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		logSummary(t, rep)
		if !rep.Pass {
			t.Fatalf("run failed: %v", rep.Failures)
		}
		// 600 subscriptions over 4 channels = 150 each; 25 events each.
		if d := rep.Delivery; d.Expected != 600*25 || d.Received != d.Expected || d.Foreign != 0 {
			t.Errorf("delivery: %+v", d)
		}
		if rep.CloseCodes["1000"] != 300 || len(rep.Errors) != 0 {
			t.Errorf("close codes %v, errors %v", rep.CloseCodes, rep.ErrorSample)
		}
		if sv := rep.Server; sv == nil || sv.PublishCPUSec <= 0 || sv.RSSPerConnKB <= 0 {
			t.Errorf("server: %+v", sv)
		}
	})
	t.Run("idle", func(t *testing.T) {
		base, pid := startCentrifugo(t, "1s", "500ms")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		rep, err := Run(ctx, Config{URL: base, Transport: transportCentrifugo, Connections: 50, Rooms: 5, Sources: ips,
			Idle: 3500 * time.Millisecond, ServerPID: pid, SetupTimeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		logSummary(t, rep)
		// 50 connections pinged every second for 3.5 s, each answered
		// (Centrifugo closes a connection that does not answer in time).
		if !rep.Pass || rep.PingsAnswered < 100 || rep.Setup.ConnectionsOpenAtEnd != 50 || len(rep.Errors) != 0 {
			t.Errorf("pass %v, pings answered %d, open at end %d, errors %v", rep.Pass, rep.PingsAnswered, rep.Setup.ConnectionsOpenAtEnd, rep.ErrorSample)
		}
		if rep.Idle == nil || rep.Idle.ServerCPUSec == nil || *rep.Idle.ServerCPUSec <= 0 {
			t.Errorf("idle: %+v", rep.Idle)
		}
	})
}

func logSummary(t *testing.T, rep *Report) {
	t.Helper()
	var b bytes.Buffer
	writeSummary(&b, rep)
	t.Logf("summary:\n%s", b.String())
}
