package main

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
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

// silentServer accepts TCP connections and never says anything, as a
// NATS server that hangs does: a client waits out its connect timeout.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{}, 1)
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String(), got
}

// TestSignalWhileConnectingToNATS signals a Herald process that is waiting
// for a NATS server that accepted its connection but does not answer (its
// connect timeout is 5 s). One signal cancels the start, which is a stop
// asked for: exit code 0 whatever the cancelled start reports. A second
// signal exits at once with code 1, as during a drain.
func TestSignalWhileConnectingToNATS(t *testing.T) {
	tests := []struct {
		name     string
		signals  int
		wantCode int
		within   time.Duration
		wantLog  string
	}{
		{"one signal", 1, 0, 10 * time.Second, "signal while starting"},
		{"two signals", 2, 1, 2 * time.Second, "second signal while starting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			natsAddr, accepted := silentServer(t)
			logs := &lockedBuffer{}
			cmd := exec.Command(os.Args[0], "--addr", freeAddr(t), "--nats-url", "nats://"+natsAddr)
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
			case <-accepted:
			case err := <-done:
				t.Fatalf("herald exited (%v) before it connected to NATS:\n%s", err, logs.String())
			case <-time.After(20 * time.Second):
				t.Fatalf("herald did not connect to NATS within 20s:\n%s", logs.String())
			}
			var last time.Time
			for i := range tt.signals {
				if i > 0 {
					// Let the first signal be taken before the second.
					time.Sleep(300 * time.Millisecond)
				}
				last = time.Now()
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case err := <-done:
				code := 0
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					code = exit.ExitCode()
				} else if err != nil {
					t.Fatalf("herald ended with %v", err)
				}
				if code != tt.wantCode {
					t.Fatalf("exit code %d %s after the last signal, want %d:\n%s", code, time.Since(last), tt.wantCode, logs.String())
				}
			case <-time.After(tt.within):
				t.Fatalf("herald still running %s after the last signal:\n%s", tt.within, logs.String())
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("no log line with %q:\n%s", tt.wantLog, logs.String())
			}
		})
	}
}
