package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestChurnOnEveryTransportReleasesAll runs cycles of connect → subscribe
// (resumed, so it yields at once) → disconnect over every transport, each
// cycle with a distinct user and a distinct execution key, and checks that
// the replica's goroutines and tracked state return to where they were.
func TestChurnOnEveryTransportReleasesAll(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("churn")
	m0 := r.post(room, "poster", "m0")
	r.post(room, "poster", "m1")
	cursor := graphCursor(t, r, m0)
	transports := []string{"ws", "legacy", "sse", "sse-get", "multipart", "single", "post", "get"}

	settle := func() int {
		var g int
		for range 50 {
			http.DefaultTransport.(*http.Transport).CloseIdleConnections()
			runtime.GC()
			time.Sleep(40 * time.Millisecond)
			g = runtime.NumGoroutine()
			if r.openSockets() == 0 && r.placesTaken() == 0 && r.server.ws.execs.count() == 0 {
				break
			}
		}
		return g
	}
	// Warm up: one cycle of each, so lazily started helpers exist.
	run := func(i int) {
		for _, tr := range transports {
			op := mxOp{
				user:  fmt.Sprintf("u%s%04d", tr, i),
				query: fmt.Sprintf(`subscription S%d($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`, i),
				vars:  map[string]any{"r": room, "after": cursor},
				take:  1,
			}
			if tr == "post" || tr == "get" {
				op.query = fmt.Sprintf(`query Q%d { rooms { nodes { name } } }`, i)
				op.vars = nil
			}
			var outs []mxOutcome
			switch tr {
			case "post", "get":
				outs = []mxOutcome{churnPlain(r, op, tr)}
			default:
				outs = r.mxRunAll(op, []string{tr})
			}
			if len(outs) != 1 || (outs[0].end != "stopped" && outs[0].end != "json") || !strings.Contains(strings.Join(outs[0].results, ""), `"`) {
				t.Fatalf("cycle %d %s: %v", i, tr, outs)
			}
		}
	}
	run(0)
	base := settle()
	const cycles = 25
	for i := 1; i <= cycles; i++ {
		run(i)
	}
	var after int
	deadline := time.Now().Add(8 * time.Second)
	for {
		after = settle()
		if after <= base+3 || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("goroutines: base %d, after %d cycles of %d transports: %d; execs %d sessions %d",
		base, cycles, len(transports), after, r.server.ws.execs.count(), r.openSockets())
	if after > base+3 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Fatalf("goroutines grew from %d to %d after %d churn cycles\n%s", base, after, cycles, churnStacks(string(buf[:n])))
	}
}

// churnStacks counts goroutines by their top frames.
func churnStacks(all string) string {
	counts := map[string]int{}
	for _, g := range strings.Split(all, "\n\n") {
		lines := strings.Split(g, "\n")
		key := ""
		for j := 1; j < len(lines) && j < 12; j += 2 {
			f := strings.TrimSpace(lines[j])
			if k := strings.LastIndex(f, "("); k > 0 {
				f = f[:k]
			}
			key += f + " <- "
		}
		if strings.Contains(g, "created by") {
			f := strings.TrimSpace(lines[len(lines)-2])
			if k := strings.LastIndex(f, " in goroutine"); k > 0 {
				f = f[:k]
			}
			key += f
		}
		counts[key]++
	}
	var b strings.Builder
	for k, v := range counts {
		if v >= 3 {
			fmt.Fprintf(&b, "%d x %s\n", v, k)
		}
	}
	return b.String()
}

// churnPlain runs op as a plain POST or GET on a client whose
// connections are closed afterwards.
func churnPlain(r *replica, op mxOp, method string) mxOutcome {
	var req *http.Request
	if method == "post" {
		b, _ := json.Marshal(mxBody(op))
		req, _ = http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, _ = http.NewRequest(http.MethodGet, r.http.URL+"/graphql?"+mxQuery(op), nil)
	}
	req.Header.Set("Accept", "application/json")
	if op.user != "" {
		req.Header.Set("X-Herald-User", op.user)
	}
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return mxOutcome{transport: method, end: "transport error: " + err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return mxOutcome{transport: method, status: resp.StatusCode, results: []string{mxNorm(b)}, end: "json"}
}
