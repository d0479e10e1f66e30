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
	frame = append(frame, p.bytes...)
	frame = append(frame, '}')
	written, ok := c.writeClaimed(buf, frame)
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
	n, err := c.direct.write(frame)
	if errors.Is(err, errPastDeadline) {
		// The deadline the last writer set has passed, as it always has on
		// a socket idle for longer than WriteTimeout. A write that never
		// waits needs none: clear it (the next writer sets a fresh one).
		_ = c.wire().setWriteDeadline(time.Time{})
		c.writeDeadline = 0
		n, err = c.direct.write(frame)
	}
	var rest []byte
	switch {
	case n == 0 && (err == nil || errors.Is(err, errPastDeadline)):
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
