package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDrainingReplicaPassesPostSubscriptionsOn shows that, behind the
// shipped nginx.conf, new POST subscriptions (Apollo's multipart) sent while
// a replica drains reach the live replicas. A draining replica serves HTTP
// for its whole --drain-timeout and refuses new streams with 503; least_conn
// picks it for every new connection (it holds the fewest), and nginx handed
// a POST's 503 to the client (no non_idempotent): 12 of 12 were refused
// during a 6 s window, although two live replicas would have taken them.
// POSTs asking for a stream now go to @herald_stream_post, which sends a 503
// on to the next replica.
func TestDrainingReplicaPassesPostSubscriptionsOn(t *testing.T) {
	codes := drainScenario(t)
	for _, c := range codes {
		if c != http.StatusOK {
			t.Fatalf("statuses of new POST subscriptions through nginx while replica 3 drained: %v, want every one 200", codes)
		}
	}
}

// drainScenario runs three replicas behind the shipped nginx.conf, one
// multipart stream on each of replicas 1 and 2, SIGTERMs replica 3 and returns the statuses nginx answers new POST
// subscriptions with during its drain window.
func drainScenario(t *testing.T) []int {
	// The default drain window (10s) is long; 6s shows the same.
	const drain = 6 * time.Second
	cluster := startNginxCluster(t, "--drain-timeout", drain.String(), "--shutdown-timeout", "2s")
	rctx, heraldPorts := cluster.ctx, cluster.heraldPorts
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	front := cluster.front
	post := func(ctx context.Context, u, body string, hdr map[string]string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("X-Herald-User", "alice")
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return hc.Do(req)
	}
	c, cc := context.WithTimeout(rctx, 10*time.Second)
	resp, err := post(c, front, `{"query":"mutation { createRoom(name: \"drain\") { id } }"}`, nil)
	if err != nil {
		cc()
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cc()
	var created struct {
		Data struct {
			CreateRoom struct{ ID string } `json:"createRoom"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &created); err != nil || created.Data.CreateRoom.ID == "" {
		t.Fatalf("createRoom: %d %s", resp.StatusCode, b)
	}
	sub, _ := json.Marshal(map[string]any{
		"query":     `subscription($r: ID!) { messagePosted(roomId: $r) { id } }`,
		"variables": map[string]any{"r": created.Data.CreateRoom.ID},
	})
	multipart := map[string]string{"Accept": `multipart/mixed;subscriptionSpec="1.0", application/json`}

	// streamsOn is the number of HTTP streams replica i holds.
	streamsOn := func(i int) int {
		c, cc := context.WithTimeout(rctx, 5*time.Second)
		defer cc()
		req, _ := http.NewRequestWithContext(c, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", heraldPorts[i-1]), nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("metrics of replica %d: %v", i, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		n := 0
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "herald_http_streams{") {
				var v float64
				f := strings.Fields(line)
				fmt.Sscan(f[len(f)-1], &v)
				n += int(v)
			}
		}
		return n
	}

	// One client's multipart subscription on each of replicas 1 and 2
	// (through nginx), none on replica 3: the state of a cluster in which
	// replica 3 is about to be restarted and has few clients.
	streamCtx, stopStreams := context.WithCancel(rctx)
	defer stopStreams()
	for tries := 0; streamsOn(1) < 1 || streamsOn(2) < 1; tries++ {
		if tries > 20 {
			t.Fatalf("could not place a stream on replicas 1 and 2: %d %d %d", streamsOn(1), streamsOn(2), streamsOn(3))
		}
		before3 := streamsOn(3)
		sctx, scancel := context.WithCancel(streamCtx)
		resp, err := post(sctx, front, string(sub), multipart)
		if err != nil {
			scancel()
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			scancel()
			t.Fatalf("subscription through nginx: HTTP %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
		if streamsOn(3) > before3 || streamsOn(1) > 1 || streamsOn(2) > 1 {
			scancel() // not where it is wanted: let it go
			resp.Body.Close()
			for deadline := time.Now().Add(5 * time.Second); streamsOn(3) > 0 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			continue
		}
		defer scancel()
		defer resp.Body.Close()
	}
	if n := streamsOn(3); n != 0 {
		t.Fatalf("replica 3 holds %d streams, want 0", n)
	}

	t.Logf("replicas on ports %v hold %d, %d and %d streams", heraldPorts, streamsOn(1), streamsOn(2), streamsOn(3))

	// Replica 3 is stopped (docker compose stop, a rolling restart).
	stopped := time.Now()
	if err := cluster.replicas[2].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)

	// New clients subscribe meanwhile, well inside the drain window, as
	// Apollo Client's HttpLink does (and RetryLink retries a 503 after a
	// second). Replicas 1 and 2 are live and would take every one.
	var codes []int
	for time.Since(stopped) < drain-time.Second && len(codes) < 12 {
		c, cc := context.WithTimeout(rctx, 5*time.Second)
		resp, err := post(c, front, string(sub), multipart)
		if err != nil {
			cc()
			t.Fatalf("subscription through nginx %s into the drain: %v", time.Since(stopped).Round(time.Millisecond), err)
		}
		codes = append(codes, resp.StatusCode)
		resp.Body.Close()
		cc()
		// The stream just opened (if it was) is given up at once, so the
		// live replicas' connection counts stay as they were.
		time.Sleep(400 * time.Millisecond)
	}
	if cluster.replicas[2].Exited() {
		t.Fatalf("replica 3 exited before the end of its drain window")
	}
	t.Logf("statuses of %d new POST subscriptions through nginx while replica 3 drained: %v", len(codes), codes)
	return codes
}
