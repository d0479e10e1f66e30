package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// drainSocket is one client socket of a drain test: its reader records how
// and when the server ended it.
type drainSocket struct {
	conn   *websocket.Conn
	code   int // close code; 0 if it ended without a close frame
	err    error
	closed time.Time
}

// await reads until the socket ends or the deadline passes. Nothing is
// expected before the close frame: keepalive is off for the test.
func (s *drainSocket) await(deadline time.Time) {
	_ = s.conn.SetReadDeadline(deadline)
	for {
		if _, _, err := s.conn.ReadMessage(); err != nil {
			s.closed, s.err = time.Now(), err
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				s.code = ce.Code
			}
			return
		}
	}
}

// openSubscribedSockets opens n graphql-transport-ws sockets to addr, each
// initialised and subscribed to messagePosted in room, using a few dialers
// at a time, and waits until the server counts all n subscriptions. The
// sockets are closed when the test ends.
func openSubscribedSockets(t *testing.T, addr, room string, n int) []*drainSocket {
	t.Helper()
	sockets := make([]*drainSocket, n)
	t.Cleanup(func() {
		for _, s := range sockets {
			if s != nil {
				_ = s.conn.Close()
			}
		}
	})
	init, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"user": "watcher"}})
	subscribe, _ := json.Marshal(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($r: ID!) { messagePosted(roomId: $r) { id text } }`,
		"variables": map[string]any{"r": room},
	}})
	open := func(i int) error {
		d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
		conn, _, err := d.Dial("ws://"+addr+"/graphql", nil)
		if err != nil {
			return fmt.Errorf("dial socket %d: %w", i, err)
		}
		sockets[i] = &drainSocket{conn: conn}
		if err := conn.WriteMessage(websocket.TextMessage, init); err != nil {
			return fmt.Errorf("socket %d: send connection_init: %w", i, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		var ack struct{ Type string }
		if err := conn.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
			return fmt.Errorf("socket %d: got %+v, %v; want connection_ack", i, ack, err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, subscribe); err != nil {
			return fmt.Errorf("socket %d: send subscribe: %w", i, err)
		}
		return nil
	}
	const dialers = 16
	next := make(chan int)
	errs := make(chan error, dialers)
	var wg sync.WaitGroup
	for range dialers {
		wg.Go(func() {
			for i := range next {
				if err := open(i); err != nil {
					errs <- err
					for range next { // let the feeder finish
					}
					return
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("herald_ws_operations %d\n", n)
	waitMetric(t, addr, want, 20*time.Second)
	return sockets
}

// waitMetric waits until /metrics on addr contains line.
func waitMetric(t *testing.T, addr, line string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), line) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics on %s lacks %q after %s", addr, strings.TrimSpace(line), within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitAll starts one reader per socket and returns a function that waits
// for all of them.
func awaitAll(sockets []*drainSocket, deadline time.Time) (wait func()) {
	var wg sync.WaitGroup
	for _, s := range sockets {
		wg.Go(func() { s.await(deadline) })
	}
	return wg.Wait
}

// readyzStatus asks /readyz once with client.
func readyzStatus(client *http.Client, addr string) (int, error) {
	resp, err := client.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestDrainClosesSocketsSpreadOverTheWindow stops a Herald process holding
// 2,000 subscribed sockets with SIGTERM: /readyz fails at once while the
// sockets are still open, every socket is closed with 1001, no tenth of the
// drain window closes much more than a tenth of them, and the process exits
// 0 soon after the window.
func TestDrainClosesSocketsSpreadOverTheWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 sockets")
	}
	const (
		n      = 2000
		window = 5 * time.Second
		// delay is how late a close may be read: the drain starts a
		// little after the signal arrives, and a loaded machine delivers
		// close frames and runs the readers late. It is also how far past
		// the window the last closes may land.
		delay = 400 * time.Millisecond
	)
	p := startProcess(t, "herald", "--data-dir", t.TempDir(), "--drain-timeout", window.String(),
		"--ws-ping-interval", "1m", "--ws-pong-timeout", "1m")
	room := createRoom(t, p.addr, "alice", "drain")
	sockets := openSubscribedSockets(t, p.addr, room, n)
	wait := awaitAll(sockets, time.Now().Add(window+20*time.Second))

	probe := &http.Client{Timeout: time.Second}
	if status, err := readyzStatus(probe, p.addr); status != http.StatusOK {
		t.Fatalf("/readyz before the signal = %d, %v", status, err)
	}
	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stalled := watchStalls(t)
	for {
		status, err := readyzStatus(probe, p.addr)
		if status == http.StatusServiceUnavailable {
			break
		}
		if time.Since(signalled) > window/2 {
			t.Fatalf("/readyz still %d (%v) %s after SIGTERM", status, err, window/2)
		}
	}
	// At once means before the first tenth of the window is over; a
	// readiness that failed only with the drain's end would take the
	// whole window.
	notReadyAfter := time.Since(signalled)
	stillOpen := openSocketsMetric(t, probe, p.addr)
	if notReadyAfter > window/10 {
		t.Errorf("/readyz turned 503 %s after SIGTERM, want within %s", notReadyAfter, window/10)
	}
	if stillOpen < n/2 {
		t.Errorf("only %d of %d sockets open when /readyz turned 503", stillOpen, n)
	}

	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("herald exited with %v after SIGTERM:\n%s", err, p.logs.String())
		}
	case <-time.After(window + 5*time.Second - time.Since(signalled)):
		t.Fatalf("herald did not exit within %s of SIGTERM", window+5*time.Second)
	}
	exited := time.Since(signalled)
	wait()
	// slack is how many closes a tenth may hold beyond n/10. The
	// schedule itself puts exactly n/10 in each tenth (see
	// TestDrainOffsetSpreadsEvenly in package server), but a delay of D
	// shifts D/(window/n) closes into the next tenth (2.5 ms is one close
	// here), and the last tenth also takes the spill. delay stays under a
	// tenth of the window, so slack stays under n/10: closing all at once,
	// in a few bursts or over half the window puts n/10 or more extra into
	// some tenth. (The window was 2 s with 50 ms of delay allowed, which a
	// quiet machine came within 20 ms of.) A loaded machine (CI runs the
	// packages at once on 2 cores) may also leave this process without a
	// core for longer than delay: its readers then see the closes of that
	// stall late, all at once (0 and 411 in two tenths after 600 ms), which
	// says nothing of how Herald spread them, so the longest stall seen is
	// allowed on top of delay.
	stall := stalled()
	late := delay + stall
	slack := int(late / (window / n))

	var buckets [10]int
	var last time.Duration
	for i, s := range sockets {
		if s.code != websocket.CloseGoingAway {
			t.Fatalf("socket %d ended with %v, want close 1001", i, s.err)
		}
		at := s.closed.Sub(signalled)
		last = max(last, at)
		b := int(at * 10 / window)
		if b == 10 && at < window+late {
			b = 9
		}
		if b < 0 || b > 9 {
			t.Fatalf("socket %d closed %s after SIGTERM, outside the %s window", i, at, window)
		}
		buckets[b]++
	}
	t.Logf("/readyz 503 after %s with %d sockets open; closes per tenth of the window %v; last close %s, exit %s after SIGTERM; longest stall %s",
		notReadyAfter, stillOpen, buckets, last, exited, stall)
	for b, count := range buckets {
		if count > n/10+slack {
			t.Errorf("tenth %d of the window closed %d sockets, more than %d", b, count, n/10+slack)
		}
	}
}

// watchStalls measures, until the returned function is called (or the
// test ends), how long this process went without running a goroutine that
// ticks every 10 ms (beyond the tick): how late its readers may see what
// happened meanwhile.
func watchStalls(t *testing.T) (stop func() time.Duration) {
	const tick = 10 * time.Millisecond
	done := make(chan struct{})
	result := make(chan time.Duration, 1)
	var once sync.Once
	stop = func() time.Duration {
		once.Do(func() { close(done) })
		return <-result
	}
	t.Cleanup(func() {
		once.Do(func() {
			close(done)
			<-result
		})
	})
	go func() {
		var longest time.Duration
		last := time.Now()
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				result <- longest
				return
			case now := <-ticker.C:
				longest = max(longest, now.Sub(last)-tick)
				last = now
			}
		}
	}()
	return stop
}

// openSocketsMetric reads herald_ws_sockets for graphql-transport-ws.
func openSocketsMetric(t *testing.T, client *http.Client, addr string) int {
	t.Helper()
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	const prefix = `herald_ws_sockets{protocol="graphql-transport-ws"} `
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("/metrics has no %s line", prefix)
	return 0
}

// TestSecondSignalExitsAtOnce sends SIGTERM twice to a Herald process
// whose drain window is long: after the second it exits at once, with code
// 1 and a log line saying why.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	p := startProcess(t, "herald", "--data-dir", t.TempDir(), "--drain-timeout", "1m",
		"--ws-ping-interval", "1m", "--ws-pong-timeout", "1m")
	room := createRoom(t, p.addr, "alice", "second")
	sockets := openSubscribedSockets(t, p.addr, room, 10)
	wait := awaitAll(sockets, time.Now().Add(30*time.Second))
	defer wait()

	probe := &http.Client{Timeout: time.Second}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Once /readyz fails the drain has begun; with 10 sockets over a
	// minute it would last 54s more.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if status, _ := readyzStatus(probe, p.addr); status == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz did not fail within 5s of SIGTERM")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-p.done:
		t.Fatalf("herald exited (%v) before the second signal, during a 1m drain", err)
	case <-time.After(300 * time.Millisecond):
	}
	second := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("after the second signal herald ended with %v, want exit code 1", err)
		}
	case <-time.After(5 * time.Second):
		// Without the second signal it would drain for a minute.
		t.Fatal("herald did not exit within 5s of the second signal")
	}
	t.Logf("exited %s after the second signal", time.Since(second))
	if !strings.Contains(p.logs.String(), "second signal") {
		t.Errorf("no log line about the second signal:\n%s", p.logs.String())
	}
}
