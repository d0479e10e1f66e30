package testrig

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// testTimeout bounds every wait of these tests.
const testTimeout = 20 * time.Second

func newRig(t *testing.T, ctx context.Context) *Rig {
	t.Helper()
	r, err := New(ctx, Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func sh(name, script string) Spec {
	return Spec{Name: name, Path: "/bin/sh", Args: []string{"-c", script}}
}

// startPrinting starts s with its stdout on a pipe and reads n lines (PIDs
// the script prints) from it.
func startPrinting(t *testing.T, r *Rig, s Spec, n int) (*Proc, []int) {
	t.Helper()
	rd, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	s.Stdout = w
	p, err := r.Start(s)
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := rd.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(rd)
	var pids []int
	for len(pids) < n && sc.Scan() {
		pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
		if err != nil {
			t.Fatalf("%s printed %q, not a PID", s.Name, sc.Text())
		}
		pids = append(pids, pid)
	}
	if len(pids) < n {
		t.Fatalf("%s printed %d of %d PIDs (%v)", s.Name, len(pids), n, sc.Err())
	}
	return p, pids
}

// exists reports whether pid names a process, a zombie included: a process
// is gone only once it has been reaped.
func exists(pid int) bool {
	return syscall.Kill(pid, 0) != syscall.ESRCH
}

// groupMembers lists the processes whose process group is pgid.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if _, _, _, g, err := procStat(b); err == nil && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitDone(t *testing.T, p *Proc) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(testTimeout):
		t.Fatalf("%s (pid %d) still running %s after the end of the run", p.Name(), p.Pid(), testTimeout)
	}
}

// TestEndOfRunKillsEverything: however a run ends, the process, its
// children and what they left outside the group are all gone (reaped), and
// the process group is empty.
func TestEndOfRunKillsEverything(t *testing.T) {
	tests := []struct {
		name   string
		script string
		grace  time.Duration
		end    func(cancel context.CancelFunc, r *Rig) // how the run ends
		stray  bool                                    // one of the grandchildren left the process group
	}{
		{
			name:   "cancel",
			script: `sleep 100 & echo $!; sleep 100 & echo $!; wait`,
			end:    func(cancel context.CancelFunc, _ *Rig) { cancel() },
		},
		{
			name:   "cancel, SIGTERM ignored",
			script: `trap "" TERM; sleep 100 & echo $!; sleep 100 & echo $!; wait`,
			grace:  200 * time.Millisecond,
			end:    func(cancel context.CancelFunc, _ *Rig) { cancel() },
		},
		{
			name:   "close",
			script: `sleep 100 & echo $!; sleep 100 & echo $!; wait`,
			end: func(_ context.CancelFunc, r *Rig) {
				if err := r.Close(context.Background()); err != nil {
					panic(err)
				}
			},
		},
		{
			// A second Ctrl-C: no waiting for an hour's grace period.
			name:   "close in a hurry, SIGTERM ignored",
			script: `trap "" TERM; sleep 100 & echo $!; sleep 100 & echo $!; wait`,
			grace:  time.Hour,
			end: func(_ context.CancelFunc, r *Rig) {
				hurry, cancel := context.WithCancel(context.Background())
				cancel()
				if err := r.Close(hurry); err != nil {
					panic(err)
				}
			},
		},
		{
			name: "cancel, a grandchild in a session of its own",
			// It prints its PID once it is in a session of its own.
			script: `setsid sh -c 'echo $$; exec sleep 100' & sleep 100 & echo $!; wait`,
			end:    func(cancel context.CancelFunc, _ *Rig) { cancel() },
			stray:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, err := New(ctx, Options{Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			s := sh("tree", tt.script)
			s.Grace = tt.grace
			p, grandchildren := startPrinting(t, r, s, 2)
			all := append([]int{p.Pid()}, grandchildren...)
			for _, pid := range all {
				if !exists(pid) {
					t.Fatalf("pid %d is not running before the end of the run", pid)
				}
			}
			stray := 0
			if tt.stray {
				for _, pid := range grandchildren {
					b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
					if err != nil {
						t.Fatal(err)
					}
					if _, _, _, pgid, err := procStat(b); err != nil {
						t.Fatal(err)
					} else if pgid != p.Pid() {
						stray = pid
					}
				}
				if stray == 0 {
					t.Fatalf("none of %v left process group %d", grandchildren, p.Pid())
				}
			}
			tt.end(cancel, r)
			waitDone(t, p)
			if stray != 0 && !exists(stray) {
				t.Errorf("pid %d (outside the group) died with the group: the test shows nothing about strays", stray)
			}
			if err := r.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for _, pid := range all {
				if exists(pid) {
					t.Errorf("pid %d still exists after the run ended and the rig closed", pid)
				}
			}
			if left := groupMembers(t, p.Pid()); len(left) > 0 {
				t.Errorf("process group %d still has %v", p.Pid(), left)
			}
		})
	}
}

// TestExitReported: a process's exit is reported with its name and status;
// a service that exits on its own ends the run with that report, a job
// does not.
func TestExitReported(t *testing.T) {
	tests := []struct {
		name      string
		script    string
		service   bool
		wantErr   string // "" for none; %d is the PID
		wantCode  int
		wantEarly bool
	}{
		{"service exits 3", "exit 3", true, "svc (pid %d) exited early: exit status 3", 3, true},
		{"service exits 0", "exit 0", true, "svc (pid %d) exited early: exit status 0", 0, true},
		{"service killed", "kill -KILL $$", true, "svc (pid %d) exited early: signal: killed", -1, true},
		{"job exits 3", "exit 3", false, "svc (pid %d) exited: exit status 3", 3, false},
		{"job killed", "kill -KILL $$", false, "svc (pid %d) exited: signal: killed", -1, false},
		{"job exits 0", "exit 0", false, "", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, context.Background())
			s := sh("svc", tt.script)
			s.Service = tt.service
			p, err := r.Start(s)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err = p.Wait(ctx)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Wait: %v, want nil", err)
				}
			} else {
				var exit *ExitError
				if !errors.As(err, &exit) {
					t.Fatalf("Wait: %v, want an *ExitError", err)
				}
				if want := fmt.Sprintf(tt.wantErr, p.Pid()); exit.Error() != want {
					t.Errorf("error %q, want %q", exit.Error(), want)
				}
				if exit.Name != "svc" || exit.Pid != p.Pid() || exit.ExitCode() != tt.wantCode || exit.Early != tt.wantEarly {
					t.Errorf("ExitError %+v (code %d), want name svc, pid %d, code %d, early %v", exit, exit.ExitCode(), p.Pid(), tt.wantCode, tt.wantEarly)
				}
			}
			if !tt.service {
				if err := r.Context().Err(); err != nil {
					t.Errorf("a job's exit ended the run: %v", context.Cause(r.Context()))
				}
				return
			}
			select {
			case <-r.Context().Done():
			case <-ctx.Done():
				t.Fatal("a service's early exit did not end the run")
			}
			cause := context.Cause(r.Context())
			if !errors.Is(cause, p.Err()) {
				t.Errorf("the run ended with %v, want the service's %v", cause, p.Err())
			}
		})
	}
}

// TestStoppedServiceIsNotEarly: an exit the driver asked for (Stop, Signal)
// does not end the run.
func TestStoppedServiceIsNotEarly(t *testing.T) {
	tests := []struct {
		name string
		stop func(context.Context, *Proc) error
		want string
	}{
		{"Stop", func(ctx context.Context, p *Proc) error { return p.Stop(ctx) }, "signal: terminated"},
		{"Signal SIGKILL", func(ctx context.Context, p *Proc) error {
			if err := p.Signal(syscall.SIGKILL); err != nil {
				return err
			}
			return p.Wait(ctx)
		}, "signal: killed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, context.Background())
			p, err := r.Start(Spec{Name: "svc", Path: "sleep", Args: []string{"100"}, Service: true})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			err = tt.stop(ctx, p)
			var exit *ExitError
			if !errors.As(err, &exit) || exit.Early || !strings.HasSuffix(exit.Error(), tt.want) {
				t.Fatalf("got %v, want an *ExitError (not early) ending %q", err, tt.want)
			}
			if err := r.Context().Err(); err != nil {
				t.Errorf("stopping a service ended the run: %v", context.Cause(r.Context()))
			}
			if err := p.Signal(syscall.SIGTERM); err != os.ErrProcessDone {
				t.Errorf("Signal after the exit: %v, want os.ErrProcessDone", err)
			}
		})
	}
}

// TestWaitsHaveDeadlines: every wait ends by its deadline, or as soon as
// the process it waits on exits, and says what it last saw.
func TestWaitsHaveDeadlines(t *testing.T) {
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
	}))
	defer unready.Close()
	closed, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	const short = 300 * time.Millisecond

	tests := []struct {
		name string
		wait func(context.Context, *Rig) error
		want []string
	}{
		{"process", func(ctx context.Context, r *Rig) error {
			p, err := r.Start(Spec{Path: "sleep", Args: []string{"100"}})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, short)
			defer cancel()
			err = p.Wait(ctx)
			var exit *ExitError
			if errors.As(err, &exit) {
				return fmt.Errorf("an *ExitError while it runs: %w", err)
			}
			return err
		}, []string{"wait for sleep (pid ", "still running", "deadline exceeded"}},
		{"run", func(ctx context.Context, r *Rig) error {
			ctx, cancel := context.WithTimeout(ctx, short)
			defer cancel()
			return r.Run(ctx, Spec{Path: "sleep", Args: []string{"100"}})
		}, []string{"still running", "deadline exceeded"}},
		{"http, answered 503", func(ctx context.Context, _ *Rig) error {
			_, err := WaitHTTP(ctx, HTTPCheck{URL: unready.URL, Timeout: short})
			return err
		}, []string{"no 200 within 300ms", "last answer: HTTP 503: warming up"}},
		{"http, nothing listening", func(ctx context.Context, _ *Rig) error {
			_, err := WaitHTTP(ctx, HTTPCheck{URL: fmt.Sprintf("http://127.0.0.1:%d/", closed[0]), Timeout: short})
			return err
		}, []string{"no 200 within 300ms", "connection refused"}},
		{"http, the process exits", func(ctx context.Context, r *Rig) error {
			p, err := r.Start(sh("server", "exit 7"))
			if err != nil {
				return err
			}
			_, err = WaitHTTP(ctx, HTTPCheck{URL: unready.URL, Timeout: testTimeout, Proc: p})
			return err
		}, []string{"server (pid ", "exited: exit status 7"}},
		{"http, the caller gives up", func(ctx context.Context, _ *Rig) error {
			ctx, cancel := context.WithTimeoutCause(ctx, short, errors.New("caller gave up"))
			defer cancel()
			_, err := WaitHTTP(ctx, HTTPCheck{URL: unready.URL, Timeout: testTimeout})
			return err
		}, []string{"caller gave up", "HTTP 503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, context.Background())
			begin := time.Now()
			err := tt.wait(context.Background(), r)
			took := time.Since(begin)
			if err == nil {
				t.Fatal("the wait succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if took > testTimeout/2 {
				t.Errorf("the wait took %s", took)
			}
		})
	}
}

// TestWaitHTTPReady: a server that becomes ready is waited for, and the
// answers before that are reported.
func TestWaitHTTPReady(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	last, err := WaitHTTP(context.Background(), HTTPCheck{URL: srv.URL, Timeout: testTimeout, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if last != "HTTP 503: not yet" {
		t.Errorf("last = %q, want the 503", last)
	}
	if n.Load() != 3 {
		t.Errorf("%d requests, want 3", n.Load())
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Fatalf("port %d twice in %v", p, ports)
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		l.Close()
	}
}

func TestProcStat(t *testing.T) {
	tests := []struct {
		in         string
		comm       string
		state      byte
		ppid, pgid int
		wantErr    bool
	}{
		{"123 (sleep) S 1 123 123 0 -1", "sleep", 'S', 1, 123, false},
		{"77 (a b) c) Z 5 9 9 0", "a b) c", 'Z', 5, 9, false},
		{"77 (x) R", "", 0, 0, 0, true},
		{"garbage", "", 0, 0, 0, true},
	}
	for _, tt := range tests {
		comm, state, ppid, pgid, err := procStat([]byte(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("procStat(%q): error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && (comm != tt.comm || state != tt.state || ppid != tt.ppid || pgid != tt.pgid) {
			t.Errorf("procStat(%q) = %q %c %d %d", tt.in, comm, state, ppid, pgid)
		}
	}
}

// TestNotifySignals: the first signal ends the run, the second hurries the
// cleanup.
func TestNotifySignals(t *testing.T) {
	ctx, hurry, stop := NotifySignals(context.Background(), syscall.SIGUSR1)
	defer stop()
	deadline := time.After(testTimeout)
	for i, c := range []context.Context{ctx, hurry} {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-deadline:
			t.Fatalf("signal %d did not cancel its context", i+1)
		}
		var in *Interrupted
		if !errors.As(context.Cause(c), &in) || in.Signal != syscall.SIGUSR1 || in.ExitCode() != 128+int(syscall.SIGUSR1) {
			t.Errorf("cause %v, want SIGUSR1", context.Cause(c))
		}
	}
}

// TestEndOfRunStopsLayersInOrder: when the run ends, a process gets SIGTERM
// only once the processes of higher layers have exited, and only one
// SIGTERM (a second means "exit at once" to Herald, nginx and others).
func TestEndOfRunStopsLayersInOrder(t *testing.T) {
	tests := []struct {
		name string
		end  func(cancel context.CancelFunc, r *Rig)
	}{
		{"cancel", func(cancel context.CancelFunc, _ *Rig) { cancel() }},
		{"close", func(_ context.CancelFunc, r *Rig) {
			if err := r.Close(context.Background()); err != nil {
				panic(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r, err := New(ctx, Options{Logf: t.Logf})
			if err != nil {
				t.Fatal(err)
			}
			upper, err := r.Start(Spec{Name: "upper", Path: "sleep", Args: []string{"100"}, Layer: 1})
			if err != nil {
				t.Fatal(err)
			}
			rd, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			// It reports every SIGTERM and whether upper was gone by then,
			// and keeps running until SIGKILL.
			script := fmt.Sprintf(`trap 'if kill -0 %d 2>/dev/null; then echo upper-alive; else echo upper-gone; fi' TERM
echo ready
while :; do sleep 100 & wait $!; done`, upper.Pid())
			lower, err := r.Start(Spec{Name: "lower", Path: "/bin/sh", Args: []string{"-c", script}, Stdout: w, Grace: 300 * time.Millisecond})
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			if err := rd.SetReadDeadline(time.Now().Add(testTimeout)); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(rd)
			if !sc.Scan() || sc.Text() != "ready" {
				t.Fatalf("lower did not start: %q %v", sc.Text(), sc.Err())
			}
			tt.end(cancel, r)
			waitDone(t, lower)
			if err := r.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			if sc.Err() != nil {
				t.Fatal(sc.Err())
			}
			if len(lines) != 1 || lines[0] != "upper-gone" {
				t.Errorf("lower saw %q, want one SIGTERM after upper had exited", lines)
			}
			if !upper.Exited() {
				t.Error("upper is still running")
			}
		})
	}
}
