package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNginxBodyTooLargeIsGraphQLError: a body over Herald's
// --max-body-bytes gets Herald's 413, and one over nginx's
// client_max_body_size (2m) nginx's, also a GraphQL error (as the 414 and
// 431 nginx answers itself), also for a stream's POST: not nginx's HTML
// page, which clients parsing JSON errors fail on.
func TestNginxBodyTooLargeIsGraphQLError(t *testing.T) {
	cluster := startNginxReplicas(t, 1)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	for _, tc := range []struct {
		name, accept string
		bytes        int
		want         int
	}{
		{"1.5 MiB (over Herald's --max-body-bytes)", "application/json", 3 << 19, http.StatusRequestEntityTooLarge},
		{"3 MiB (over nginx's client_max_body_size)", "application/json", 3 << 20, http.StatusRequestEntityTooLarge},
		{"3 MiB event-stream POST (@herald_stream_post)", "text/event-stream", 3 << 20, http.StatusRequestEntityTooLarge},
	} {
		body := `{"query":"{ __typename }","variables":{"x":"` + strings.Repeat("a", tc.bytes) + `"}}`
		ctx, cancel := context.WithTimeout(cluster.ctx, 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cluster.front, strings.NewReader(body))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", tc.accept)
		resp, err := hc.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		cancel()
		code, msg, gerr := graphQLErrorsOf(resp.Header.Get("Content-Type"), b)
		if resp.StatusCode != tc.want || gerr != nil || code != "BAD_REQUEST" {
			t.Errorf("%s through nginx: HTTP %d, %v, code %q %q; want %d with a GraphQL BAD_REQUEST error", tc.name, resp.StatusCode, gerr, code, msg, tc.want)
		}
	}
}

// TestNginxHidesMetricsUnderEveryPathForm: /metrics is not served through
// nginx in any spelling. nginx passes the path on as the client wrote it,
// and Herald serves a path with dot segments as its cleaned form, so with
// `location = /metrics` /metrics/. and /metrics/x/.. (which nginx reads
// as /metrics/, location /) reached Herald's /metrics.
func TestNginxHidesMetricsUnderEveryPathForm(t *testing.T) {
	cluster := startNginxReplicas(t, 1)
	front := strings.TrimSuffix(cluster.front, "/graphql")
	direct := fmt.Sprintf("http://127.0.0.1:%d", cluster.heraldPorts[0])
	// raw sends GET path exactly as written (net/http would clean nothing,
	// but write it ourselves to be sure no client library normalizes it).
	raw := func(base, path string) (int, string) {
		t.Helper()
		host := strings.TrimPrefix(base, "http://")
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(cluster.ctx, "tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
		b, _ := io.ReadAll(io.LimitReader(c, 1<<20))
		var status int
		fmt.Sscanf(string(b), "HTTP/1.1 %d", &status)
		return status, string(b)
	}
	for _, path := range []string{"/metrics", "/metrics/.", "/metrics/x/..", "//metrics", "/./metrics"} {
		if status, _ := raw(direct, path); status != 200 {
			t.Logf("%s straight to the replica: HTTP %d (Herald does not serve it as /metrics)", path, status)
		}
		status, body := raw(front, path)
		if status != 404 || bytes.Contains([]byte(body), []byte("herald_")) {
			t.Errorf("GET %s through nginx: HTTP %d, metrics exposed: %v; want 404", path, status, strings.Contains(body, "# HELP herald_"))
		}
	}
}
