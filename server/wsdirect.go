package server

import (
	"errors"
	"sync"
	"time"
)

// errPastDeadline: a direct write found the socket's write deadline passed
// and wrote nothing.
var errPastDeadline = errors.New("write deadline passed")

// frameBuffers recycles the buffers frames are built in for writeNow.
type frameBuffers struct{ pool sync.Pool }

func (b *frameBuffers) get() *[]byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return p
	}
	buf := make([]byte, 0, 1024)
	return &buf
}

// put keeps buffers of ordinary size; an occasional huge frame's buffer
// is left to the collector.
func (b *frameBuffers) put(p *[]byte) {
	if cap(*p) <= 64<<10 {
		*p = (*p)[:0]
		b.pool.Put(p)
	}
}

// writeNow writes a next frame for op on the calling goroutine, sparing
// the start of a writer goroutine, when the socket has no writer running,
// nothing queued, and room in its send buffer for the frame: the write
// never waits. It reports false, having written nothing, when the frame
// must be queued instead.
func (c *wsConn) writeNow(op *operation, p *payload) bool {
	if !c.claimDirect() {
		return false
	}
	if op.finished.Load() {
		c.queue.release(nil)
		return true // the client completed it: silence for this id
	}
	buf := c.t.frames.get()
	frame := appendOpFrameHead((*buf)[:0], c.machine.proto, frameNext, op.idJSON, len(p.bytes))
	var written, ok bool
	if len(p.bytes) > largePayload {
		written, ok = c.writeSharedClaimed(buf, frame, p)
	} else {
		frame = append(frame, p.bytes...)
		frame = append(frame, '}')
		written, ok = c.writeClaimed(buf, frame)
	}
	if written {
		c.t.metrics.delivered(p)
	}
	return ok
}

// writeFrameNow is writeNow for a connection-level frame: a text message
// (a keepalive ping, say: with tens of thousands of idle sockets, starting
// a writer for each ping was much of what they cost) or a pong.
func (c *wsConn) writeFrameNow(opcode byte, payload string) bool {
	if !c.claimDirect() {
		return false
	}
	buf := c.t.frames.get()
	frame := appendFrameHeader((*buf)[:0], opcode, len(payload))
	frame = append(frame, payload...)
	_, ok := c.writeClaimed(buf, frame)
	return ok
}

// claimDirect makes the caller the socket's writer if it may write
// without queuing; writeClaimed then ends the claim.
func (c *wsConn) claimDirect() bool {
	if c.isClosing() || !c.queue.claim() {
		return false
	}
	if c.directWriter() == nil {
		c.queue.release(nil)
		return false
	}
	return true
}

// writeClaimed writes frame, built in buf, without waiting and ends the
// claim. What the socket does not take goes to the front of the queue. ok
// is false when nothing was written and the frame must be queued instead;
// written is false also when the socket failed (it is then closed, as the
// writer closes it, and the reader tears it down).
func (c *wsConn) writeClaimed(buf *[]byte, frame []byte) (written, ok bool) {
	*buf = frame
	n, err := c.writeDirect(frame)
	var rest []byte
	switch {
	case n == 0 && err == nil:
		c.t.frames.put(buf)
		c.queue.release(nil)
		return false, false
	case err != nil:
		c.cut()
	case n < len(frame):
		rest = frame[n:] // copied by release: must go out before anything else
	}
	c.queue.release(rest)
	c.t.frames.put(buf)
	return err == nil, true
}

// writeSharedClaimed is writeClaimed for a next frame with a large
// payload p, whose head is in *buf: the payload is written from its shared
// encoding (sharedFrame) rather than copied for each socket, and what the
// socket does not take is queued as a rest that refers to p, so that a
// stalled socket holds no copy of the event either.
func (c *wsConn) writeSharedClaimed(buf *[]byte, head []byte, p *payload) (written, ok bool) {
	var f sharedFrame
	*buf, f = appendSharedFrame(head, 0, p.bytes, closingBrace)
	n, err := f.writeNow(c.writeDirect)
	var rest *outItem
	switch {
	case n == 0 && err == nil:
		c.t.frames.put(buf)
		c.queue.release(nil)
		return false, false
	case err != nil:
		c.cut()
	case n < f.len():
		// What is left ends with the closing brace, the frame's last byte,
		// which the writer adds after data's bytes from off.
		head, off, _ := f.restAt(n)
		rest = &outItem{kind: frameWire, raw: string(head), data: p, off: off}
	}
	c.queue.releaseRest(rest)
	c.t.frames.put(buf)
	return err == nil, true
}

// writeDirect writes as much of b as the socket takes now, without
// waiting: n is 0 when it takes nothing; err is a failure of the socket.
// Only the socket's writer of the moment calls it.
func (c *wsConn) writeDirect(b []byte) (n int, err error) {
	n, err = c.direct.write(b)
	if errors.Is(err, errPastDeadline) {
		// The deadline the last writer set has passed, as it always has on
		// a socket idle for longer than WriteTimeout. A write that never
		// waits needs none: clear it (the next writer sets a fresh one).
		_ = c.wire().setWriteDeadline(time.Time{})
		c.writeDeadline = 0
		n, err = c.direct.write(b)
	}
	if errors.Is(err, errPastDeadline) {
		return 0, nil
	}
	return n, err
}

// sharedFrame is a frame (or an HTTP stream's chunk) with a large payload,
// head ∥ body ∥ tail, written without waiting by three writes: the head
// with the body's first sharedEdge bytes, the body but its edges straight
// from the shared encoding, and the body's last sharedEdge bytes with the
// tail. Only the edges are copied for each socket, so that neither the
// head nor the tail, a few bytes each, goes out as a packet of its own.
type sharedFrame struct {
	first   []byte // head ∥ body[:sharedEdge], built for this socket
	body    []byte // the shared payload: never written to
	last    []byte // body[len(body)-sharedEdge:] ∥ tail, built for this socket
	headLen int
	tailLen int
}

// sharedEdge is how much of each end of a large payload a sharedFrame
// copies; a large payload has more than twice as many bytes.
const sharedEdge = 1 << 10

var _ [largePayload - 2*sharedEdge]struct{} // fails to compile if it has not

// appendSharedFrame completes the frame whose head is dst[start:] and
// whose payload is body: it appends body's edges and tail to dst, which it
// returns with the frame.
func appendSharedFrame(dst []byte, start int, body, tail []byte) ([]byte, sharedFrame) {
	headLen := len(dst) - start
	dst = append(dst, body[:sharedEdge]...)
	split := len(dst)
	dst = append(dst, body[len(body)-sharedEdge:]...)
	dst = append(dst, tail...)
	return dst, sharedFrame{first: dst[start:split], body: body, last: dst[split:], headLen: headLen, tailLen: len(tail)}
}

func (f *sharedFrame) len() int { return f.headLen + len(f.body) + f.tailLen }

// writeNow writes f with write, which never waits (a socket's
// writeDirect), until the socket takes no more: n is how many of f's
// bytes went out.
func (f *sharedFrame) writeNow(write func([]byte) (int, error)) (n int, err error) {
	for _, part := range [...][]byte{f.first, f.body[sharedEdge : len(f.body)-sharedEdge], f.last} {
		m, werr := write(part)
		n += m
		if werr != nil || m < len(part) {
			return n, werr
		}
	}
	return n, nil
}

// restAt is what is left of f once its first n bytes are out: the rest of
// its head, the offset in body where the rest of the body begins, and the
// rest of its tail. head and tail are f's own bytes, to be copied if kept.
func (f *sharedFrame) restAt(n int) (head []byte, off int, tail []byte) {
	h := min(n, f.headLen)
	off = min(n-h, len(f.body))
	return f.first[h:f.headLen], off, f.last[len(f.last)-f.tailLen+n-h-off:]
}

// directWriter returns the socket's directWriter, made on first use so an
// idle socket does not carry one; nil if the socket has none. Only the
// socket's writer of the moment calls it.
func (c *wsConn) directWriter() *directWriter {
	if c.direct == nil && !c.noDirect {
		c.direct = directWriterFor(c.ws.NetConn())
		c.noDirect = c.direct == nil
	}
	return c.direct
}

// Opcodes of the frames a server sends (RFC 6455 section 5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xa
)

// appendFrameHeader appends the header of an unmasked, final frame of
// opcode with n payload bytes, as a server sends it (RFC 6455 section
// 5.2). Herald frames every message itself: gorilla only reads (see
// deadlineConn).
func appendFrameHeader(b []byte, opcode byte, n int) []byte {
	fin := 0x80 | opcode
	switch {
	case n <= 125:
		return append(b, fin, byte(n))
	case n <= 0xffff:
		return append(b, fin, 126, byte(n>>8), byte(n))
	default:
		u := uint64(n)
		return append(b, fin, 127, byte(u>>56), byte(u>>48), byte(u>>40), byte(u>>32),
			byte(u>>24), byte(u>>16), byte(u>>8), byte(u))
	}
}

// appendOpFrameHead appends the frame header and the start of the message
// of kind for an operation, whose payload has n bytes (n < 0: it has
// none). That start is {"id":<id>,"type":<type> followed by ,"payload":
// for the caller to append the payload and }; with no payload, the
// message is whole.
func appendOpFrameHead(b []byte, proto protocol, kind frameKind, idJSON string, n int) []byte {
	typ := typeSegment(proto, kind)
	size := len(`{"id":`) + len(idJSON) + len(typ) + len(`}`)
	if n >= 0 {
		size += len(`,"payload":`) + n
	}
	b = appendFrameHeader(b, opText, size)
	b = append(b, `{"id":`...)
	b = append(b, idJSON...)
	b = append(b, typ...)
	if n < 0 {
		return append(b, '}')
	}
	return append(b, `,"payload":`...)
}
