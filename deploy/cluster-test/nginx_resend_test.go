package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// Accept headers as clients send them with a POST.
const (
	acceptGraphQLSSE     = "text/event-stream"
	acceptApolloSub      = `multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json`
	acceptURQLOperation  = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
	acceptURQLSubscribe  = "text/event-stream, multipart/mixed"
	acceptApolloQuery    = "multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json"
	acceptPlainGraphQL   = "application/graphql-response+json, application/json"
	acceptSSEUpperCase   = "TEXT/EVENT-STREAM"
	acceptApolloSubLower = `multipart/mixed;boundary="graphql";subscriptionspec=1.0,application/json`
)

// TestNginxResendsOnlyStreamPOSTs: the shipped nginx.conf sends a POST on
// to the next replica after a connection error once it was sent
// (non_idempotent) only when it asks for a stream that only a subscription
// gets: graphql-sse's and Apollo's subscriptions, and urql's. urql lists
// text/event-stream beside JSON for every query and mutation, which Herald
// answers as plain JSON; such a mutation sent on after its replica broke
// the connection may run twice.
//
// Three fake upstreams stand for the replicas: two read each request and
// close the connection without an answer, one answers 200. Each request
// carries an id; a request the upstreams saw more than once was sent on.
func TestNginxResendsOnlyStreamPOSTs(t *testing.T) {
	for _, tc := range []struct {
		accept string
		resent bool
	}{
		{acceptGraphQLSSE, true},
		{acceptSSEUpperCase, true},
		{acceptApolloSub, true},
		{acceptApolloSubLower, true},
		{acceptURQLSubscribe, true},
		{acceptURQLOperation, false},
		{acceptApolloQuery, false},
		{acceptPlainGraphQL, false},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			front, ups := startFakeUpstreamFront(t)
			resent, broken := 0, 0
			for i := range 6 {
				id := fmt.Sprint(i)
				status := postThrough(t, front, tc.accept, id)
				seen := ups.seen(id)
				if seen > 1 {
					resent++
				}
				if status != http.StatusOK {
					broken++
				}
			}
			switch {
			case tc.resent && (resent == 0 || broken > 0):
				t.Fatalf("of 6 POSTs, %d were sent on after a broken connection and %d failed; want some sent on and none failed", resent, broken)
			case !tc.resent && resent > 0:
				t.Fatalf("%d of 6 POSTs were sent on to another replica after a broken connection", resent)
			case !tc.resent && broken == 0:
				t.Fatal("no POST met a broken connection: the test did not exercise it")
			}
		})
	}
}

// fakeUpstreams records which request ids each upstream read.
type fakeUpstreams struct {
	mu    sync.Mutex
	reads map[string]int
}

func (u *fakeUpstreams) read(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reads[id]++
}

func (u *fakeUpstreams) seen(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reads[id]
}

// startFakeUpstreamFront starts nginx with the shipped configuration in
// front of two upstreams that break every connection and one that answers.
func startFakeUpstreamFront(t *testing.T) (string, *fakeUpstreams) {
	t.Helper()
	ups := &fakeUpstreams{reads: map[string]int{}}
	var ports [3]int
	var wg sync.WaitGroup
	var listeners []net.Listener
	// Registered before the rig's: run after nginx has stopped, and with
	// it its connections to the upstreams.
	t.Cleanup(func() {
		for _, ln := range listeners {
			_ = ln.Close()
		}
		wg.Wait()
	})
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveFakeUpstream(ln, ups, i == 2)
		}()
	}
	rig, root, work := newNginxRig(t, 60*time.Second)
	nginxPort, err := testrig.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	startNginxFront(t, rig, root, work, ports[:], nginxPort[0])
	addr := fmt.Sprintf("127.0.0.1:%d", nginxPort[0])
	for deadline := time.Now().Add(20 * time.Second); ; {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr + "/graphql", ups
}

// serveFakeUpstream reads requests on ln until it is closed: it answers
// each with 200 if answers, and otherwise closes the connection once it
// has read the request, as a replica dying mid-request does.
func serveFakeUpstream(ln net.Listener, ups *fakeUpstreams, answers bool) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer c.Close()
			br := bufio.NewReader(c)
			for {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, req.Body)
				if id := req.Header.Get("X-Test-Request"); id != "" {
					ups.read(id)
				}
				if !answers {
					return
				}
				const body = `{"data":{}}`
				if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body); err != nil {
					return
				}
			}
		}()
	}
}

// postThrough sends a mutation through nginx and returns its status.
func postThrough(t *testing.T, front, accept, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, front, strings.NewReader(`{"query":"mutation { x }"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	req.Header.Set("X-Test-Request", id)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST through nginx: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}
