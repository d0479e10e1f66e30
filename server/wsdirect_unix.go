//go:build unix

package server

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// directWriter writes to a socket without ever waiting for it. It is
// used only by the socket's writer of the moment (see outQueue.claim), so
// its fields need no lock; the callback is bound once so that a write
// allocates nothing.
type directWriter struct {
	raw  syscall.RawConn
	call func(fd uintptr) bool

	b   []byte
	n   int
	err error
}

// directWriterFor returns a directWriter for conn's socket; nil if conn
// has none.
func directWriterFor(conn net.Conn) *directWriter {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	d := &directWriter{raw: raw}
	d.call = d.once
	return d
}

// write writes as much of b as the socket takes now: n is 0 when its send
// buffer is full or its write deadline has passed (nothing was written);
// err is a failure of the socket.
func (d *directWriter) write(b []byte) (n int, err error) {
	d.b, d.n, d.err = b, 0, nil
	rerr := d.raw.Write(d.call)
	n, err = d.n, d.err
	d.b, d.err = nil, nil
	switch {
	case rerr != nil && errors.Is(rerr, os.ErrDeadlineExceeded):
		return 0, errPastDeadline
	case rerr != nil:
		return 0, rerr
	case errors.Is(err, syscall.EAGAIN):
		return 0, nil
	}
	return n, err
}

func (d *directWriter) once(fd uintptr) bool {
	for {
		n, err := syscall.Write(int(fd), d.b)
		if err == syscall.EINTR {
			continue
		}
		d.n, d.err = max(n, 0), err
		return true // never wait for the socket
	}
}
