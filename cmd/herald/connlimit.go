package main

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// connLimit is the public listener with a bound on the connections open
// at once: plain HTTP, WebSockets and HTTP streams alike, each a file
// descriptor. --max-connections bounds only the last two, so without it
// idle keep-alive connections could take every descriptor the open-file
// limit allows, and the embedded NATS store, failing to open a message
// block, would refuse every write until restarted.
//
// At the bound Accept waits for a connection to close (the kernel holds
// new ones in the listen backlog) rather than failing or spinning. So
// that idle keep-alive connections do not hold every slot until
// IdleTimeout, keep-alives are turned off at the high-water mark, which
// closes the idle ones and makes the busy ones close after their request,
// and on again once the count has fallen to the low-water mark.
type connLimit struct {
	net.Listener
	slots      chan struct{} // one per open connection, and one for an Accept under way
	conns      atomic.Int64  // connections accepted and not closed
	high, low  int           // keep-alives go off at high, on again at low
	keepAlives func(on bool) // http.Server.SetKeepAlivesEnabled
	logger     *slog.Logger

	toggle   sync.Mutex // orders the calls of keepAlives
	shedding bool       // keep-alives are off: the count reached high and has not fallen to low since
	draining bool       // endKeepAlives ran: they stay off

	waits    atomic.Uint64 // Accepts that found every slot taken and a client waiting
	lastWarn atomic.Int64  // unix nanos of the last "at the cap" warning

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// connLimitWarnEvery spaces out the warnings that the listener is full.
const connLimitWarnEvery = time.Minute

// connLimitBacklogEvery is how often an Accept waiting for a slot looks
// for a client waiting in the listen backlog, until it sees one.
const connLimitBacklogEvery = 100 * time.Millisecond

// newConnLimit bounds l to n connections open at once (at least 1),
// turning keep-alives off through keepAlives near the bound. maxConns is
// --max-connections, the bound on the WebSockets and HTTP streams among
// them, which the low-water mark stays above where n leaves room for it
// (keepAliveMarks).
func newConnLimit(l net.Listener, n, maxConns int, keepAlives func(on bool), logger *slog.Logger) *connLimit {
	n = max(n, 1)
	high, low := keepAliveMarks(n, maxConns)
	return &connLimit{
		Listener:   l,
		slots:      make(chan struct{}, n), // zero-size elements: no buffer whatever n is
		high:       high,
		low:        low,
		keepAlives: keepAlives,
		logger:     logger,
		closed:     make(chan struct{}),
	}
}

// keepAliveMarks are the keep-alive marks of a listener bound to n
// connections, of which maxConns may be WebSockets and HTTP streams: the
// high-water mark a margin below n, the low-water mark the same margin
// below that. The margin is n/8, at least 1 and at most 64, so that
// enough connections come and go between the marks that keep-alives are
// not flipped at every accept; where the room between n and maxConns
// allows it (more than 2), it is smaller if need be, so that the low mark
// stays above maxConns. Otherwise a replica holding maxConns WebSockets
// and streams would count more than the low mark at every accept and
// turn keep-alives back on only once one of those closed, however few
// plain HTTP connections were left. With the default --max-connections
// the room is at least 128 (socketReserve less fdReserve and one per
// partition under a large open-file limit), for a margin of 63 or
// more; the low mark stays above it under any open-file limit above 8.
func keepAliveMarks(n, maxConns int) (high, low int) {
	margin := min(max(n/8, 1), 64)
	if room := n - maxConns; room > 2 {
		margin = min(margin, (room-1)/2) // n - 2*margin > maxConns
	}
	return n - margin, n - 2*margin
}

// Accept waits for a free slot, then for a connection.
func (l *connLimit) Accept() (net.Conn, error) {
	if err := l.acquire(); err != nil {
		return nil, err
	}
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	l.adjustKeepAlives(int(l.conns.Add(1)))
	if tc, ok := c.(*net.TCPConn); ok {
		return &limitedTCPConn{TCPConn: tc, slot: slot{limit: l}}, nil
	}
	return &limitedConn{Conn: c, slot: slot{limit: l}}, nil
}

// acquire takes a slot, waiting for one while every slot is taken; it
// fails once the listener is closed.
func (l *connLimit) acquire() error {
	select {
	case <-l.closed:
		return net.ErrClosed
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	// Every slot is taken. The server's accept loop comes here again at
	// once whether or not anyone is dialling, so the wait is counted, and
	// warned about, only once a client is seen waiting in the backlog.
	look := time.NewTicker(connLimitBacklogEvery)
	defer look.Stop()
	for looking := look.C; ; {
		if looking != nil && l.clientWaits() {
			l.waits.Add(1)
			l.warnFull()
			looking = nil
		}
		select {
		case <-l.closed:
			return net.ErrClosed
		case l.slots <- struct{}{}:
			// A client that came between two looks, and is now taken
			// from the backlog, waited too.
			if looking != nil && l.clientWaits() {
				l.waits.Add(1)
				l.warnFull()
			}
			return nil
		case <-looking:
		}
	}
}

// clientWaits says whether a client waits to be accepted; true where
// that cannot be told.
func (l *connLimit) clientWaits() bool {
	waiting, known := clientBacklogged(l.Listener)
	return waiting || !known
}

func (l *connLimit) release() { <-l.slots }

// connClosed frees the slot of an accepted connection that was closed.
func (l *connLimit) connClosed() {
	l.conns.Add(-1)
	l.release()
}

// warnFull says, at most once a minute, that new clients wait.
func (l *connLimit) warnFull() {
	now := time.Now().UnixNano()
	last := l.lastWarn.Load()
	if now-last < int64(connLimitWarnEvery) || !l.lastWarn.CompareAndSwap(last, now) {
		return
	}
	l.logger.Warn("the HTTP listener holds as many connections as the open-file limit allows: new clients wait to be accepted "+
		"until one closes; raise the limit (`ulimit -n`, LimitNOFILE)",
		"max_accepted_connections", l.capacity(), "waits", l.waited())
}

// adjustKeepAlives turns keep-alives off when an Accept brings the open
// connections (n) to the high-water mark, and on again when one finds
// them down to the low-water mark, unless the drain has turned them off
// for good. Turning them off closes idle connections, whose Close frees
// their slots: no lock that Close takes is held here.
func (l *connLimit) adjustKeepAlives(n int) {
	l.toggle.Lock()
	defer l.toggle.Unlock()
	switch {
	case !l.shedding && n >= l.high:
		l.shedding = true
		if !l.draining {
			l.keepAlives(false)
		}
	case l.shedding && n <= l.low:
		l.shedding = false
		if !l.draining {
			l.keepAlives(true)
		}
	}
}

// endKeepAlives turns keep-alives off for good (the drain): clients on
// kept-alive connections are told to reconnect after their next request.
func (l *connLimit) endKeepAlives() {
	l.toggle.Lock()
	defer l.toggle.Unlock()
	l.draining = true
	l.keepAlives(false)
}

// open is how many accepted connections are open.
func (l *connLimit) open() int { return int(l.conns.Load()) }

// capacity is how many connections may be open at once.
func (l *connLimit) capacity() int { return cap(l.slots) }

// waited is how many Accepts found every slot taken while a client
// waited to be accepted.
func (l *connLimit) waited() uint64 { return l.waits.Load() }

// Close closes the listener and wakes an Accept waiting for a slot.
// Connections already accepted stay open.
func (l *connLimit) Close() error {
	l.closeOnce.Do(func() {
		close(l.closed)
		l.closeErr = l.Listener.Close()
	})
	return l.closeErr
}

// slot is the listener's slot an accepted connection holds until it is
// closed, by net/http or by whoever hijacked it.
type slot struct {
	limit    *connLimit
	released atomic.Bool
}

// free frees the slot, once however often it is called.
func (s *slot) free() {
	if s.released.CompareAndSwap(false, true) {
		s.limit.connClosed()
	}
}

// limitedTCPConn is an accepted TCP connection holding a slot. It embeds
// the *net.TCPConn itself, not the net.Conn interface, so that what net
// and net/http find on the concrete type stays reachable: writev for
// net.Buffers (each WebSocket frame's parts in one system call, see the
// server's deadlineConn.writeFrameParts), sendfile and splice
// (ReadFrom), SyscallConn, CloseWrite.
type limitedTCPConn struct {
	*net.TCPConn
	slot slot
}

// Close closes the connection and frees its slot, once however often it
// is called.
func (c *limitedTCPConn) Close() error {
	err := c.TCPConn.Close()
	c.slot.free()
	return err
}

// limitedConn is limitedTCPConn for a listener of another kind.
type limitedConn struct {
	net.Conn
	slot slot
}

// Close closes the connection and frees its slot, once however often it
// is called.
func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.slot.free()
	return err
}

// SyscallConn exposes the socket, which the server's socket parker and
// direct writes wait on and write to.
func (c *limitedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// CloseWrite half-closes the connection, as net/http does before closing
// one whose request it refused, so the client reads the answer.
func (c *limitedConn) CloseWrite() error {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return errors.ErrUnsupported
	}
	return cw.CloseWrite()
}
