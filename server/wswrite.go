package server

import (
	"net"
	"time"

	"github.com/gorilla/websocket"
)

// A socket's writer: the one path every byte to the client takes (see
// outQueue and writeNow for the direct writes).

// writeLoop writes queued frames until the queue is empty, then exits:
// the queue starts a writer again when there is more, so an idle socket has
// no writer goroutine. Once a close code is chosen it flushes, sends the
// close frame (see finish) and no writer starts again.
func (c *wsConn) writeLoop() {
	defer c.wg.Done()
	for {
		select {
		case <-c.done:
			return
		default:
		}
		if c.isClosing() {
			c.finish()
			return
		}
		batch, more := c.queue.take()
		if !more {
			return
		}
		if len(batch) == 0 {
			continue // kicked: look at closing again
		}
		c.extendWriteDeadline()
		if err := c.writeBatch(batch); err != nil {
			c.cut() // the reader sees it and tears down
			return
		}
	}
}

// batchBytes is how many bytes of frames the writer gathers before a
// write, large payloads included: several frames ready for one socket
// leave in one system call, and a write is at most batchBytes and one
// frame, and at most twice batchBytes (see writeParts). That bounds what a
// close must wait for when it follows the write under way (see
// writeBatch), and how much one write deadline covers; a write of 32 KiB
// costs a system call for little.
const batchBytes = 32 << 10

// writeBatch writes the frames of batch in order with as few system calls
// as it can. Frames are built one after another in one buffer, and a
// large payload joins the same write as a part of its own (writev) rather
// than being copied for each socket. The GraphQL protocols allow one
// message per frame, not one frame per write.
func (c *wsConn) writeBatch(batch []outItem) error {
	if len(batch) == 1 {
		return c.write(&batch[0], true)
	}
	buf := c.t.frames.get()
	defer c.t.frames.put(buf)
	var parts net.Buffers
	flushed := 0 // bytes of *buf already in parts
	large := 0   // bytes of the large payloads in parts
	done := 0    // items of batch already written
	for i := range batch {
		it := &batch[i]
		*buf = c.appendItem(*buf, it)
		if shared, ok := it.sharedPart(); ok {
			parts = append(parts, (*buf)[flushed:], shared, closingBrace)
			flushed = len(*buf)
			large += len(shared)
		}
		if len(*buf)+large >= batchBytes {
			// Each write of a batch gets a deadline of its own: a client
			// reading a large batch (a resume's backlog) steadily but
			// slowly may take longer than WriteTimeout for all of it.
			c.extendWriteDeadline()
			if err := c.writeGathered(buf, parts, flushed); err != nil {
				return err
			}
			c.countDelivered(batch[done : i+1])
			done = i + 1
			*buf, parts, flushed, large = (*buf)[:0], parts[:0], 0, 0
			if c.closingAbruptly() {
				// The rest of the batch is dropped as what is still
				// queued is (see finish): a batch may hold many
				// megabytes, and the close frame would wait for them
				// past closeGrace.
				return nil
			}
		}
	}
	c.extendWriteDeadline()
	if err := c.writeGathered(buf, parts, flushed); err != nil {
		return err
	}
	c.countDelivered(batch[done:])
	return nil
}

// writeGathered writes what writeBatch gathered: parts, then the rest of
// *buf after flushed.
func (c *wsConn) writeGathered(buf *[]byte, parts net.Buffers, flushed int) error {
	if len(parts) == 0 {
		if len(*buf) == 0 {
			return nil
		}
		return c.wire().writeFrame(*buf)
	}
	if flushed < len(*buf) {
		parts = append(parts, (*buf)[flushed:])
	}
	return c.writeParts(parts, true)
}

// writeParts writes frames given in parts, with one system call where the
// connection allows (writev). When paced and over twice batchBytes (a
// large result), they go out in writes of batchBytes, each given at least
// half of WriteTimeout (extendWriteDeadline), so that a client reading
// steadily but slowly gets all of it rather than be cut after
// WriteTimeout. The writer paces, except for what finish writes under
// closeGrace.
func (c *wsConn) writeParts(parts net.Buffers, paced bool) error {
	size := 0
	for _, b := range parts {
		size += len(b)
	}
	if !paced || size <= 2*batchBytes {
		return c.wire().writeFrameParts(parts)
	}
	var write net.Buffers
	n := 0 // bytes in write
	for _, b := range parts {
		for len(b) > 0 {
			take := min(len(b), batchBytes-n)
			write, n, b = append(write, b[:take]), n+take, b[take:]
			if n < batchBytes {
				break // b is all taken: the next part joins this write
			}
			c.extendWriteDeadline()
			if err := c.wire().writeFrameParts(write); err != nil {
				return err
			}
			write, n = write[:0], 0
		}
	}
	if n == 0 {
		return nil
	}
	c.extendWriteDeadline()
	return c.wire().writeFrameParts(write)
}

// appendItem appends the frame of one queued item to buf: whole, except
// that a next frame with a large payload gets only its header, and the
// rest of a frame only its copied start (the shared bytes and closing
// brace follow as parts of their own: see sharedPart). An item whose
// operation is finished appends nothing and is marked frameSkipped.
func (c *wsConn) appendItem(buf []byte, it *outItem) []byte {
	switch it.kind {
	case frameRaw:
		return append(appendFrameHeader(buf, opText, len(it.raw)), it.raw...)
	case framePingCtl:
		return appendFrameHeader(buf, opPing, 0)
	case framePongCtl:
		return append(appendFrameHeader(buf, opPong, len(it.raw)), it.raw...)
	case frameWire:
		return append(buf, it.raw...)
	case frameError, frameComplete:
		c.lastFrameTaken(it.op)
	}
	if it.op.finished.Load() {
		it.kind = frameSkipped // the client completed it: silence for this id
		return buf
	}
	switch it.kind {
	case frameNext:
		buf = appendOpFrameHead(buf, c.machine.proto, frameNext, it.op.idJSON, len(it.data.bytes))
		if len(it.data.bytes) > largePayload {
			return buf
		}
		return append(append(buf, it.data.bytes...), '}')
	case frameError:
		it.op.finished.Store(true) // error and complete are an id's last frame
		buf = appendOpFrameHead(buf, c.machine.proto, frameError, it.op.idJSON, len(it.raw))
		return append(append(buf, it.raw...), '}')
	default:
		it.op.finished.Store(true)
		return appendOpFrameHead(buf, c.machine.proto, frameComplete, it.op.idJSON, -1)
	}
}

// countDelivered counts the subscription events of items, once written.
func (c *wsConn) countDelivered(items []outItem) {
	for i := range items {
		if it := &items[i]; it.kind == frameNext && it.event {
			c.t.metrics.delivered(it.data)
		}
	}
}

// extendWriteDeadline gives the coming batch at least half of WriteTimeout
// to be written. Setting a deadline updates a runtime timer, which costs as
// much as a few percent of a replica's CPU when it is paid for every frame
// of a fan-out, so a deadline is set again only once half of it has gone.
func (c *wsConn) extendWriteDeadline() {
	now := time.Now()
	if time.Duration(c.writeDeadline-now.UnixNano()) >= c.t.cfg.writeTimeout/2 {
		return
	}
	deadline := now.Add(c.t.cfg.writeTimeout)
	_ = c.wire().setWriteDeadline(deadline)
	c.writeDeadline = deadline.UnixNano()
}

// finish writes what was queued before the close was decided (a legacy
// connection_error must precede its 4403), within closeGrace, and then the
// close frame. An abrupt close (a slow consumer, or the answer to the
// client's close) writes only the rest of a frame begun by writeNow, so
// that the close frame does not land inside it.
func (c *wsConn) finish() {
	defer close(c.closeSent)
	// Nothing is written after the close frame, and no other writer may
	// start beside this one.
	batch := c.queue.takeLast()
	_ = c.wire().setWriteDeadline(time.Now().Add(closeGrace))
	if c.closeAbrupt {
		batch = batch[:min(len(batch), 1)]
		if len(batch) == 1 && batch[0].kind != frameWire {
			batch = nil
		}
	}
	for i := range batch {
		if err := c.write(&batch[i], false); err != nil {
			c.cut() // the reader sees it and tears down
			return
		}
	}
	c.sendClose()
}

// sendClose sends the close frame and gives the peer closeGrace to answer
// before the reader gives up.
func (c *wsConn) sendClose() {
	deadline := time.Now().Add(closeGrace)
	_ = c.writeSmall(opClose, string(websocket.FormatCloseMessage(c.closeCode, fitCloseReason(c.closeMsg))))
	_ = c.ws.SetReadDeadline(deadline)
	// Nothing more goes out for the operations: one still starting on the
	// reader stops, so that the reader gets to the peer's answer.
	c.cancel()
}

// write writes one queued item as a whole frame (frameWire: the rest of
// one), a large one paced (see writeParts) unless finish writes it.
func (c *wsConn) write(it *outItem, paced bool) error {
	switch it.kind {
	case frameRaw:
		return c.writeSmall(opText, it.raw)
	case framePingCtl:
		return c.writeSmall(opPing, "")
	case framePongCtl:
		return c.writeSmall(opPong, it.raw)
	case frameWire:
		return c.writeRest(it, paced)
	case frameError, frameComplete:
		c.lastFrameTaken(it.op)
	}
	if it.op.finished.Load() {
		return nil // the client completed it: silence for this id
	}
	if it.kind == frameNext {
		if err := c.writeNext(it.op, it.data, paced); err != nil || !it.event {
			return err
		}
		c.t.metrics.delivered(it.data)
		return nil
	}
	it.op.finished.Store(true) // error and complete are an id's last frame
	buf := c.t.frames.get()
	defer c.t.frames.put(buf)
	if it.kind == frameError {
		*buf = appendOpFrameHead((*buf)[:0], c.machine.proto, frameError, it.op.idJSON, len(it.raw))
		*buf = append(append(*buf, it.raw...), '}')
	} else {
		*buf = appendOpFrameHead((*buf)[:0], c.machine.proto, frameComplete, it.op.idJSON, -1)
	}
	return c.wire().writeFrame(*buf)
}

// largePayload is the payload size above which the writer writes a next
// frame in parts (writev) rather than copy the payload next to its header:
// a large fan-out would copy it once for every socket.
const largePayload = 8 << 10

// closingBrace ends a next frame written in parts.
var closingBrace = []byte{'}'}

func (c *wsConn) writeNext(op *operation, p *payload, paced bool) error {
	buf := c.t.frames.get()
	defer c.t.frames.put(buf)
	*buf = appendOpFrameHead((*buf)[:0], c.machine.proto, frameNext, op.idJSON, len(p.bytes))
	var err error
	if len(p.bytes) > largePayload {
		err = c.writeParts(net.Buffers{*buf, p.bytes, closingBrace}, paced)
	} else {
		*buf = append(append(*buf, p.bytes...), '}')
		err = c.wire().writeFrame(*buf)
	}
	return err
}

// writeRest writes the rest of a frame begun by writeNow: its copied
// start, then what is left of a shared payload and the closing brace,
// which is not copied again while a stalled client takes it.
func (c *wsConn) writeRest(it *outItem, paced bool) error {
	raw := []byte(it.raw) // at most a small frame's bytes, or a large one's copied start
	shared, ok := it.sharedPart()
	if !ok {
		return c.wire().writeFrame(raw)
	}
	return c.writeParts(net.Buffers{raw, shared, closingBrace}, paced)
}

// writeSmall writes a frame of opcode with a small payload: a
// connection-level message or a control frame.
func (c *wsConn) writeSmall(opcode byte, payload string) error {
	buf := c.t.frames.get()
	defer c.t.frames.put(buf)
	*buf = appendFrameHeader((*buf)[:0], opcode, len(payload))
	*buf = append(*buf, payload...)
	return c.wire().writeFrame(*buf)
}
