package main

import (
	"context"
	"io"
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
	// the drain window.
	time.Sleep(300 * time.Millisecond)
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + a.Addr() + "/readyz")
	var status int
	var body string
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status, body = resp.StatusCode, string(b)
	}
	select {
	case <-stopped:
		t.Logf("Stop had returned %s after it began", time.Since(begun).Round(time.Millisecond))
	default:
	}
	if err != nil {
		t.Fatalf("300ms into a stop with --drain-timeout %s: GET /readyz: %v; want it still served (503, draining)",
			cfg.DrainTimeout, err)
	}
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "draining") {
		t.Fatalf("300ms into a stop: /readyz %d %s, want 503 with the draining check", status, body)
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
