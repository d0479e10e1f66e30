package server

import (
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
// None of the methods may block: they are called by the goroutine that
// fans an event out to every member of an execution.
type subscriber interface {
	// deliver writes or queues one result for op. A subscriber that
	// cannot take it ends itself as a slow consumer.
	deliver(op *operation, p *payload)
	// streamEnded tells op's transport that the execution completed by
	// itself: nothing more will be delivered for op.
	streamEnded(op *operation)
	// tooSlow ends op's transport because it fell too far behind, with a
	// reason its client can act on.
	tooSlow(op *operation, reason string)
	// denied ends op with err (FORBIDDEN): its subscriber may no longer
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
