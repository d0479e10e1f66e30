package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
//
// Where sockets can be parked (see wspark.go), an idle socket has no
// goroutine at all, and the reader, which then lives only from one input
// to the next park, reads and handles messages itself.

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

// deadlineConn is the connection the websocket.Conn holds.
//
// Once sealed, after the handshake, it refuses gorilla's writes. Every
// frame is written by the socket's writer of the moment (see
// outQueue.claim) through writeFrame, whereas gorilla writes from the
// reader: its answers to pings and closes and its close frames for a
// message over the read limit or a broken frame. Such a write could land
// between the part of a frame writeNow wrote and its rest, corrupting the
// stream; wsConn answers those through its writer instead (onPing,
// onPeerClose, readFailed).
//
// It also passes a write deadline on only when it changes: setting one
// re-arms a runtime timer, and wsConn.extendWriteDeadline and writeClaimed
// often set the one already set.
type deadlineConn struct {
	net.Conn

	sealed bool          // set before the socket is served
	park   *parkedReader // set before the socket is served; nil: the reader is never parked

	// refusedClose is the code of the close frame gorilla tried to write
	// once sealed, 0 if none. gorilla returns ErrReadLimit both for a
	// message over the read limit, after trying to send 1009, and for a
	// 64-bit frame length with its most significant bit set, which it
	// reads as negative and refuses with no close of its own: readFailed
	// tells them apart by it. gorilla writes only from the reader, and
	// only as it fails, so the reader alone writes and reads it.
	refusedClose int

	mu            sync.Mutex
	writeDeadline time.Time // the last one passed on
	// closeBy, once set (see limitWriteDeadline), is a write deadline no
	// later one passes: an abrupt close's, which a writer extending its
	// deadline at the same moment must not push back to a full
	// WriteTimeout.
	closeBy time.Time
}

// errNotTheWriter is what gorilla gets when it writes to a sealed socket.
var errNotTheWriter = errors.New("server: only the socket's writer writes to it")

// Write is gorilla's: refused once sealed, noting the code of a refused
// close frame (see refusedClose).
func (d *deadlineConn) Write(b []byte) (int, error) {
	if d.sealed {
		if code, ok := serverCloseCode(b); ok {
			d.refusedClose = code
		}
		return 0, errNotTheWriter
	}
	return d.Conn.Write(b)
}

// serverCloseCode is the code of frame, if it is a server's close frame
// (unmasked) with one.
func serverCloseCode(frame []byte) (int, bool) {
	if len(frame) < 4 || frame[0] != 0x80|opClose || frame[1]&0x7f < 2 {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(frame[2:4])), true
}

// SetWriteDeadline is gorilla's, before each of its writes: ignored once
// sealed, as those writes are refused.
func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	if d.sealed {
		return nil
	}
	return d.setWriteDeadline(t)
}

// setWriteDeadline sets the write deadline for the socket's writer, no
// later than one limitWriteDeadline set.
func (d *deadlineConn) setWriteDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.setWriteDeadlineLocked(t)
}

// limitWriteDeadline sets the write deadline to t and keeps every later
// one at t or before: a write stuck on a peer that does not read gives up
// by then, whatever the writer sets meanwhile.
func (d *deadlineConn) limitWriteDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closeBy = t
	return d.setWriteDeadlineLocked(t)
}

func (d *deadlineConn) setWriteDeadlineLocked(t time.Time) error {
	if !d.closeBy.IsZero() && (t.IsZero() || t.After(d.closeBy)) {
		t = d.closeBy // no deadline (zero) is the latest of all
	}
	if t.Equal(d.writeDeadline) {
		return nil
	}
	if err := d.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	d.writeDeadline = t
	return nil
}

// writeFrame writes for the socket's writer: whole frames, or the rest of
// one.
func (d *deadlineConn) writeFrame(b []byte) error {
	_, err := d.Conn.Write(b)
	return err
}

// writeFrameParts writes one frame given in parts, with one system call
// where the connection allows (writev), so that a large payload is not
// copied next to its header for every socket.
func (d *deadlineConn) writeFrameParts(parts net.Buffers) error {
	_, err := parts.WriteTo(d.Conn)
	return err
}

// SetDeadline sets both deadlines on the connection.
func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.Conn.SetDeadline(t); err != nil {
		return err
	}
	d.writeDeadline = t
	d.readDeadlineSet(t)
	return nil
}

// SetReadDeadline sets the read deadline, which only a waiting goroutine
// sees: a parked reader is woken to wait for it.
func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	if err := d.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	d.readDeadlineSet(t)
	return nil
}

func (d *deadlineConn) readDeadlineSet(t time.Time) {
	if d.park != nil {
		d.park.readDeadline(!t.IsZero())
	}
}

// Close closes the connection and wakes a parked reader to see it.
func (d *deadlineConn) Close() error {
	err := d.Conn.Close()
	if d.park != nil {
		d.park.closed()
	}
	return err
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

// serveInput reads and handles messages until the socket's input ends
// (true) or the reader parks the socket (false: the parker runs the reader
// again when there is input, see parkedReader).
func (c *wsConn) serveInput() (ended bool) {
	if c.input == nil {
		for c.readNext() {
		}
		return true
	}
	if park := c.wire().park; park != nil {
		// This goroutine ends at the next park, and its stack with it, so
		// it reads and handles messages itself. It begins with a read: it
		// was started for the socket's first message or woken for input.
		for {
			c.input.ready()
			if !c.readNext() {
				return true
			}
			if c.input.br.Buffered() == 0 && park.park() {
				return false
			}
		}
	}
	done := make(chan bool, 1)
	for {
		c.input.ready()
		go c.readNextInto(done)
		if !<-done {
			return true
		}
	}
}

func (c *wsConn) readNextInto(done chan<- bool) { done <- c.readNext() }

// keepaliveMax is the longest keepalive frame, read without allocating.
const keepaliveMax = len(framePong)

// readNext reads one message and acts on it. It reports false once the
// socket's input has ended (closed, failed, or past a deadline).
func (c *wsConn) readNext() bool {
	if c.input != nil {
		took, ok := c.takeControlFrames()
		if !ok {
			return false
		}
		if took && c.input.br.Buffered() == 0 {
			return true // nothing but pings and pongs: nothing to wait for
		}
	}
	kind, r, err := c.ws.NextReader()
	if err != nil {
		return c.readFailed(err)
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
		c.carryOut(c.machine.receiveBinary())
	case c.input != nil:
		c.handle(buf.Bytes()) // already on a short-lived goroutine
	default:
		c.handleOffStack(buf.Bytes())
	}
	return true
}

// takeControlFrames handles the pings and pongs at the head of the socket's
// buffered input, and reports whether it took any, and ok false once it
// failed the connection (see below). gorilla's NextReader
// handles them too, but then waits for a message: an idle client that
// answers the keepalive's WebSocket ping with a pong (browsers and gorilla
// do) would hold the reader in it until its next message, where it should
// park (TestIdleSocketStack). Between messages gorilla is at a frame's
// start, so a whole control frame can be taken from under it. Only the
// exact frames a client sends are taken: final, no reserved bits, masked,
// a payload of at most 125 bytes, and all of it buffered; a close, or
// anything else, is left to gorilla, which checks it and reports errors.
//
// Except a close frame whose body is 1 byte: a body must begin with a
// 2-byte code (RFC 6455 section 5.5.1), but gorilla takes any body
// shorter than that for none (1005), which onPeerClose would answer as a
// clean close. Its header says enough, so the connection fails here with
// 1002 (Autobahn 7.3.2). One that gorilla reads itself (between the
// fragments of a message, or behind a frame not all buffered) still gets
// the clean close: its close handler is told the same for both.
func (c *wsConn) takeControlFrames() (took, ok bool) {
	br := c.input.br
	for {
		if took && br.Buffered() < 2 {
			return took, true // never wait here: the socket may have nothing more
		}
		head, err := br.Peek(2) // reads what came when nothing is buffered yet
		if err != nil {
			return took, true // an error is for gorilla's read to report
		}
		op, n := head[0]^0x80, int(head[1]&0x7f)
		if (op != opPing && op != opPong) || head[1]&0x80 == 0 || n > 125 {
			if op == opClose && n == 1 {
				return took, c.failInput(websocket.CloseProtocolError, "close frame with a 1-byte payload")
			}
			return took, true
		}
		if br.Buffered() < 2+4+n {
			return took, true
		}
		frame, _ := br.Peek(2 + 4 + n)
		var payload [125]byte
		for i := range n {
			payload[i] = frame[6+i] ^ frame[2+i%4]
		}
		_, _ = br.Discard(2 + 4 + n)
		took = true
		if op == opPing {
			_ = c.onPing(string(payload[:n]))
		} else {
			c.touch()
		}
	}
}

// readFailed ends the reader. gorilla answers a message over the read
// limit with 1009 and a frame that breaks RFC 6455 with 1002, but those
// writes are refused (see deadlineConn), so the close frame is chosen here
// for the writer to send, and the reader waits for it before teardown.
// The client's own close was answered by onPeerClose.
func (c *wsConn) readFailed(err error) bool {
	switch {
	case errors.Is(err, websocket.ErrReadLimit) && c.wire().refusedClose == websocket.CloseMessageTooBig:
		return c.failInput(websocket.CloseMessageTooBig,
			fmt.Sprintf("Message too big: the limit is %d bytes", c.t.cfg.maxMessageBytes))
	case errors.Is(err, websocket.ErrReadLimit):
		// No 1009 tried: a frame length with its most significant bit
		// set, which RFC 6455 section 5.2 forbids, not a message too big.
		// (Or a continuation whose legal length is within the limit of
		// 2^63, overflowing gorilla's count of the message: as absurd.)
		return c.failInput(websocket.CloseProtocolError, "invalid payload length")
	case brokeFraming(err):
		return c.failInput(websocket.CloseProtocolError, strings.TrimPrefix(err.Error(), "websocket: "))
	default:
		return false // the connection ended or failed: nobody to tell
	}
}

// failInput fails the connection for what the client sent: the writer
// sends the close frame, and the reader, which ends (false), waits for it
// before teardown.
func (c *wsConn) failInput(code int, reason string) bool {
	c.closeWith(code, reason)
	c.awaitClose = true
	return false
}

// brokeFraming says whether gorilla refused what the client sent as
// frames (a bad opcode, say). Its other read errors are the connection's
// (a net.Error, the end of input as a 1006 CloseError), a close frame
// from the client (a CloseError), or the read limit.
func brokeFraming(err error) bool {
	var ne net.Error
	var ce *websocket.CloseError
	return !errors.As(err, &ne) && !errors.As(err, &ce) && !errors.Is(err, io.EOF) &&
		!errors.Is(err, websocket.ErrReadLimit)
}
