package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMEndsEveryStreamCleanly: SIGTERM ends a Herald process's
// event streams of every kind as the README says (an EventSource's, a
// graphql-sse POST stream, Apollo's multipart with SHUTTING_DOWN and the
// close delimiter, a single-connection stream), each a whole HTTP response,
// and Herald exits 0 a little after --drain-timeout.
func TestSIGTERMEndsEveryStreamCleanly(t *testing.T) {
	const drain = time.Second
	p := startProcess(t, "herald", "--data-dir", t.TempDir(), "--drain-timeout", drain.String(), "--shutdown-timeout", "3s")
	room := createRoom(t, p.addr, "alice", "streams")
	sub := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	vars, _ := json.Marshal(map[string]any{"r": room})
	body, _ := json.Marshal(map[string]any{"query": sub, "variables": map[string]any{"r": room}})
	base := "http://" + p.addr + "/graphql"

	type stream struct {
		name string
		req  func() *http.Request
		want []string // in the body, in order
	}
	token := func() string {
		req, _ := http.NewRequest(http.MethodPut, base, nil)
		req.Header.Set("X-Herald-User", "alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	streams := []stream{
		{"EventSource GET", func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, base+"?query="+url.QueryEscape(sub)+"&variables="+url.QueryEscape(string(vars)), nil)
			req.Header.Set("Accept", "text/event-stream")
			return req
		}, []string{"event: next", "before"}},
		{"graphql-sse POST", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, base, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			return req
		}, []string{"event: next", "before"}},
		{"multipart", func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, base, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "multipart/mixed;boundary=\"graphql\";subscriptionSpec=1.0,application/json")
			return req
		}, []string{"before", "SHUTTING_DOWN", "--graphql--\r\n"}},
		{"single connection", func() *http.Request {
			tok := token()
			req, _ := http.NewRequest(http.MethodGet, base, nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("X-GraphQL-Event-Stream-Token", tok)
			req.Header.Set("X-Herald-User", "alice")
			return req
		}, nil},
	}
	type result struct {
		body []byte
		err  error
		at   time.Time
	}
	results := make([]chan result, len(streams))
	for i, s := range streams {
		req := s.req()
		if req.Header.Get("X-Herald-User") == "" {
			req.Header.Set("X-Herald-User", "alice")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("%s: %d %s", s.name, resp.StatusCode, b)
		}
		results[i] = make(chan result, 1)
		go func() {
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			results[i] <- result{b, err, time.Now()}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the subscriptions start
	postMessage(t, p.addr, "alice", room, "before")
	time.Sleep(300 * time.Millisecond)
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, s := range streams {
		select {
		case r := <-results[i]:
			if r.err != nil {
				t.Errorf("%s: the response ended with %v after %q, want a whole response", s.name, r.err, r.body)
			}
			rest := string(r.body)
			for _, w := range s.want {
				j := strings.Index(rest, w)
				if j < 0 {
					t.Errorf("%s: %q missing from %q", s.name, w, r.body)
					break
				}
				rest = rest[j+len(w):]
			}
			if strings.Contains(string(r.body), "event: complete") {
				t.Errorf("%s: a drained stream sent complete: %q", s.name, r.body)
			}
			t.Logf("%s ended %s after SIGTERM", s.name, r.at.Sub(signalled).Round(time.Millisecond))
		case <-time.After(drain + 5*time.Second):
			t.Errorf("%s did not end", s.name)
		}
	}
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if errors.As(err, &exit) || err != nil {
			t.Errorf("herald exited with %v, want 0", err)
		}
		t.Logf("exited %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))
	case <-time.After(drain + 10*time.Second):
		t.Fatal("herald did not exit")
	}
}
