package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestStopSurvivesAGoneLogReader: Herald logs to stderr, often a
// pipe (`herald 2>&1 | jq`, `| tee herald.log`). Ctrl-C ends the reader
// too, and Herald's next log line, "shutting down gracefully", must not
// kill it with SIGPIPE: the README promises a drain and exit code 0.
func TestStopSurvivesAGoneLogReader(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "--addr", freeAddr(t), "--data-dir", t.TempDir(), "--drain-timeout", "0s")
	cmd.Env = append(os.Environ(), runAsHeraldEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Herald is serving") {
				close(serving)
				return // stop reading; the pipe is closed below
			}
		}
	}()
	select {
	case <-serving:
	case <-time.After(20 * time.Second):
		t.Fatal("herald not serving within 20s")
	}
	_ = stderr.Close() // the reader is gone, as jq's or tee's after Ctrl-C
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("SIGTERM with its log reader gone: herald was killed by %v instead of draining and exiting 0", ws.Signal())
			}
			t.Fatalf("SIGTERM with its log reader gone: exit code %d, want 0", exit.ExitCode())
		}
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("herald did not exit within 30s of SIGTERM")
	}
}
