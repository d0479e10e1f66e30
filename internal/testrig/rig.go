// Package testrig runs the processes of a test driver (e2e, the cluster
// failure test) and guarantees they end with the run: each process leads a
// process group of its own, which is signalled and killed as a whole; when
// the run ends (its context is cancelled by a signal, a deadline or a
// service that exited early, or Close is called) every process is stopped
// through exec.Cmd's Cancel and WaitDelay, in layers (clients before
// servers before what the servers use), with one SIGTERM and then SIGKILL;
// and Close then kills and reaps anything they left behind outside their
// groups, which this process, a child subreaper, inherits. It also waits
// for readiness over HTTP with a deadline and finds free loopback ports.
//
// Linux only. One Rig per process: Close reaps every child of the process
// that the rig is not running.
package testrig

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Options configure a Rig.
type Options struct {
	// Logf reports what the rig does on its own: each start (with the PID),
	// a process killed because it did not stop in time, a stray process
	// killed at Close. Nil: nothing is reported. It may be called from
	// several goroutines at once.
	Logf func(format string, args ...any)
}

// ErrClosed is the cause of a rig's context after Close.
var ErrClosed = errors.New("testrig: closed")

// Rig starts processes and stops them. Its methods may be called from
// several goroutines.
type Rig struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	logf   func(string, ...any)

	mu     sync.Mutex
	procs  []*Proc
	closed bool

	supervisors sync.WaitGroup // one goroutine per started process
}

// New returns a rig whose processes run until ctx ends or Close (then each
// gets SIGTERM once the higher layers have exited, and SIGKILL after its
// grace period). It makes this
// process a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so that what the
// rig's processes leave behind, even outside their process groups, becomes
// its child and Close can kill it.
func New(ctx context.Context, opts Options) (*Rig, error) {
	const prSetChildSubreaper = 36
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		return nil, fmt.Errorf("become a child subreaper: %w", errno)
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	rctx, cancel := context.WithCancelCause(ctx)
	return &Rig{ctx: rctx, cancel: cancel, logf: logf}, nil
}

// Context is done when the run is over: the context given to New ended, a
// service exited early (the cause is its *ExitError), or Close was called
// (ErrClosed).
func (r *Rig) Context() context.Context { return r.ctx }

// Start starts a process in a new process group.
func (r *Rig) Start(s Spec) (*Proc, error) {
	if s.Name == "" {
		s.Name = filepath.Base(s.Path)
	}
	grace := s.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("start %s: %w", s.Name, ErrClosed)
	}
	if r.ctx.Err() != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, context.Cause(r.ctx))
	}
	p := &Proc{
		name:    s.Name,
		grace:   grace,
		layer:   s.Layer,
		service: s.Service,
		logf:    r.logf,
		done:    make(chan struct{}),
	}
	cmd := exec.CommandContext(r.ctx, s.Path, s.Args...)
	cmd.Dir, cmd.Env = s.Dir, s.Env
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = s.Stdout, s.Stderr, s.ExtraFiles
	// Pdeathsig is the last resort should this process be SIGKILLed: the
	// leader gets SIGKILL too (its group may survive it; nothing can be
	// done about that from a dead process).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// When the run ends: once the processes of higher layers have exited,
	// SIGTERM to the group; exec kills the leader if it is still there
	// after the grace period, whereupon supervise kills the group.
	cmd.Cancel = func() error {
		p.expected.Store(true)
		r.waitAbove(s.Layer)
		return p.signalGroup(cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = grace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p.pid = cmd.Process.Pid
	r.procs = append(r.procs, p)
	r.supervisors.Go(func() { p.supervise(cmd, r.cancel) })
	r.logf("started %s (pid %d)", p.name, p.pid)
	return p, nil
}

// waitAbove waits until every process of a layer above layer has exited,
// or for as long as stopping them may take.
func (r *Rig) waitAbove(layer int) {
	r.mu.Lock()
	var above []*Proc
	bound := time.Duration(0)
	longest := map[int]time.Duration{}
	for _, p := range r.procs {
		if p.layer > layer {
			above = append(above, p)
			longest[p.layer] = max(longest[p.layer], p.grace+killWait)
		}
	}
	r.mu.Unlock()
	for _, d := range longest {
		bound += d
	}
	t := time.NewTimer(bound)
	defer t.Stop()
	for _, p := range above {
		select {
		case <-p.done:
		case <-t.C:
			return
		}
	}
}

// Run starts a process and waits for it to exit. The error is an
// *ExitError if it exited with a status other than 0; if ctx ends first,
// the process is stopped.
func (r *Rig) Run(ctx context.Context, s Spec) error {
	p, err := r.Start(s)
	if err != nil {
		return err
	}
	if err := p.Wait(ctx); err != nil {
		var exit *ExitError
		if !errors.As(err, &exit) {
			// With its grace period: ctx has ended.
			_ = p.Stop(context.WithoutCancel(ctx))
		}
		return err
	}
	return nil
}

// Close ends the run if it has not ended (stopping every process as when
// the context given to New ends: the highest layer first, each process
// with SIGTERM and then SIGKILL after its grace period), waits for the
// processes (if ctx ends first, it kills them all with SIGKILL), and then
// kills and reaps every other child of this process: what the rig's
// processes left behind. It returns an error only if some process could not
// be stopped or reaped. Afterwards Start fails.
func (r *Rig) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	procs := slices.Clone(r.procs)
	r.mu.Unlock()
	r.cancel(ErrClosed)

	var errs []error
	if !allDone(ctx.Done(), procs) {
		// No more time for grace periods: SIGKILL whatever is left.
		for _, p := range procs {
			if !p.Exited() {
				p.logf("%s (pid %d): no time to wait for it to stop (%v); killing its process group", p.name, p.pid, context.Cause(ctx))
				_ = p.signalGroup(p.pid, syscall.SIGKILL)
			}
		}
		late := time.NewTimer(killWait)
		defer late.Stop()
		if !allDone(late.C, procs) {
			for _, p := range procs {
				if !p.Exited() {
					errs = append(errs, fmt.Errorf("stop %s (pid %d): still running %s after SIGKILL", p.name, p.pid, killWait))
				}
			}
		}
	}
	if len(errs) == 0 {
		// Every process has exited, so every supervisor returns.
		r.supervisors.Wait()
	}
	if err := reapStrays(r.logf); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// allDone waits until every process has exited (true) or stop is closed or
// receives (false).
func allDone[T any](stop <-chan T, procs []*Proc) bool {
	for _, p := range procs {
		select {
		case <-p.done:
		case <-stop:
			return false
		}
	}
	return true
}
