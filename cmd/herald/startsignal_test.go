package main

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalWhileStartingExitsCleanly sends SIGTERM to a Herald process
// that is still starting (its JWK Set URL does not answer): the start is
// cancelled and the process exits 0 at once, as a stop that was asked for,
// not as a failed start.
func TestSignalWhileStartingExitsCleanly(t *testing.T) {
	asked := make(chan struct{}, 1)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case asked <- struct{}{}:
		default:
		}
		select { // never answers while Herald waits
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	}))
	defer jwks.Close()

	logs := &lockedBuffer{}
	cmd := exec.Command(os.Args[0], "--addr", freeAddr(t), "--data-dir", t.TempDir(),
		"--auth", "jwt", "--jwks-url", jwks.URL+"/jwks")
	cmd.Env = append(os.Environ(), runAsHeraldEnv+"=1")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	select {
	case <-asked:
	case err := <-done:
		t.Fatalf("herald exited (%v) before it fetched the JWK Set:\n%s", err, logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("herald did not fetch the JWK Set within 20s:\n%s", logs.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("SIGTERM while starting: exit code %d, want 0:\n%s", exit.ExitCode(), logs.String())
		} else if err != nil {
			t.Fatalf("SIGTERM while starting: %v:\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("herald did not exit within 10s of SIGTERM while starting:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "signal while starting") {
		t.Errorf("no log line about the signal while starting:\n%s", logs.String())
	}
}
