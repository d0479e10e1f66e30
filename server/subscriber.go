package server

import (
	"context"
	"encoding/json"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// maxOperationIDBytes bounds the id a client gives an operation on a
// WebSocket or on a single-connection event stream. Every result sent to
// the operation carries its id, framed on the path the whole execution's
// fan-out shares, so an id as long as a message may be (64 KiB) times a
// connection's hundred operations would make each event cost megabytes of
// copying that every other subscriber waits behind. Clients use counters
// (subscriptions-transport-ws, Apollo) or UUIDs (graphql-ws, graphql-sse:
// 36 bytes).
const maxOperationIDBytes = 256

// subscriber is what the engine (shared executions, the resume handoff)
// knows of the transport an operation's results go to: a WebSocket
// (*wsConn) or an HTTP stream (*httpStream: Server-Sent Events or
// multipart). One execution and one
// encoding serve every subscriber of a subscription, whatever its
// transport; each transport only frames the shared bytes its own way.
//
// None of the methods but awaitRoom may block: they are called by the
// goroutine that fans an event out to every member of an execution.
type subscriber interface {
	// awaitRoom waits until the transport's queue has room for more (it is
	// at or below its low-water mark, see hasRoom), or until ctx or the
	// transport ends. Only a resumed subscription's private replay calls
	// it, before each result and under no lock (see
	// sharedExecutions.paceReplay): its execution has op as its one
	// member, so waiting holds up nobody else, and the replay goes out as
	// fast as the client reads instead of overflowing the queue.
	awaitRoom(ctx context.Context)
	// deliver writes or queues one result for op. A subscriber that
	// cannot take it ends itself as a slow consumer.
	deliver(op *operation, p *payload)
	// streamEnded tells op's transport that the execution completed by
	// itself: nothing more will be delivered for op.
	streamEnded(op *operation)
	// tooSlow ends op's transport because it fell too far behind, with a
	// reason its client can act on.
	tooSlow(op *operation, reason string)
	// denied ends op with err (FORBIDDEN, or INTERNAL_SERVER_ERROR when the
	// resolver's join hook panicked): its subscriber may no longer
	// receive the execution's events. Results already delivered go first;
	// nothing is delivered for op after err. It also takes op out of its
	// executions, so it must not be called under an execution's lock.
	denied(op *operation, err *gqlerror.Error)
}

var (
	_ subscriber = (*wsConn)(nil)
	_ subscriber = (*httpStream)(nil)
)

// tooSlow closes the socket as a slow consumer (1013): the client
// reconnects and resumes from its last cursor.
func (c *wsConn) tooSlow(_ *operation, reason string) {
	c.closeSlow(reason)
}

// awaitRoom is the subscriber's: it waits until the stream's queue has
// room for a replay's next result (hasRoom), the stream is ending
// (completed, or failed: nothing more is queued), or until ctx, the
// replay's execution's, or the stream ends. flush, which takes the whole
// queue, wakes it.
func (st *httpStream) awaitRoom(ctx context.Context) {
	for {
		st.mu.Lock()
		if st.failure != nil || st.completed ||
			hasRoom(len(st.queue), st.bytes, st.t.cfg.queueItems, st.t.cfg.queueBytes) {
			st.mu.Unlock()
			return
		}
		room := st.room.wait()
		st.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return
		case <-st.done:
			return
		}
	}
}

// release ends op's part in the engine once its transport has let it go:
// nothing more is written for it, a query or mutation in flight is
// canceled, and a subscription leaves its executions.
func (op *operation) release(execs *sharedExecutions) {
	op.finished.Store(true)
	if op.cancel != nil {
		op.cancel()
	}
	execs.leave(op)
}

// denied ends op with an error frame (graphql-transport-ws and legacy
// graphql-ws alike send "error" for its id), its last frame.
func (c *wsConn) denied(op *operation, err *gqlerror.Error) {
	if c.removeOp(op) {
		raw, _ := json.Marshal(gqlerror.List{err})
		c.enqueue(outItem{kind: frameError, op: op, raw: string(raw)})
	}
	c.t.execs.leave(op)
}
