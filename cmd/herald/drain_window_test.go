package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDrainServesHTTPWhileReadyzFails shows that a stop serves HTTP,
// /readyz answering 503 with the draining check, for the whole
// --drain-timeout, even with no WebSocket or stream to close (a replica
// serving queries and mutations only, or an idle one): a load balancer
// polling /readyz must see it fail before the listener closes. The
// listener used to close within milliseconds then, and requests still sent
// to the replica were refused.
func TestDrainServesHTTPWhileReadyzFails(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = 2 * time.Second
	cfg.ShutdownTimeout = 2 * time.Second
	a := startTestApp(t, cfg)

	stopped := make(chan error, 1)
	begun := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stopped <- a.Stop(ctx)
	}()
	// A load balancer's probe shortly after the stop began, well inside
	// the drain window. It polls while /readyz still answers 200: on a
	// loaded machine the stopping goroutine can take a while to begin.
	time.Sleep(300 * time.Millisecond)
	client := &http.Client{Timeout: 2 * time.Second}
	var (
		status int
		body   string
		err    error
	)
	for deadline := begun.Add(cfg.DrainTimeout / 2); ; time.Sleep(20 * time.Millisecond) {
		var resp *http.Response
		resp, err = client.Get("http://" + a.Addr() + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			status, body = resp.StatusCode, string(b)
		}
		if err != nil || status != http.StatusOK || time.Now().After(deadline) {
			break
		}
	}
	select {
	case <-stopped:
		t.Logf("Stop had returned %s after it began", time.Since(begun).Round(time.Millisecond))
	default:
	}
	if err != nil {
		t.Fatalf("%s into a stop with --drain-timeout %s: GET /readyz: %v; want it still served (503, draining)",
			time.Since(begun).Round(time.Millisecond), cfg.DrainTimeout, err)
	}
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("%s into a stop: /readyz %d %s, want 503 with the draining check", time.Since(begun).Round(time.Millisecond), status, body)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
		if d := time.Since(begun); d < cfg.DrainTimeout {
			t.Errorf("Stop returned %s after it began, within the drain window of %s", d, cfg.DrainTimeout)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Stop did not return")
	}
}

// TestDrainEndsKeepAlives: once a stop begins, a kept-alive HTTP
// connection is closed after its next response (README, "Drain"), so that
// its client reconnects through the load balancer to another replica
// rather than sending more requests to one that is leaving.
func TestDrainEndsKeepAlives(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = 5 * time.Second
	cfg.ShutdownTimeout = 2 * time.Second
	a := startTestApp(t, cfg)

	conn, err := net.DialTimeout("tcp", a.Addr(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func() (*http.Response, error) {
		_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: herald\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	resp, err := get()
	if err != nil {
		t.Fatal(err)
	}
	if resp.Close {
		t.Fatal("before the stop, the connection is not kept alive")
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stopped <- a.Stop(ctx)
	}()
	// The drain has begun once /readyz fails (asked on connections of
	// their own); keep-alives are ended at the same moment.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for deadline := time.Now().Add(cfg.DrainTimeout / 2); ; {
		resp, err := client.Get("http://" + a.Addr() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz does not fail %s into the stop: %v", cfg.DrainTimeout/2, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An error is fine too: the idle connection was closed, which is what
	// turning keep-alives off does to idle ones.
	if resp, err := get(); err == nil && !resp.Close {
		t.Errorf("during the drain, a kept-alive connection's response (%d) keeps it alive; want Connection: close", resp.StatusCode)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Stop: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Stop did not return")
	}
}

// TestHelpNamesEachFlagsVariable shows that herald -h names each flag's
// HERALD_* variable, as the command's doc says: a container is configured
// through them. The usage was the flag package's own, which names none.
func TestHelpNamesEachFlagsVariable(t *testing.T) {
	var out strings.Builder
	if code := run([]string{"-h"}, func(string) string { return "" }, &out); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	var missing []string
	for _, v := range []string{"HERALD_ADDR", "HERALD_NATS_URL", "HERALD_JWT_SECRET", "HERALD_DRAIN_TIMEOUT"} {
		if !strings.Contains(out.String(), v) {
			missing = append(missing, v)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("herald -h names none of %v; its output begins:\n%s", missing, firstLines(out.String(), 3))
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
