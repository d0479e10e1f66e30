package server

import (
	"errors"
	"sync/atomic"
	"syscall"
)

// Parking idle sockets: no goroutine per socket.
//
// A subscriber's socket carries almost no input: its subscribe, then a
// pong now and then. A goroutine waiting for that input costs its 2 KiB
// starting stack, and the garbage collector's goal grows with stacks, so
// an idle socket cost about 4 KiB of resident memory for the wait alone.
// Instead, a reader with nothing buffered hands its socket to the replica's
// parker (one epoll instance that the runtime's poller watches, see
// wspark_linux.go) and returns; when the socket has input, is closed, or
// is given a read deadline, a new goroutine runs the reader again
// (wsConn.serve). Messages are still read and handled one at a time and in
// order: only one reader runs at a time, and only it parks the socket.

// errNoParker is newParker's and arm's error where the platform has no
// parker; the server then keeps a reader goroutine per socket, silently.
var errNoParker = errors.New("server: sockets cannot be parked on this platform")

// Reader states: running, or parked with the parker (or about to be).
const (
	readerRunning uint32 = iota
	readerParked
)

// parkedReader is a socket's side of parking. Whoever moves it from
// parked to running (the parker on input, Close, a read deadline) starts
// the reader again; the others do nothing.
type parkedReader struct {
	p      *parker
	rc     syscall.RawConn
	resume func() // runs the socket's reader; started on a goroutine of its own

	token uint64 // the parker's key for the socket, set at the first park
	added bool   // registered with the parker; reader-owned

	state    atomic.Uint32
	deadline atomic.Bool // a read deadline is set: the reader waits on its goroutine
}

// newParkedReader returns nil when there is no parker or conn has no
// socket to watch.
func newParkedReader(p *parker, conn syscall.Conn, resume func()) *parkedReader {
	if p == nil {
		return nil
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil
	}
	return &parkedReader{p: p, rc: rc, resume: resume}
}

// park hands the socket to the parker until it has input. It reports true
// when the calling reader must return (parked, or already woken and handed
// to a new goroutine) and false when it keeps the socket and waits itself:
// a read deadline is set (the runtime enforces it only on a waiting
// goroutine), the socket is closed or the parker is.
func (r *parkedReader) park() bool {
	if !r.added {
		r.p.register(r)
		r.added = true
	}
	// Nothing of r's but its atomics is touched from here on: once the
	// socket is armed or the state stored, a new goroutine may run the
	// reader.
	r.state.Store(readerParked)
	if !r.deadline.Load() && r.p.arm(r) == nil {
		return true
	}
	return !r.state.CompareAndSwap(readerParked, readerRunning)
}

// wake starts the reader again if it is parked.
func (r *parkedReader) wake() {
	if r.state.CompareAndSwap(readerParked, readerRunning) {
		go r.resume()
	}
}

// readDeadline is told of every read deadline set on the socket: while one
// is set the reader does not park, and a parked one is woken to wait for
// it.
func (r *parkedReader) readDeadline(set bool) {
	r.deadline.Store(set)
	if set {
		r.wake()
	}
}

// closed is told when the socket is closed: a parked reader is woken to
// see it and tear down, which the parker cannot do, as closing the socket
// drops it from the epoll instance.
func (r *parkedReader) closed() { r.wake() }

// forget drops the socket from the parker, at teardown.
func (r *parkedReader) forget() {
	if r.added {
		r.p.forget(r.token)
	}
}
