package server

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldhq/herald/auth"
)

// Parked streams: an idle HTTP stream without its request's goroutine.
//
// A stream served by its request's goroutine (httpStream.loop) holds what
// net/http holds for any request in flight: that goroutine, its stack
// grown while the request was parsed, validated and joined (8 KiB), the
// connection's background-read goroutine, its 4 KiB read and write
// buffers and the response's 2 KiB chunking buffer, and the request. For
// an idle subscription that was ~31 KiB of RSS against ~10 KiB for an idle
// WebSocket. So once a subscription has joined its execution, its stream
// is parked as idle WebSockets are: the connection is hijacked, the
// request's goroutine returns (releasing all of the above), and the
// connection is handed to the replica's parker (see parkedReader) to learn
// when the client goes, so that no goroutine waits for it either (without
// a parker, one does, on the 2 KiB stack it started with). Results are
// written by a writer goroutine
// that runs only while something is due, in HTTP/1.1 chunked encoding
// (chunkedConn), as net/http wrote them before; keepalives and the
// credentials' expiry are the keeper's, which checks every parked stream
// on one timer.

// streamWriter is where a stream's bytes go: the response, while the
// request's goroutine serves the stream, or the hijacked connection of a
// parked stream.
type streamWriter interface {
	SetWriteDeadline(time.Time) error
	Write([]byte) (int, error)
	// Flush sends what was written since the last Flush.
	Flush() error
}

// responseWriter writes a stream through net/http.
type responseWriter struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (o responseWriter) SetWriteDeadline(t time.Time) error { return o.rc.SetWriteDeadline(t) }
func (o responseWriter) Write(b []byte) (int, error)        { return o.w.Write(b) }
func (o responseWriter) Flush() error                       { return o.rc.Flush() }

// lastChunk ends a chunked body (no trailers).
const lastChunk = "0\r\n\r\n"

// chunkedConn writes a parked stream's body on its connection: each Flush
// sends what was written since as one chunk, in one writev without
// copying it. Only the stream's writer of the moment uses it.
type chunkedConn struct {
	conn     net.Conn
	pending  net.Buffers // written since the last Flush; the slices are the caller's, not copied
	size     int
	head     [18]byte  // a chunk's size line
	deadline time.Time // the write deadline last set on conn
}

// SetWriteDeadline passes t on only once less than half of the time to
// the deadline already set is left: setting a deadline re-arms a runtime
// timer, and the writer sets one for every batch.
func (c *chunkedConn) SetWriteDeadline(t time.Time) error {
	now := time.Now()
	if !c.deadline.IsZero() && c.deadline.Sub(now) > t.Sub(now)/2 {
		return nil
	}
	c.deadline = t
	return c.conn.SetWriteDeadline(t)
}

// Write keeps b, which must not change until the next Flush.
func (c *chunkedConn) Write(b []byte) (int, error) {
	if len(b) > 0 {
		c.pending = append(c.pending, b)
		c.size += len(b)
	}
	return len(b), nil
}

// Flush writes what was written since the last Flush as one chunk.
func (c *chunkedConn) Flush() error {
	if c.size == 0 {
		return nil
	}
	head := strconv.AppendInt(c.head[:0], int64(c.size), 16)
	head = append(head, '\r', '\n')
	bufs := make(net.Buffers, 0, len(c.pending)+2)
	bufs = append(bufs, head)
	bufs = append(bufs, c.pending...)
	bufs = append(bufs, crlf)
	clear(c.pending)
	c.pending, c.size = c.pending[:0], 0
	_, err := bufs.WriteTo(c.conn)
	return err
}

var crlf = []byte("\r\n")

// release lets go of the buffers of a burst: an idle stream holds none.
func (c *chunkedConn) release() { c.pending = nil }

// parkedStream serves a stream after its request: see above.
type parkedStream struct {
	st     *httpStream
	conn   net.Conn
	out    *chunkedConn
	keeper *keeper
	writer func() // writeLoop, bound once: a go statement on a method value allocates each time
	// reader parks the connection while the client sends nothing; nil: a
	// goroutine waits in serve instead.
	reader *parkedReader

	every         time.Duration // keepalive interval
	expires       int64         // unix nanoseconds the credentials expire; 0: never
	nextKeepalive atomic.Int64  // on the keeper's clock (keeper.at)

	// Guarded by st.mu.
	writing      bool // a writer goroutine runs
	again        bool // the writer must look again before it stops
	keepaliveDue bool
	expired      bool
	over         bool // the stream has ended: no writer starts any more

	// Only the stream's writer of the moment (see writeNow) uses these.
	direct   *directWriter // made on the first direct write
	noDirect bool          // the connection has no directWriter
	rest     *chunkRest    // the rest of a chunk writeNow began, for the writer to send first

	wg sync.WaitGroup // the writer
}

// park hands st over from its request's goroutine to a parkedStream; false
// if it cannot, and the request's goroutine then serves the stream. Only
// the request's goroutine calls it, after the response's head and preamble
// are out and before it writes anything else.
func (st *httpStream) park(ctx context.Context) bool {
	if !st.parkable() {
		return false
	}
	if err := st.rc.Flush(); err != nil {
		return false
	}
	conn, _, err := st.rc.Hijack()
	if err != nil {
		return false // HTTP/2, or a writer that cannot: net/http goes on serving it
	}
	ps := &parkedStream{
		st:     st,
		conn:   conn,
		out:    &chunkedConn{conn: conn},
		keeper: st.t.keeper,
		every:  st.t.cfg.keepAlive,
	}
	ps.writer = ps.writeLoop
	if sc, ok := conn.(syscall.Conn); ok {
		ps.reader = newParkedReader(st.t.parker, sc, ps.resume)
	}
	if id, ok := auth.FromContext(ctx); ok && !id.ExpiresAt.IsZero() {
		ps.expires = expiryNanos(id.ExpiresAt)
	}
	ps.keepaliveAfter(time.Now())
	// The request, the response and with them net/http's connection and
	// its buffers are no longer referenced once the handler returns.
	st.out, st.w, st.rc, st.r = ps.out, nil, nil, nil
	st.parked.Store(ps)
	// ctl too refers to net/http's response and with it the connection's
	// buffers and the request: a parked stream would cost three times an
	// idle WebSocket. drop, which alone uses ctl, finds the stream parked.
	st.mu.Lock()
	st.ctl = nil
	st.mu.Unlock()
	ps.keeper.addStream(ps)
	go ps.serve()
	ps.kick() // what was queued, or happened, before the stream was parked
	return true
}

// parkable says whether st's response can be taken over: HTTP/1.1, whose
// body net/http has begun in chunked encoding (no length was set), with
// its client still there and a keeper to send its keepalives.
func (st *httpStream) parkable() bool {
	h := st.w.Header()
	return st.t.keeper != nil && st.ops == nil && st.r.ProtoMajor == 1 && st.r.ProtoMinor >= 1 &&
		h.Get("Content-Length") == "" && h.Get("Transfer-Encoding") == "" && st.r.Context().Err() == nil
}

// serve waits for the client to go, discarding whatever it sends (the end
// of a request body nobody read), then tears the stream down. The
// connection is closed when the client goes, when the writer has ended the
// stream (finish), or by drop. With a parker, serve parks the connection
// and returns at once; resume runs when the client sends something or
// goes (the parker wakes it) or when the connection is closed from
// outside serve (closeConn wakes it).
func (ps *parkedStream) serve() { ps.watch(false) }

// resume is serve on a goroutine of the parker's: the connection has
// input, or was closed.
func (ps *parkedStream) resume() { ps.watch(true) }

func (ps *parkedStream) watch(woken bool) {
	var buf [64]byte
	for {
		if !woken && ps.reader != nil && ps.reader.park() {
			return // parked, or woken already and resumed on another goroutine
		}
		n, err := ps.conn.Read(buf[:])
		if err != nil {
			break
		}
		// A full read may have left more: read on before parking again,
		// rather than a wake-up per 64 bytes of a client that keeps sending
		// (if it left nothing, this goroutine waits, as without a parker).
		woken = n == len(buf)
	}
	if ps.reader != nil {
		ps.reader.forget()
	}
	ps.st.mu.Lock()
	ps.over = true
	ps.st.mu.Unlock()
	_ = ps.conn.Close() // a writer still writing fails at once
	ps.wg.Wait()
	ps.keeper.removeStream(ps)
	ps.st.release()
}

// kick starts a writer unless one runs (which then looks again) or the
// stream is over.
func (ps *parkedStream) kick() {
	st := ps.st
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case ps.over:
	case ps.writing:
		ps.again = true
	default:
		ps.writing = true
		ps.wg.Add(1)
		go ps.writer()
	}
}

// writeLoop writes what is due until nothing is, or the stream is over.
func (ps *parkedStream) writeLoop() {
	defer ps.wg.Done()
	for ps.writeDue() {
	}
}

// writeDue writes what is due now: the end of the stream (drop, drain,
// expired credentials), a keepalive, and the queue. It reports whether
// to look again; when not, the writer has stopped.
func (ps *parkedStream) writeDue() bool {
	st := ps.st
	if ps.rest != nil {
		// The rest of a chunk writeNow began: nothing may come before it.
		_ = ps.out.SetWriteDeadline(time.Now().Add(st.t.cfg.writeTimeout))
		err := ps.rest.write(ps.conn)
		ps.rest = nil
		if err != nil {
			ps.finish(false)
			return false
		}
	}
	st.mu.Lock()
	ps.again = false
	keepalive, expired := ps.keepaliveDue, ps.expired
	ps.keepaliveDue = false
	st.mu.Unlock()
	switch {
	case isClosed(st.cut):
		ps.finish(false)
		return false
	case isClosed(st.away) || expired:
		// What was queued goes out first, as in httpStream.loop; then the
		// client reconnects elsewhere and resumes, or is told its
		// credentials expired.
		away := isClosed(st.away)
		more, written := st.flush()
		switch {
		case !more || !written:
		case away:
			st.writeAndFlush(st.f.appendGoAway(nil))
		default:
			st.fail(expiredError())
		}
		ps.finish(written)
		return false
	}
	if keepalive && !st.writeAndFlush(st.f.keepalive()) {
		ps.finish(false)
		return false
	}
	if more, written := st.flush(); !more {
		// The last chunk ends a stream whose writes went out, not one
		// whose write failed mid-chunk (it would wait out the deadline
		// again, for bytes the client could not read right).
		ps.finish(written)
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if ps.again || ps.keepaliveDue || len(st.queue) > 0 || st.completed || st.failure != nil {
		return true
	}
	ps.writing = false
	ps.out.release()
	return false
}

// writeNow writes an event of op as one chunk on the calling goroutine
// (the execution fanning it out), sparing the start of a writer goroutine,
// when the stream has no writer running, nothing queued or due, and room
// in its connection's send buffer: the write never waits. It reports
// false, having written nothing, when the event must be queued instead.
func (ps *parkedStream) writeNow(op *operation, p *payload) bool {
	st := ps.st
	st.mu.Lock()
	if ps.over || ps.writing || len(st.queue) > 0 || st.completed || st.failure != nil || ps.keepaliveDue || ps.expired {
		st.mu.Unlock()
		return false
	}
	ps.writing = true // the claim: kick now only asks us to look again
	st.mu.Unlock()

	written, ok := false, false
	if d := ps.directWriter(); d != nil {
		written, ok = ps.writeChunkNow(d, op, p)
	}
	if written {
		st.t.metrics.delivered(p)
	}
	st.mu.Lock()
	if ps.rest != nil && !ps.over {
		// The writer takes the claim over and sends the rest first. Added
		// under st.mu, as kick does, so that serve, which sets over under
		// it, waits for this writer too.
		ps.wg.Add(1)
		st.mu.Unlock()
		go ps.writer()
		return ok
	}
	ps.rest = nil
	ps.writing = false
	again := ps.again
	ps.again = false
	st.mu.Unlock()
	if again {
		ps.kick() // something was queued or fell due while we wrote
	}
	return ok
}

// writeChunkNow writes p's frame as one chunk without waiting. ok is false
// when nothing was written; written is false also when the connection
// failed (it is then closed, and serve tears the stream down). What the
// connection does not take is left in rest: for a large payload, as a
// reference to the shared encoding (see sharedChunk), not a copy.
func (ps *parkedStream) writeChunkNow(d *directWriter, op *operation, p *payload) (written, ok bool) {
	st := ps.st
	buf := st.t.frames.get()
	defer st.t.frames.put(buf)
	if len(p.bytes) > largePayload {
		f := ps.sharedChunk(buf, op, p)
		n, err := f.writeNow(func(b []byte) (int, error) { return ps.writeDirect(d, b) })
		if n > 0 && n < f.len() && err == nil {
			head, off, tail := f.restAt(n)
			ps.rest = &chunkRest{head: bytes.Clone(head), p: p, off: off, tail: bytes.Clone(tail)}
		}
		return ps.wroteNow(n, err)
	}
	// The event is framed after room for the chunk's size line, which is
	// then put right before it: one buffer, no copy of the event.
	const room = len("ffffffffffffffff\r\n")
	b := append((*buf)[:0], make([]byte, room)...)
	b = appendNext(st.f, b, op, p)
	b = append(b, crlf...)
	*buf = b
	size := len(b) - room - len(crlf)
	var line [room]byte
	head := append(strconv.AppendInt(line[:0], int64(size), 16), crlf...)
	start := room - len(head)
	copy(b[start:], head)
	chunk := b[start:]

	n, err := ps.writeDirect(d, chunk)
	if n > 0 && n < len(chunk) && err == nil {
		ps.rest = &chunkRest{head: append([]byte(nil), chunk[n:]...)}
	}
	return ps.wroteNow(n, err)
}

// wroteNow is writeChunkNow's outcome once n bytes of a chunk are out.
func (ps *parkedStream) wroteNow(n int, err error) (written, ok bool) {
	switch {
	case n == 0 && err == nil:
		return false, false
	case err != nil:
		ps.closeConn()
		return false, true
	}
	return true, true
}

// writeDirect writes as much of b as the connection takes now, without
// waiting: n is 0 when it takes nothing; err is a failure of the
// connection.
func (ps *parkedStream) writeDirect(d *directWriter, b []byte) (n int, err error) {
	n, err = d.write(b)
	if errors.Is(err, errPastDeadline) {
		// The deadline the last writer set has passed; a write that never
		// waits needs none (the next writer sets a fresh one).
		_ = ps.conn.SetWriteDeadline(time.Time{})
		ps.out.deadline = time.Time{}
		n, err = d.write(b)
	}
	if errors.Is(err, errPastDeadline) {
		return 0, nil
	}
	return n, err
}

// sharedChunk builds in *buf the chunk of p's event as a sharedFrame, so
// that its large payload is written from the shared encoding: *buf holds
// the chunk's tail (the framing after the payload and the chunk's CRLF),
// then its head (the size line and the framing before the payload), then
// appendSharedFrame's edges and tail.
func (ps *parkedStream) sharedChunk(buf *[]byte, op *operation, p *payload) sharedFrame {
	f := ps.st.f
	b := f.appendNextTail((*buf)[:0], op, p)
	b = append(b, crlf...)
	tailLen := len(b) - len(crlf)
	headAt := len(b)
	framing := f.appendNextHead(b, op, p) // measured, then framed again after the size line
	size := len(framing) - headAt + len(p.bytes) + tailLen
	b = strconv.AppendInt(framing[:headAt], int64(size), 16)
	b = append(b, crlf...)
	b = f.appendNextHead(b, op, p)
	b, sf := appendSharedFrame(b, headAt, p.bytes, b[:headAt])
	*buf = b
	return sf
}

// chunkRest is what a direct write left of a chunk: a copy of the part
// before the payload not yet written, what is left of the shared payload
// (p's bytes from off; nothing if p is nil) and a copy of the rest after
// it.
type chunkRest struct {
	head []byte
	p    *payload
	off  int
	tail []byte
}

// write writes the rest in one writev, blocking as the stream's writer
// does.
func (r *chunkRest) write(conn net.Conn) error {
	if r.p == nil {
		_, err := conn.Write(r.head)
		return err
	}
	bufs := net.Buffers{r.head, r.p.bytes[r.off:], r.tail}
	_, err := bufs.WriteTo(conn)
	return err
}

// directWriter returns the connection's directWriter, made on first use;
// nil if it has none (a TLS connection, say).
func (ps *parkedStream) directWriter() *directWriter {
	if ps.direct == nil && !ps.noDirect {
		ps.direct = directWriterFor(ps.conn)
		ps.noDirect = ps.direct == nil
	}
	return ps.direct
}

// finish ends the stream from the writer: the body's last chunk, unless
// the connection is being cut, then the connection, which ends serve.
func (ps *parkedStream) finish(lastChunkToo bool) {
	ps.st.mu.Lock()
	ps.over, ps.writing = true, false
	ps.st.mu.Unlock()
	if lastChunkToo {
		_ = ps.out.SetWriteDeadline(time.Now().Add(ps.st.t.cfg.writeTimeout))
		_, _ = ps.conn.Write([]byte(lastChunk))
	}
	ps.closeConn()
}

// closeConn closes the connection from outside serve, and wakes a parked
// serve to see it: closing a socket silently drops it from the parker,
// and only serve tears the stream down.
func (ps *parkedStream) closeConn() {
	_ = ps.conn.Close()
	if ps.reader != nil {
		ps.reader.closed()
	}
}

// checkTimers is the keeper's: a keepalive every interval, and the end of
// the stream once the credentials expire.
func (ps *parkedStream) checkTimers(now time.Time) {
	due := ps.keeper.at(now) >= ps.nextKeepalive.Load()
	// A token's exp is a wall-clock time, judged on the wall clock as a
	// socket's is (wsMachine.expired).
	expired := ps.expires != 0 && now.UnixNano() >= ps.expires
	if !due && !expired {
		return
	}
	ps.st.mu.Lock()
	if due {
		ps.keepaliveDue = true
		ps.keepaliveAfter(now)
	}
	ps.expired = ps.expired || expired
	ps.st.sealed = ps.st.sealed || expired
	ps.st.mu.Unlock()
	ps.kick()
}

// keepaliveAfter makes the next keepalive due an interval after now, on
// the keeper's clock: a step of the wall clock neither makes every
// stream's due at once nor holds them back, leaving streams silent for
// longer than proxies allow.
func (ps *parkedStream) keepaliveAfter(now time.Time) {
	ps.nextKeepalive.Store(ps.keeper.at(now) + int64(ps.every))
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
