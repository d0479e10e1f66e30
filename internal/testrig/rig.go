// Package testrig runs the processes of a test driver (e2e, the cluster
// failure test) and guarantees they end with the run: each process leads a
// process group of its own, which is signalled and killed as a whole;
// cancelling the run's context (a signal, a deadline, a service that exited
// early) stops every process; and Close stops them in layers, then kills and
// reaps anything they left behind outside their groups, which this process,
// a child subreaper, inherits. It also waits for readiness over HTTP with a
// deadline and finds free loopback ports.
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

// New returns a rig whose processes run until ctx ends (then each gets
// SIGTERM, and SIGKILL after its grace period) or Close. It makes this
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
	cmd := exec.CommandContext(r.ctx, s.Path, s.Args...)
	cmd.Dir, cmd.Env = s.Dir, s.Env
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = s.Stdout, s.Stderr, s.ExtraFiles
	// Pdeathsig is the last resort should this process be SIGKILLed: the
	// leader gets SIGKILL too (its group may survive it; nothing can be
	// done about that from a dead process).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// When the run ends: SIGTERM to the group, and after the grace period
	// exec kills the leader, whereupon supervise kills the group.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = grace
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", s.Name, err)
	}
	p := &Proc{
		name:    s.Name,
		pid:     cmd.Process.Pid,
		grace:   grace,
		layer:   s.Layer,
		service: s.Service,
		logf:    r.logf,
		done:    make(chan struct{}),
	}
	r.procs = append(r.procs, p)
	r.supervisors.Go(func() { p.supervise(cmd, r.cancel) })
	r.logf("started %s (pid %d)", p.name, p.pid)
	return p, nil
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

// Close stops every process still running, the highest layer first (each
// layer's processes together, each with SIGTERM and then SIGKILL after its
// grace period, or at once when ctx ends), waits for them, and then kills
// and reaps every other child of this process: what the rig's processes
// left behind. It returns an error only if some process could not be
// stopped or reaped. Afterwards Start fails.
func (r *Rig) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	procs := slices.Clone(r.procs)
	r.mu.Unlock()

	var errs []error
	slices.SortStableFunc(procs, func(a, b *Proc) int { return b.layer - a.layer })
	for len(procs) > 0 {
		layer := procs[0].layer
		n := 1
		for n < len(procs) && procs[n].layer == layer {
			n++
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, p := range procs[:n] {
			if p.Exited() {
				continue
			}
			wg.Go(func() {
				err := p.Stop(ctx)
				var exit *ExitError
				if err != nil && !errors.As(err, &exit) {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		procs = procs[n:]
	}
	if len(errs) == 0 {
		// Every process has exited, so every supervisor returns.
		r.supervisors.Wait()
	}
	if err := reapStrays(r.logf); err != nil {
		errs = append(errs, err)
	}
	r.cancel(ErrClosed)
	return errors.Join(errs...)
}
