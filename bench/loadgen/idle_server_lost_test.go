package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// S3 and S5 are idle runs: what they measure is what holding the sockets
// costs the server, so a server that drops the sockets, or that cannot be
// read, has measured nothing.

// TestIdleRunFailsWhenTheServerClosesEverySocket: a server that closes
// every socket 200 ms into a 1.5 s idle period fails the run. It used to
// pass, its RSS and CPU divided by the sockets established, not held.
func TestIdleRunFailsWhenTheServerClosesEverySocket(t *testing.T) {
	f := &fakeServer{}
	started := filepath.Join(t.TempDir(), "started")
	onStarted(started, func() {
		f.mu.Lock()
		subs := append([]*fakeSub{}, f.subs...)
		f.mu.Unlock()
		for _, s := range subs {
			s.close(websocket.CloseGoingAway)
		}
	})
	rep := runAgainstFake(t, f, func(c *Config) { c.Events = 0; c.Idle = 1500 * time.Millisecond; c.StartedFile = started })
	if rep.Setup.ConnectionsOpenAtEnd != 0 {
		t.Fatalf("the fake should have closed every socket: %d open at end", rep.Setup.ConnectionsOpenAtEnd)
	}
	if rep.Pass {
		t.Errorf("PASS although the server closed all %d sockets during the idle period (errors %v)",
			rep.Setup.ConnectionsEstablished, rep.Errors)
	}
	wantFailure(t, rep, "connections: 4 of 4 ended by the server")
	if rep.Setup.ConnectionsClosedByServer != 4 {
		t.Errorf("closed by the server: %d, want 4", rep.Setup.ConnectionsClosedByServer)
	}
}

// TestIdleRunFailsWhenTheServerCannotBeRead: the server process whose PID
// loadgen samples exits during the idle period, as a crashed server
// would. The run fails and its idle CPU and RSS are not measured (null),
// where it used to pass with 0 µs per socket per second (S5's "≤ 3 µs",
// met).
func TestIdleRunFailsWhenTheServerCannotBeRead(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-waited })
	started := filepath.Join(t.TempDir(), "started")
	onStarted(started, func() { _ = cmd.Process.Kill() })
	rep := runAgainstFake(t, &fakeServer{}, func(c *Config) {
		c.Events = 0
		c.Idle = 1500 * time.Millisecond
		c.StartedFile = started
		c.ServerPID = cmd.Process.Pid
	})
	if rep.Pass {
		t.Errorf("PASS although the server could not be read at the end of the idle period: idle %+v, errors %v %v",
			*rep.Idle, rep.Errors, rep.ErrorSample)
	}
	wantFailure(t, rep, "server: ")
	if i := rep.Idle; i == nil || i.ServerCPUSec != nil || i.ServerCPUUsPerConnPerSec != nil || i.ServerRSSPerConnKB != nil {
		t.Errorf("idle %+v: want the server's CPU and RSS not measured (nil), not 0", i)
	}
	var summary strings.Builder
	writeSummary(&summary, rep)
	if !strings.Contains(summary.String(), "server CPU not measured") {
		t.Errorf("the summary reports a measurement:\n%s", summary.String())
	}
}
