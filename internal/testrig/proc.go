package testrig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// DefaultGrace is how long a process group has between SIGTERM and SIGKILL
// when Spec.Grace is zero.
const DefaultGrace = 5 * time.Second

// killWait bounds the wait for a process group after SIGKILL, which cannot
// be caught: only a process stuck in the kernel outlives it.
const killWait = 10 * time.Second

// Spec describes a process to start.
type Spec struct {
	Name string // in messages, e.g. "herald1"; the base of Path if empty
	Path string
	Args []string
	Dir  string
	Env  []string // nil: this process's environment

	// Stdout and Stderr receive the process's output; nil discards it. An
	// *os.File is handed to the process as it is (no copying goroutine).
	Stdout, Stderr io.Writer
	// ExtraFiles become file descriptors 3, 4, ... of the process.
	ExtraFiles []*os.File

	// Service marks a process that runs until it is stopped: if it exits
	// without Signal, Stop or Close having asked it to, the rig's context
	// is cancelled with an *ExitError that says Early.
	Service bool
	// Layer orders the end of the run: the highest layer is stopped
	// first, the processes of one layer together.
	Layer int
	// Grace is how long the process group has between SIGTERM and SIGKILL
	// (DefaultGrace if zero).
	Grace time.Duration
}

// Proc is a process the rig started, the leader of a process group of its
// own. Signals go to the whole group, and once the leader has exited the
// group is killed, so whatever it started in the group ends with it.
type Proc struct {
	name    string
	pid     int
	grace   time.Duration
	layer   int
	service bool
	logf    func(string, ...any)

	expected atomic.Bool // an exit from now on was asked for

	// mu orders signals against the leader's exit: while exited is false
	// the leader is not reaped, so its PID still names its group and no
	// other process can have it.
	mu       sync.Mutex
	exited   bool
	termSent bool // SIGTERM goes to the group once: a second one means "now" to many programs
	killSent bool // the rig sent SIGKILL (and said so, or was asked to by Signal)

	done chan struct{}
	err  error // how it ended; written before done is closed
}

// Name returns the process's name.
func (p *Proc) Name() string { return p.name }

// Pid returns the process's ID, which is also its process group's.
func (p *Proc) Pid() int { return p.pid }

// Done is closed when the process has exited and been reaped, and its
// process group killed.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether Done is closed.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns how the process ended once Done is closed: nil for exit
// status 0, an *ExitError otherwise.
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Wait waits for the process to exit and returns Err. If ctx ends first, it
// returns an error that wraps ctx's cause and is not an *ExitError.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("wait for %s (pid %d): still running: %w", p.name, p.pid, context.Cause(ctx))
	}
}

// Signal sends sig to the process group, and marks the exit that may follow
// as asked for. It returns os.ErrProcessDone if the process has exited.
// A SIGTERM is sent once: after the first, Signal(SIGTERM) does nothing.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.expected.Store(true)
	return p.signalGroup(p.pid, sig)
}

// signalGroup signals the group of pid (the process's PID, passed because
// exec's Cancel may run before p.pid is set).
func (p *Proc) signalGroup(pid int, sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return os.ErrProcessDone
	}
	switch sig {
	case syscall.SIGTERM:
		if p.termSent {
			return nil
		}
		p.termSent = true
	case syscall.SIGKILL:
		p.killSent = true
	}
	if err := syscall.Kill(-pid, sig); err != nil {
		return fmt.Errorf("signal %s (process group %d) with %v: %w", p.name, pid, sig, err)
	}
	return nil
}

// Stop sends SIGTERM to the process group, then SIGKILL after the grace
// period (at once if ctx ends first), and waits for the process. It
// returns Err, or an error if the process outlived SIGKILL by 10s.
func (p *Proc) Stop(ctx context.Context) error {
	if p.Signal(syscall.SIGTERM) == os.ErrProcessDone {
		return p.Err()
	}
	grace := time.NewTimer(p.grace)
	defer grace.Stop()
	select {
	case <-p.done:
		return p.err
	case <-grace.C:
		p.logf("%s (pid %d) did not stop within %s of SIGTERM; killing its process group", p.name, p.pid, p.grace)
	case <-ctx.Done():
		p.logf("%s (pid %d): no time to wait for it to stop (%v); killing its process group", p.name, p.pid, context.Cause(ctx))
	}
	_ = p.signalGroup(p.pid, syscall.SIGKILL)
	late := time.NewTimer(killWait)
	defer late.Stop()
	select {
	case <-p.done:
		return p.err
	case <-late.C:
		return fmt.Errorf("stop %s (pid %d): still running %s after SIGKILL", p.name, p.pid, killWait)
	}
}

// supervise waits for the leader to exit, kills what it left in its group
// while its PID still names the group, reaps it and reports how it ended.
func (p *Proc) supervise(cmd *exec.Cmd, failRun context.CancelCauseFunc) {
	waitExited(p.pid)
	p.mu.Lock()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.exited = true
	p.mu.Unlock()

	err := cmd.Wait()
	if err != nil && !errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The run ended (exec called Cancel) and the process then exited 0:
		// Wait reports the context's error, but nothing went wrong.
		err = nil
	}
	p.reportEndOfRunKill(cmd.ProcessState)
	early := p.service && !p.expected.Load()
	if err != nil || early {
		p.err = &ExitError{Name: p.name, Pid: p.pid, State: cmd.ProcessState, Err: err, Early: early}
	}
	close(p.done)
	if early {
		failRun(p.err)
	}
}

// reportEndOfRunKill says so when exec killed the process because it did
// not stop within its grace period of the SIGTERM that ended the run (Stop
// and a hurried Close send their SIGKILL themselves, and say so).
func (p *Proc) reportEndOfRunKill(state *os.ProcessState) {
	if state == nil {
		return
	}
	ws, ok := state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		return
	}
	p.mu.Lock()
	byExec := p.termSent && !p.killSent
	p.mu.Unlock()
	if byExec {
		p.logf("%s (pid %d) did not stop within %s of SIGTERM at the end of the run; it was killed", p.name, p.pid, p.grace)
	}
}

// waitExited blocks until process pid has exited, without reaping it
// (waitid with WNOWAIT), so that its PID cannot be reused meanwhile.
func waitExited(pid int) {
	const pPID = 1     // idtype_t P_PID
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid), uintptr(unsafe.Pointer(&info)),
			syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			// 0, or an error (ECHILD) after which Wait reports what it can.
			return
		}
	}
}

// ExitError says how a process ended: with a status other than 0, by a
// signal, or (Early) on its own while it should have kept running.
type ExitError struct {
	Name  string
	Pid   int
	State *os.ProcessState // nil if the process could not be waited for
	Err   error            // what exec.Cmd.Wait returned (nil for exit status 0)
	Early bool
}

func (e *ExitError) Error() string {
	what := "exited"
	if e.Early {
		what = "exited early"
	}
	status := "exit status 0"
	switch {
	case e.State != nil:
		status = e.State.String()
	case e.Err != nil:
		status = e.Err.Error()
	}
	if errors.Is(e.Err, exec.ErrWaitDelay) {
		status += ", and something it started kept its output open"
	}
	return fmt.Sprintf("%s (pid %d) %s: %s", e.Name, e.Pid, what, status)
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the process's exit status, or -1 if a signal ended it.
func (e *ExitError) ExitCode() int {
	if e.State == nil {
		return -1
	}
	return e.State.ExitCode()
}
