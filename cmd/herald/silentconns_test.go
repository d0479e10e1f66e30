package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestStopClosesSilentConnections: connections that have sent nothing (a
// browser's preconnect, an HTTP client's spare connection) do not hold a
// stop with nothing in flight. http.Server.Shutdown counts one as busy
// until it is 5 s old: with --drain-timeout 0 the stop took up to 5 s, and
// with --shutdown-timeout below that it failed ("finish in-flight HTTP
// requests: context deadline exceeded", exit code 1).
func TestStopClosesSilentConnections(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = 0
	cfg.ShutdownTimeout = 2 * time.Second
	a := startTestApp(t, cfg)

	var silent []net.Conn
	for range 3 {
		conn, err := net.DialTimeout("tcp", a.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		silent = append(silent, conn)
	}
	time.Sleep(100 * time.Millisecond) // accepted by the server

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begun := time.Now()
	err := a.Stop(ctx)
	took := time.Since(begun)
	if err != nil {
		t.Fatalf("Stop with only silent connections open failed after %s: %v; want a clean stop", took.Round(time.Millisecond), err)
	}
	if took > time.Second {
		t.Errorf("Stop with --drain-timeout 0 and nothing in flight took %s, held by connections that sent nothing", took.Round(time.Millisecond))
	}
	for i, conn := range silent {
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("silent connection %d: read %d bytes, %v; want it closed by the stop", i, n, err)
		}
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestSilentConnsCloseLateArrivals: a connection that arrives once the
// stop has closed the silent ones (between closeAll and the listener's
// close) is closed at once too; otherwise http.Server.Shutdown counts it
// busy until it is 5 s old, and a stop with little --shutdown-timeout
// fails.
func TestSilentConnsCloseLateArrivals(t *testing.T) {
	s := newSilentConns()
	early, earlyPeer := net.Pipe()
	defer earlyPeer.Close()
	s.track(early, http.StateNew)
	s.closeAll()
	late, latePeer := net.Pipe()
	defer latePeer.Close()
	s.track(late, http.StateNew)
	for _, tt := range []struct {
		name string
		peer net.Conn
	}{{"tracked before closeAll", earlyPeer}, {"arriving after closeAll", latePeer}} {
		_ = tt.peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := tt.peer.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("silent connection %s: its peer read %v, want io.EOF (closed)", tt.name, err)
		}
	}
}
