package testrig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExitZeroAtEndOfRunIsNil shows that Err is nil, as documented, for a
// process that exits 0 when the end of the run SIGTERMs it (as Herald does
// after draining): exec reports the run's context error then.
func TestExitZeroAtEndOfRunIsNil(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := newRig(t, ctx)
	p, _ := startPrinting(t, r, sh("graceful", `trap 'exit 0' TERM; echo $$; while :; do sleep 100 & wait $!; done`), 1)
	cancel()
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Errorf("Err() = %v, want nil: the process exited with status 0", err)
	}
}

// TestWaitHTTPFailsOnceProcExited shows that a process that has exited (it
// could not bind its port, which another server holds) is not reported
// ready because someone else answers 200 there: the wait fails as soon as
// its Proc exits, before any request.
func TestWaitHTTPFailsOnceProcExited(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer other.Close()
	r := newRig(t, context.Background())
	p, err := r.Start(sh("server", "echo 'listen: address already in use' >&2; exit 1"))
	if err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err = WaitHTTP(ctx, HTTPCheck{URL: other.URL, Timeout: 5 * time.Second, Proc: p})
	if err == nil {
		t.Fatalf("WaitHTTP succeeded although %s (pid %d) had exited: %v", p.Name(), p.Pid(), p.Err())
	}
}

// TestWaitHTTPProcExitedZero shows that the error names how the process
// ended when it exited 0 (it read "%!w(<nil>)").
func TestWaitHTTPProcExitedZero(t *testing.T) {
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
	}))
	defer unready.Close()
	r := newRig(t, context.Background())
	p, err := r.Start(sh("server", "exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err = WaitHTTP(ctx, HTTPCheck{URL: unready.URL, Timeout: 10 * time.Second, Proc: p})
	if err == nil || !strings.HasSuffix(err.Error(), "server (pid "+fmt.Sprint(p.Pid())+") exited: exit status 0") {
		t.Fatalf("WaitHTTP: %v", err)
	}
}

// TestStrayChildrenReaped shows that Close kills and reaps the child of a
// stray that is not its group's leader (the usual shape of a daemon: setsid,
// then fork again): killing the stray makes its child this process's, and
// reapStrays looks again once it has reaped what it saw. It used to return
// then, leaving the child running in 5 of 5 runs of this test, within 1 to
// 21 rounds; hence the rounds.
func TestStrayChildrenReaped(t *testing.T) {
	const runs = 30
	for i := range runs {
		r, err := New(context.Background(), Options{Logf: func(string, ...any) {}})
		if err != nil {
			t.Fatal(err)
		}
		// setsid(1) makes I a session and group leader; I starts X (in
		// I's group, not its leader) and exits, so X is a stray; X starts
		// C (sleep, in the same group) and prints both PIDs.
		s := sh("daemonizer", `setsid sh -c 'sh -c "sleep 100 & echo \$!; echo \$\$; wait" &'; wait`)
		p, pids := startPrinting(t, r, s, 2)
		waitDone(t, p)
		if err := r.Close(context.Background()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		var left []int
		for _, pid := range pids {
			if exists(pid) {
				left = append(left, pid)
			}
		}
		if len(left) > 0 {
			var states []string
			for _, pid := range left {
				if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
					comm, state, ppid, _, _ := procStat(b)
					states = append(states, fmt.Sprintf("%d %s state %c parent %d", pid, comm, state, ppid))
				}
			}
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				var ws syscall.WaitStatus
				_, _ = syscall.Wait4(pid, &ws, 0, nil)
			}
			t.Fatalf("run %d: Close returned nil, and the stray %d's child %d was still there: %v (this test process is %d)", i+1, pids[1], pids[0], states, os.Getpid())
		}
	}
}

// TestEndOfRunKillIsLogged shows that a process SIGKILLed at the end of the
// run (Close, or the context given to New) because it ignored SIGTERM for
// its grace period is reported through Options.Logf, as Stop and a hurried
// Close report theirs: a Herald hanging on shutdown must leave a trace.
func TestEndOfRunKillIsLogged(t *testing.T) {
	for _, how := range []string{"close", "cancel"} {
		t.Run(how, func(t *testing.T) {
			var logs LogBuffer
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, err := New(ctx, Options{Logf: func(format string, args ...any) {
				fmt.Fprintf(&logs, format+"\n", args...)
			}})
			if err != nil {
				t.Fatal(err)
			}
			s := sh("stubborn", `trap "" TERM; echo $$; while :; do sleep 100 & wait $!; done`)
			s.Grace = 200 * time.Millisecond
			p, _ := startPrinting(t, r, s, 1)
			if how == "cancel" {
				cancel()
				waitDone(t, p)
			}
			if err := r.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			var exit *ExitError
			if !errors.As(p.Err(), &exit) || !strings.Contains(exit.Error(), "signal: killed") {
				t.Fatalf("the process ended with %v, want SIGKILL", p.Err())
			}
			got := logs.String()
			t.Logf("logs:\n%s", got)
			var killLine bool
			for line := range strings.SplitSeq(got, "\n") {
				if strings.Contains(line, "stubborn") && strings.Contains(line, "did not stop within 200ms of SIGTERM") {
					killLine = true
				}
			}
			if !killLine {
				t.Errorf("stubborn (pid %d) was SIGKILLed %s after SIGTERM at the end of the run, and nothing said so", p.Pid(), s.Grace)
			}
		})
	}
}
