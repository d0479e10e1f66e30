//go:build linux && (amd64 || arm64 || arm || riscv64 || loong64 || ppc64le || ppc64 || mips64 || mips64le)

package server

import (
	"net"
	"syscall"
	"unsafe"
)

// readableWaiter returns a function that blocks until conn is readable
// (bytes, end of stream or an error), is closed, or passes its read
// deadline, without consuming anything; nil if conn has no socket to ask.
//
// It peeks at one byte without blocking: if none is there it lets the
// runtime poller park the goroutine until the socket is readable, and asks
// again. The raw recvfrom call allocates nothing (the wrappers in syscall
// and x/sys/unix allocate a source-address buffer on every call), which
// matters when tens of thousands of idle sockets are pinged every interval.
func readableWaiter(conn net.Conn) func() error {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	peek := func(fd uintptr) bool {
		var b [1]byte
		_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		return errno != syscall.EAGAIN && errno != syscall.EINTR
	}
	return func() error { return raw.Read(peek) }
}
