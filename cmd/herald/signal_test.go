package main

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestStopSignalsDrain stops a ready Herald process with each signal that
// means stop: a subscriber's socket is closed with 1001 (going away) and
// the process exits 0, so each ran the graceful drain. SIGHUP is one of
// them (Herald has nothing to reload): by Go's default it would kill the
// process without a drain.
func TestStopSignalsDrain(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startProcess(t, "herald", "--data-dir", t.TempDir(), "--drain-timeout", "0s")
			room := createRoom(t, p.addr, "alice", "signals")
			sub := subscribeMessages(t, p.addr, room)
			if err := p.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			expectGoingAway(t, sub.conn)
			if code := p.exitCode(15 * time.Second); code != 0 {
				t.Fatalf("%s: exit code %d, want 0 after a graceful drain:\n%s", sig, code, p.logs.String())
			}
		})
	}
}

// TestHangUpIgnoredWhenStartedIgnoringIt starts Herald with SIGHUP
// ignored, as nohup does: a hang-up must not stop it (asking to be told of
// SIGHUP would undo the ignoring), and SIGTERM still drains it.
func TestHangUpIgnoredWhenStartedIgnoringIt(t *testing.T) {
	p := launchProcessAfter(t, `trap "" HUP`, "herald", "--log-level", "warn", "--data-dir", t.TempDir(), "--drain-timeout", "0s")
	p.waitReady()
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup and exitCode
		t.Fatalf("herald started with SIGHUP ignored exited on SIGHUP (%v):\n%s", err, p.logs.String())
	case <-time.After(time.Second):
	}
	p.waitReady()
	p.stop(15 * time.Second)
}

// expectGoingAway reads conn until it ends, which must be a close frame
// with 1001, within 10 s.
func expectGoingAway(t *testing.T, conn *websocket.Conn) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue // a keepalive ping, or an event
		}
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("socket not closed within 10s of the signal")
			}
			t.Fatalf("socket ended with %v, want close 1001", err)
		}
		return
	}
}
