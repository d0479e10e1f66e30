//go:build linux || darwin || dragonfly || freebsd || netbsd || openbsd

package main

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// clientBacklogged says whether a client waits in l's listen backlog: a
// listening socket is readable while it holds a connection not yet
// accepted. known is false when l has no socket to look at.
func clientBacklogged(l net.Listener) (waiting, known bool) {
	sc, ok := l.(syscall.Conn)
	if !ok {
		return false, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false, false
	}
	var ready int
	if err := raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		ready, _ = unix.Poll(fds, 0) // an error (EINTR) reads as nobody waiting: asked again shortly
	}); err != nil {
		return false, true // closed: the Accept ends on its own
	}
	return ready > 0, true
}
