package main

// When nginx gives up on a request itself, it answered with its own HTML
// 502, without Retry-After, where Herald's replicas answer a refused socket
// or stream with a JSON 503 UNAVAILABLE and Retry-After: 1 (which clients
// retry after a second). On a full cluster of two replicas,
// proxy_next_upstream_tries 3 outlasts the servers (both primaries out,
// both backups refuse, and the third try has none: "no live upstreams");
// with the shipped three and one of them down, a last try that lands on
// the down one's backup line fails to connect. nginx's own 502 (and 504) now
// go to @herald_unavailable, a 503 shaped as Herald's.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestFullTwoReplicaClusterAnswersNginxUnavailable503(t *testing.T) {
	cluster := startNginxReplicas(t, 2, "--max-connections", "1")
	checkFullClusterRefuses(t, cluster, 2, 4)
}

func TestFullClusterWithOneReplicaDownAnswersNginxUnavailable503(t *testing.T) {
	cluster := startNginxCluster(t, "--max-connections", "1")
	if err := cluster.replicas[2].Stop(cluster.ctx); err != nil {
		t.Fatalf("stop replica 3: %v", err)
	}
	checkFullClusterRefuses(t, cluster, 2, 6)
}

// checkFullClusterRefuses fills the live replicas of cluster (started with
// --max-connections 1) with one WebSocket each, then makes attempts
// WebSocket handshakes and as many POST subscriptions (Apollo's multipart,
// which go through @herald_stream_post) through nginx: each must get a 503
// with Retry-After and a GraphQL error UNAVAILABLE, Herald's own or nginx's
// shaped as it, and never nginx's HTML 502.
func checkFullClusterRefuses(t *testing.T, cluster *nginxCluster, live, attempts int) {
	t.Helper()
	ws := strings.Replace(cluster.front, "http://", "ws://", 1)
	dialer := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, Proxy: nil, HandshakeTimeout: 10 * time.Second}
	for i := 1; i <= live; i++ {
		c, resp, err := dialer.DialContext(cluster.ctx, ws, http.Header{"X-Herald-User": {"holder"}})
		if err != nil {
			t.Fatalf("socket %d of %d that fill the cluster: %v (%v)", i, live, err, resp)
		}
		defer c.Close()
	}

	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	check := func(what string, resp *http.Response) string {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		got := fmt.Sprintf("%s: HTTP %d Retry-After=%q %q %.120s", what, resp.StatusCode, resp.Header.Get("Retry-After"),
			resp.Header.Get("Content-Type"), strings.Join(strings.Fields(string(b)), " "))
		code, _, err := graphQLErrorsOf(resp.Header.Get("Content-Type"), b)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || err != nil || code != "UNAVAILABLE" {
			t.Errorf("%s; want 503, Retry-After: 1, a GraphQL error UNAVAILABLE", got)
		}
		return got
	}
	const sub = `{"query":"subscription { messagePosted(roomId: \"none\") { id } }"}`
	var got []string
	for i := 1; i <= attempts; i++ {
		c, resp, err := dialer.DialContext(cluster.ctx, ws, http.Header{"X-Herald-User": {"late"}})
		if err == nil {
			c.Close()
			t.Fatalf("socket attempt %d on a full cluster was accepted", i)
		}
		if resp == nil {
			t.Fatalf("socket attempt %d: %v", i, err)
		}
		got = append(got, check(fmt.Sprintf("socket attempt %d", i), resp))

		ctx, cancel := context.WithTimeout(cluster.ctx, 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cluster.front, strings.NewReader(sub))
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		req.Header.Set("X-Herald-User", "late")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", `multipart/mixed;subscriptionSpec="1.0", application/json`)
		resp, err = hc.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("POST subscription attempt %d: %v", i, err)
		}
		got = append(got, check(fmt.Sprintf("POST subscription attempt %d", i), resp))
		cancel()
	}
	t.Logf("answers through nginx:\n%s", strings.Join(got, "\n"))
}
