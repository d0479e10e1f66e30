package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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

	p := launchProcess(t, "herald", "--data-dir", t.TempDir(), "--auth", "jwt", "--jwks-url", jwks.URL+"/jwks")
	select {
	case <-asked:
	case err := <-p.done:
		t.Fatalf("herald exited (%v) before it fetched the JWK Set:\n%s", err, p.logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("herald did not fetch the JWK Set within 20s:\n%s", p.logs.String())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.exitCode(10 * time.Second); code != 0 {
		t.Fatalf("SIGTERM while starting: exit code %d, want 0:\n%s", code, p.logs.String())
	}
	if !strings.Contains(p.logs.String(), "signal while starting") {
		t.Errorf("no log line about the signal while starting:\n%s", p.logs.String())
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
			p := launchProcess(t, "herald", "--nats-url", "nats://"+natsAddr)
			select {
			case <-accepted:
			case err := <-p.done:
				t.Fatalf("herald exited (%v) before it connected to NATS:\n%s", err, p.logs.String())
			case <-time.After(20 * time.Second):
				t.Fatalf("herald did not connect to NATS within 20s:\n%s", p.logs.String())
			}
			var last time.Time
			for i := range tt.signals {
				if i > 0 {
					// Let the first signal be taken before the second.
					time.Sleep(300 * time.Millisecond)
				}
				last = time.Now()
				if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			if code := p.exitCode(tt.within); code != tt.wantCode {
				t.Fatalf("exit code %d %s after the last signal, want %d:\n%s", code, time.Since(last), tt.wantCode, p.logs.String())
			}
			if !strings.Contains(p.logs.String(), tt.wantLog) {
				t.Errorf("no log line with %q:\n%s", tt.wantLog, p.logs.String())
			}
		})
	}
}

// TestSignalInTheLastStepsOfStartCancelsIt: a signal that comes after the
// event log and presence are set up, while the schema, the server and the
// listener's bound are built (steps that do not look at ctx), still
// cancels the start: the README promises a signal while Herald starts
// cancels it, and a start that went on would serve and then be drained
// for the whole --drain-timeout.
func TestSignalInTheLastStepsOfStartCancelsIt(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg.beforeServe = cancel // the signal
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := startApp(ctx, cfg, logger)
	if a != nil {
		stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer stopCancel()
		_ = a.Stop(stopCtx)
		t.Fatal("a signal in the last steps of the start: startApp returned a running replica, which run would drain")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("startApp: %v, want the start cancelled", err)
	}
}
