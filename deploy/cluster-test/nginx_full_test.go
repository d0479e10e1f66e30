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
	"strings"
	"testing"
	"time"
)

func TestFullReplicasLeaveNginxServing(t *testing.T) {
	// Each replica holds at most one WebSocket or HTTP stream: the cluster
	// is "full" after three.
	cluster := startNginxCluster(t, "--max-connections", "1", "--drain-timeout", "1s")
	rctx, heraldPorts := cluster.ctx, cluster.heraldPorts
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	front := cluster.front
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
