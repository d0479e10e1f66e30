package main

// With the shipped nginx.conf and upstreams.conf, a 503 that Herald sends
// to refuse one more stream or socket on a full replica ("reconnect to
// another replica"; plain HTTP requests are still served) counts as a
// failed server (proxy_next_upstream ... http_503 with max_fails=1). Once
// every replica was full, one or two stream attempts took every replica
// out of rotation for fail_timeout, and nginx answered every request,
// plain queries and mutations included, 502 "no live upstreams", although
// each replica answered them 200. The replicas are now also backups that
// are never taken out.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

func TestFullReplicasLeaveNginxServing(t *testing.T) {
	nginxPath, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatal("nginx not found on PATH or at /usr/sbin/nginx: apt-get install nginx")
		}
		nginxPath = "/usr/sbin/nginx"
	}
	root, err := testrig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	work, err := os.MkdirTemp("", "herald-nginx-full.")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	rig, err := testrig.New(ctx, testrig.Options{Logf: t.Logf})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer ccancel()
		if err := rig.Close(cctx); err != nil {
			t.Errorf("stop the processes: %v", err)
		}
		cancel()
		_ = os.RemoveAll(work)
	})
	rctx := rig.Context()

	herald := filepath.Join(work, "herald")
	if err := rig.Run(rctx, testrig.Spec{Name: "go build", Path: "go", Args: []string{"build", "-C", root, "-o", herald, "./cmd/herald"},
		Stdout: os.Stderr, Stderr: os.Stderr, Layer: layerFront}); err != nil {
		t.Fatalf("build herald: %v", err)
	}
	ports, err := testrig.FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	heraldPorts := [3]int{ports[0], ports[1], ports[2]}
	natsPort, nginxPort := ports[3], ports[4]
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	start := func(i int, extra ...string) {
		t.Helper()
		args := append([]string{"--auth", "dev", "--addr", fmt.Sprintf("127.0.0.1:%d", heraldPorts[i-1]),
			"--data-dir", filepath.Join(work, fmt.Sprintf("herald%d", i)),
			// Each replica holds at most one WebSocket or HTTP stream: the
			// cluster is "full" after three.
			"--max-connections", "1", "--drain-timeout", "1s"}, extra...)
		log, err := os.Create(filepath.Join(work, fmt.Sprintf("herald%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		if _, err := rig.Start(testrig.Spec{Name: fmt.Sprintf("herald%d", i), Path: herald, Args: args, Env: env,
			Stdout: log, Stderr: log, Service: true, Layer: layerHerald, Grace: grace}); err != nil {
			t.Fatal(err)
		}
	}
	waitReady := func(port int) {
		t.Helper()
		if last, err := testrig.WaitHTTP(rctx, testrig.HTTPCheck{URL: fmt.Sprintf("http://127.0.0.1:%d/readyz", port),
			Timeout: 40 * time.Second, Interval: 200 * time.Millisecond}); err != nil {
			t.Fatalf("127.0.0.1:%d not ready: %v (%s)", port, err, last)
		}
	}
	// Replica 1 embeds NATS and lets the others join it (README, "Two
	// replicas on one machine").
	start(1, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort))
	waitReady(heraldPorts[0])
	start(2, "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", natsPort))
	start(3, "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", natsPort))
	waitReady(heraldPorts[1])
	waitReady(heraldPorts[2])

	// nginx exactly as the cluster test runs it: the shipped nginx.conf and
	// the shipped includes mapped to loopback.
	ngx := filepath.Join(work, "nginx")
	if err := writeNginxPrefix(root, work, ngx, heraldPorts, nginxPort); err != nil {
		t.Fatal(err)
	}
	nginxLog, err := os.Create(filepath.Join(work, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer nginxLog.Close()
	if _, err := rig.Start(testrig.Spec{Name: "nginx", Path: nginxPath,
		Args:   []string{"-p", ngx + "/", "-c", "conf/nginx.conf", "-e", "stderr", "-g", "daemon off; pid " + ngx + "/nginx.pid;"},
		Stdout: nginxLog, Stderr: nginxLog, Service: true, Layer: layerFront, Grace: grace}); err != nil {
		t.Fatal(err)
	}
	waitReady(nginxPort)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(work, "nginx.log"))
			t.Logf("nginx's log:\n%s", strings.Join(lastLines(string(b), 25), "\n"))
		}
	})

	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	front := fmt.Sprintf("http://127.0.0.1:%d/graphql", nginxPort)
	do := func(ctx context.Context, method, u, body string, hdr map[string]string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Herald-User", "alice")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return hc.Do(req)
	}
	short := func(method, u, body string, hdr map[string]string) (int, string) {
		t.Helper()
		c, cc := context.WithTimeout(rctx, 5*time.Second)
		defer cc()
		resp, err := do(c, method, u, body, hdr)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, strings.Join(strings.Fields(string(b)), " ")
	}

	status, body := short("POST", front, `{"query":"mutation { createRoom(name: \"audit\") { id } }"}`, nil)
	if status != 200 || !strings.Contains(body, `"id":"`) {
		t.Fatalf("createRoom through nginx: %d %s", status, body)
	}
	room := strings.SplitN(strings.SplitN(body, `"id":"`, 2)[1], `"`, 2)[0]
	stream := front + "?" + url.Values{
		"query":     {`subscription($r: ID!) { messagePosted(roomId: $r) { id } }`},
		"variables": {fmt.Sprintf(`{"r":%q}`, room)},
	}.Encode()
	sse := map[string]string{"Accept": "text/event-stream"}

	// Three event streams through nginx: least_conn puts one on each
	// replica, which is then full.
	streamCtx, stopStreams := context.WithCancel(rctx)
	defer stopStreams()
	for i := 1; i <= 3; i++ {
		resp, err := do(streamCtx, "GET", stream, "", sse)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("stream %d through nginx: HTTP %d", i, resp.StatusCode)
		}
	}
	for _, p := range heraldPorts {
		_, m := short("GET", fmt.Sprintf("http://127.0.0.1:%d/metrics", p), "", nil)
		if !strings.Contains(m, `herald_http_streams{transport="sse"} 1`) {
			t.Fatalf("replica on port %d does not hold exactly one event stream", p)
		}
	}

	// One client (or two) tries to open one more stream, as a client told
	// "Retry-After: 1" does: Herald refuses it with 503 on every replica.
	// Each gets Herald's own answer, not nginx's 502.
	for i := 1; i <= 2; i++ {
		status, body := short("GET", stream, "", sse)
		if status != 503 || !strings.Contains(body, "holds its limit of 1 connections") {
			t.Errorf("stream attempt %d on a full cluster: HTTP %d %.120s, want Herald's 503", i, status, body)
		}
	}

	// Plain HTTP is not limited by --max-connections: every replica
	// answers it. Through nginx it must too.
	const query = `{"query":"{ __typename }"}`
	for _, p := range heraldPorts {
		if status, body := short("POST", fmt.Sprintf("http://127.0.0.1:%d/graphql", p), query, nil); status != 200 {
			t.Fatalf("straight to the replica on port %d: HTTP %d %s", p, status, body)
		}
	}
	failed := 0
	var last string
	for i := 0; i < 5; i++ {
		status, body := short("POST", front, query, nil)
		if status != 200 {
			failed++
			last = fmt.Sprintf("HTTP %d %.100s", status, body)
		}
	}
	if failed > 0 {
		t.Errorf("%d of 5 plain queries through nginx failed (last: %s), while each replica answers them 200 directly: "+
			"the full replicas' 503s to stream attempts took every server out of the upstream (http_503 in proxy_next_upstream, max_fails=1)",
			failed, last)
	}
}
