package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"
)

// TestParkedStreamSaysConnectionClose: a subscription's stream over
// HTTP/1.1 is parked, its connection hijacked and closed when the stream
// ends, so its response says "Connection: close" (RFC 9112, 9.3 and 9.6).
// It used to say nothing: a client read the whole body, put the
// connection back in its pool and sent its next request on it, which the
// server had closed, and Go's client does not retry a POST (8 to 25 of
// 100 mutations failed with EOF). A query answered as an event stream is
// not parked and keeps its connection.
func TestParkedStreamSaysConnectionClose(t *testing.T) {
	r := newReplica(t, nil)
	for _, accept := range []string{acceptSSE, acceptMultipart} {
		t.Run(accept, func(t *testing.T) {
			// A subscription to a room that does not exist: parked, then
			// completed at once with the resolver's error.
			s := r.openRaw(accept, "no-such-room")
			if !s.resp.Close {
				t.Errorf("the stream's response does not say Connection: close (headers %v)", s.resp.Header)
			}
			if body, err := s.readToEnd(); err != nil {
				t.Fatalf("the stream's body did not end properly: %q, %v", body, err)
			}
		})
	}
	t.Run("query as an event stream", func(t *testing.T) {
		body, _ := json.Marshal(map[string]any{"query": "{ __typename }"})
		req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", acceptSSE)
		resp, err := r.http.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.Close {
			t.Errorf("a query's event stream says Connection: close; only a parked subscription's needs to")
		}
	})
}

// TestMutationAfterParkedStreamEnds is the same as an application meets
// it: with one http.Client, a subscription's stream that ends, then a
// mutation, a hundred times. Every mutation is answered.
func TestMutationAfterParkedStreamEnds(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("reuse")
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	failed := 0
	for i := range 100 {
		sub, _ := json.Marshal(map[string]any{"query": postedSub, "variables": map[string]any{"r": "no-such-room"}})
		req, _ := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(sub))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", acceptSSE)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()

		m, _ := json.Marshal(map[string]any{
			"query":     `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`,
			"variables": map[string]any{"r": room, "t": fmt.Sprint("m", i)},
		})
		req, _ = http.NewRequest(http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(m))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Herald-User", "ann")
		reused := false
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
		}))
		resp, err = client.Do(req)
		if err != nil {
			failed++
			t.Logf("mutation %d after a stream ended (connection reused: %v): %v", i, reused, err)
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if failed > 0 {
		t.Fatalf("%d of 100 mutations sent after a parked stream ended failed", failed)
	}
}
