package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
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
	// What run names if this step outlasts the stop's bound.
	if step, want := a.StopStep(), "finishing in-flight HTTP requests (--shutdown-timeout)"; step != want {
		t.Errorf("StopStep() = %q while Stop waits for a request, want %q", step, want)
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
	if step := a.StopStep(); step != "" {
		t.Errorf("StopStep() = %q after Stop returned, want none", step)
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

// fakeStopper stands in for the app in awaitStop: its Stop runs stop with
// the context awaitStop gives it, and reports step as the step under way.
type fakeStopper struct {
	step string
	stop func(ctx context.Context) error
}

func (f fakeStopper) Stop(ctx context.Context) error { return f.stop(ctx) }
func (f fakeStopper) StopStep() string               { return f.step }

// TestAwaitStop: a stop that ends is waited for (exit code 0, or 1 with
// its error); a second signal, or a stop still running past its bound
// (a hung step that does not honour its context), is cut short and run
// returns 1 at once, naming the step still running.
func TestAwaitStop(t *testing.T) {
	const bound = 300 * time.Millisecond
	tests := []struct {
		name     string
		stop     func(ctx context.Context, release <-chan struct{}) error
		signal   bool
		wantCode int
		wantLog  string
		early    bool // returns before the bound
	}{
		{name: "clean", stop: func(context.Context, <-chan struct{}) error { return nil }, wantCode: 0, early: true},
		{name: "unclean", stop: func(context.Context, <-chan struct{}) error { return errors.New("close the event log: boom") },
			wantCode: 1, wantLog: "unclean shutdown: close the event log: boom", early: true},
		{name: "second signal", signal: true, stop: func(ctx context.Context, release <-chan struct{}) error {
			<-release
			return ctx.Err()
		}, wantCode: 1, wantLog: "second signal during the drain", early: true},
		{name: "hung step", stop: func(_ context.Context, release <-chan struct{}) error {
			<-release // ignores its context, as a stuck step would
			return nil
		}, wantCode: 1, wantLog: `shutdown outlasted its bound: exiting at once" bound=300ms step="closing the event log (draining NATS)"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			releaseStop := sync.OnceFunc(func() { close(release) })
			returned := make(chan struct{})
			s := fakeStopper{step: "closing the event log (draining NATS)", stop: func(ctx context.Context) error {
				defer close(returned)
				return tt.stop(ctx, release)
			}}
			// awaitStop does not wait for a stop it gave up on: release it
			// and wait for it here.
			t.Cleanup(func() {
				releaseStop()
				select {
				case <-returned:
				case <-time.After(5 * time.Second):
					t.Error("the fake stop did not return")
				}
			})
			signals := make(chan os.Signal, 1)
			if tt.signal {
				signals <- syscall.SIGTERM
			}
			var logs testrig.LogBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))

			begun := time.Now()
			result := make(chan int, 1)
			go func() { result <- awaitStop(s, bound, signals, logger) }()
			var code int
			select {
			case code = <-result:
			case <-time.After(bound + 5*time.Second):
				releaseStop() // so that awaitStop returns
				<-result
				t.Fatalf("awaitStop still waiting %s after it began; its bound is %s", bound+5*time.Second, bound)
			}
			took := time.Since(begun)
			if code != tt.wantCode {
				t.Errorf("exit code %d, want %d; logs:\n%s", code, tt.wantCode, logs.String())
			}
			if tt.wantLog != "" && !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("logs lack %q:\n%s", tt.wantLog, logs.String())
			}
			if tt.wantLog == "" && logs.String() != "" {
				t.Errorf("unexpected logs:\n%s", logs.String())
			}
			if tt.early && took >= bound {
				t.Errorf("returned after %s, before the bound %s was expected", took, bound)
			}
			if !tt.early && took < bound {
				t.Errorf("gave up after %s, before the bound %s", took, bound)
			}
		})
	}
}

// TestStopBoundIsTheDocumentedOne: the bound run holds a stop to is the
// one the README gives the orchestrator.
func TestStopBoundIsTheDocumentedOne(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout, cfg.ShutdownTimeout = 7*time.Second, 3*time.Second
	if got, want := stopBound(cfg), 7*time.Second+2*3*time.Second+15*time.Second; got != want {
		t.Fatalf("stopBound = %s, want --drain-timeout + 2 × --shutdown-timeout + 15 s = %s", got, want)
	}
}
