package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestStopLetsInFlightHTTPRequestsFinish holds a request open mid-body
// while the replica stops: Stop must wait for it, and it must be answered.
func TestStopLetsInFlightHTTPRequestsFinish(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = 0
	a := startTestApp(t, cfg)

	conn, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	body := `{"query":"{ rooms { totalCount } }"}`
	// With Expect: 100-continue, net/http answers 100 Continue when the
	// handler starts reading the body: then the request is in flight, and
	// the handler waits for the body.
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n"+
		"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n", len(body))
	br := bufio.NewReader(conn)
	interim, err := http.ReadResponse(br, nil)
	if err != nil || interim.StatusCode != http.StatusContinue {
		t.Fatalf("waiting for 100 Continue: %v, %v", interim, err)
	}

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- a.Stop(ctx)
	}()
	// Once the listener refuses connections, Stop has reached
	// http.Server.Shutdown, which returns only when the request has been
	// answered: Stop must still be running.
	waitRefused(t, a.Addr())
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was in flight", err)
	default:
	}

	if _, err := conn.Write([]byte(body)); err != nil {
		t.Fatalf("send the request body: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read the response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("in-flight request answered %d, want 200", resp.StatusCode)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// waitRefused waits until nothing accepts connections on addr.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections 10s after Stop began", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
