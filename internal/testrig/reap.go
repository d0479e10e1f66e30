package testrig

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// child is a child process of this one, as /proc/PID/stat shows it.
type child struct {
	pid, pgid int
	state     byte // R, S, D, Z, ...
	comm      string
}

// procStat parses /proc/PID/stat: "pid (comm) state ppid pgrp ...".
func procStat(b []byte) (comm string, state byte, ppid, pgid int, err error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return "", 0, 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return "", 0, 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	if ppid, err = strconv.Atoi(string(f[1])); err == nil {
		pgid, err = strconv.Atoi(string(f[2]))
	}
	return string(b[open+1 : end]), f[0][0], ppid, pgid, err
}

// childrenOf lists the children of process parent.
func childrenOf(parent int) ([]child, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var kids []child
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // it has exited
		}
		comm, state, ppid, pgid, err := procStat(b)
		if err != nil || ppid != parent {
			continue
		}
		kids = append(kids, child{pid: pid, pgid: pgid, state: state, comm: comm})
	}
	return kids, nil
}

// reapStrays kills and reaps every child of this process until there is
// none, or killWait has passed. Called when the rig runs nothing, these are processes
// that the rig's processes left behind (this process is their subreaper):
// a grandchild that outlived its parent, or one that left its process
// group (e.g. a browser started in a session of its own).
func reapStrays(logf func(string, ...any)) error {
	// Strays are killed with SIGKILL, so they go at once: no grace period,
	// and no reason to give up early when the caller is in a hurry.
	ctx, cancel := context.WithTimeout(context.Background(), killWait)
	defer cancel()
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)
	// A stray's own children become this process's when it dies, without a
	// SIGCHLD for that; the ticker looks again.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	self := os.Getpid()
	killed := map[int]bool{}
	for {
		kids, err := childrenOf(self)
		if err != nil {
			return fmt.Errorf("reap processes left behind: %w", err)
		}
		if len(kids) == 0 {
			return nil
		}
		left := kids[:0]
		for _, k := range kids {
			if k.state != 'Z' {
				if !killed[k.pid] {
					killed[k.pid] = true
					logf("killing %s (pid %d), left behind by a process of this run", k.comm, k.pid)
				}
				if k.pgid == k.pid {
					_ = syscall.Kill(-k.pid, syscall.SIGKILL)
				}
				_ = syscall.Kill(k.pid, syscall.SIGKILL)
			}
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(k.pid, &ws, syscall.WNOHANG, nil); pid != k.pid {
				left = append(left, k)
			}
		}
		if len(left) == 0 {
			// Every one was reaped; the children of a stray that was not
			// its group's leader are ours now. Look again.
			continue
		}
		select {
		case <-sigchld:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("reap processes left behind: %d still running (first: %s, pid %d): %w",
				len(left), left[0].comm, left[0].pid, context.Cause(ctx))
		}
	}
}
