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
	body := `{"query":"{ rooms { totalCount } }"}`
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body[:10])
	// The request is in flight once the server has read its headers; the
	// handler then waits for the rest of the body.
	time.Sleep(100 * time.Millisecond)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- a.Stop(ctx)
	}()
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a request was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}

	if _, err := conn.Write([]byte(body[10:])); err != nil {
		t.Fatalf("finish the request body: %v", err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
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
