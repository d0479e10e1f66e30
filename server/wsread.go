package server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Reading a socket without a grown stack.
//
// An idle socket costs what its long-lived goroutine's stack costs, and an
// idle server does not collect, so it never shrinks stacks. A goroutine
// blocked in gorilla's ReadMessage sits sixteen frames deep and needs a
// 4 KiB stack; one blocked waiting for the socket to become readable needs
// the 2 KiB it started with. So the reader only waits (inputWaiter), and
// each message is read and handled on a short-lived goroutine whose stack
// is released when it returns. Messages are still read and handled one at
// a time, in order: the reader waits for the helper before waiting again.

// readBufferSize is each socket's read buffer: control frames need 139
// bytes and clients' messages are small; larger frames take more reads.
const readBufferSize = 512

// readerHijacker hands the upgrader a read buffer that the socket keeps a
// handle on, so the reader can tell whether a message is already buffered
// before it waits for the socket (gorilla keeps its own buffer private).
type readerHijacker struct {
	http.ResponseWriter
	br *bufio.Reader // set by Hijack
}

func (h *readerHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	conn = &deadlineConn{Conn: conn}
	if brw.Reader.Buffered() > 0 {
		return conn, brw, nil // the upgrader refuses data sent before the handshake
	}
	h.br = bufio.NewReaderSize(conn, readBufferSize)
	return conn, bufio.NewReadWriter(h.br, brw.Writer), nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (h *readerHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// deadlineConn passes a write deadline on only when it changes. gorilla
// sets the connection's write deadline before every frame, and each setting
// re-arms a runtime timer; wsConn.extendWriteDeadline moves the deadline
// only now and then, so most of those calls repeat the last one.
type deadlineConn struct {
	net.Conn

	mu            sync.Mutex
	writeDeadline time.Time // the last one passed on
}

func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.Equal(d.writeDeadline) {
		return nil
	}
	if err := d.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	d.writeDeadline = t
	return nil
}

// SetDeadline sets both deadlines on the connection.
func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.Conn.SetDeadline(t); err != nil {
		return err
	}
	d.writeDeadline = t
	return nil
}

// SyscallConn exposes the socket to inputWaiter.
func (d *deadlineConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := d.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// inputWaiter blocks until a socket has input to read, on a shallow stack.
type inputWaiter struct {
	br   *bufio.Reader // the websocket.Conn's read buffer
	wait func() error  // waits until the connection is readable, closed or past its deadline
}

// newInputWaiter returns nil when conn cannot be waited on without reading
// it (not a plain TCP or Unix socket, or not on this platform); the reader
// then reads on its own stack.
func newInputWaiter(conn net.Conn, br *bufio.Reader) *inputWaiter {
	if br == nil {
		return nil
	}
	wait := readableWaiter(conn)
	if wait == nil {
		return nil
	}
	return &inputWaiter{br: br, wait: wait}
}

// ready returns when the next read will not block for want of bytes, or
// will fail: bytes are buffered or have arrived, or the connection ended.
// Errors are left for the read to report.
func (w *inputWaiter) ready() {
	if w.br.Buffered() > 0 {
		return
	}
	_ = w.wait()
}

// serveInput reads and handles messages until the socket's input ends.
func (c *wsConn) serveInput() {
	if c.input == nil {
		for c.readNext() {
		}
		return
	}
	done := make(chan bool, 1)
	for {
		c.input.ready()
		go c.readNextInto(done)
		if !<-done {
			return
		}
	}
}

func (c *wsConn) readNextInto(done chan<- bool) { done <- c.readNext() }

// keepaliveMax is the longest keepalive frame, read without allocating.
const keepaliveMax = len(framePong)

// readNext reads one message and acts on it. It reports false once the
// socket's input has ended (closed, failed, or past a deadline).
func (c *wsConn) readNext() bool {
	kind, r, err := c.ws.NextReader()
	if err != nil {
		return false
	}
	c.touch()
	// Keepalive frames, the only traffic of an idle socket, are read into
	// the stack: tens of thousands of sockets pinged every interval would
	// otherwise leave garbage that an idle server is slow to collect.
	var head [keepaliveMax + 1]byte
	n, err := io.ReadFull(r, head[:])
	whole := errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	if !whole && err != nil {
		return c.readFailed(err)
	}
	if whole && !c.isClosing() && kind == websocket.TextMessage && c.keepaliveFastPath(head[:n]) {
		return true
	}
	var buf bytes.Buffer
	buf.Write(head[:n])
	if !whole {
		if _, err := buf.ReadFrom(r); err != nil {
			return c.readFailed(err)
		}
	}
	switch {
	case c.isClosing():
		// Draining until the peer answers our close frame.
	case kind != websocket.TextMessage:
		c.closeWith(closeBadRequest, "Invalid message: binary frames are not supported")
	case c.input != nil:
		c.handle(buf.Bytes()) // already on a short-lived goroutine
	default:
		c.handleOffStack(buf.Bytes())
	}
	return true
}

func (c *wsConn) readFailed(err error) bool {
	if errors.Is(err, websocket.ErrReadLimit) {
		c.t.metrics.closes.WithLabelValues("1009").Inc() // gorilla sent it
	}
	return false
}
