package server

import (
	"context"
	"encoding/json"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
)

// A socket's operations: starting one the protocol let through (limits,
// the shared execution or a query's run), and ending it.

// onSubscribe starts operation id, which the protocol has let through:
// the socket's limits, the execution, the mutation rate.
func (c *wsConn) onSubscribe(id string, params operationPayload) {
	if c.isLeaving() {
		// A drain told the socket to go away: it waits only for what it
		// runs. The operation is left unanswered rather than refused: the
		// clients of both protocols send every operation not yet completed
		// again on the socket they reconnect with after the 1001 close (to
		// another replica), whereas an error would end it for good.
		return
	}
	if step, ok := c.machine.startable(time.Now()); !ok {
		c.carryOut(step)
		return
	}
	if c.hasOp(id) || c.machine.proto == legacyWS && c.isEnding(id) {
		// On the legacy protocol an operation that ended by itself, its
		// last frames still queued, is stopped too: the client would
		// take them for the new operation's.
		step := c.machine.idInUse(id)
		c.carryOut(step)
		if step.act != actStop {
			return
		}
		// The legacy protocol: the running operation has stopped, the new
		// one starts (see wsMachine.idInUse).
	}
	limit := c.limitOperation()
	op, _ := c.addOp(id) // fresh: only this reader adds operations
	if limit == nil {
		limit = c.limitVariables(params.Variables)
	}
	if limit != nil {
		c.rejectOp(op, &graphql.Response{Errors: gqlerror.List{limit}})
		return
	}
	ctx, joining := c.ctx, false
	defer func() {
		if recovered := recover(); recovered != nil {
			c.startPanicked(ctx, op, joining, recovered)
		}
	}()
	// Every operation is traced on its own, as an HTTP request would be.
	ctx = graphql.StartOperationTrace(ctx)
	ctx = auth.WithSession(ctx, c)
	identity := c.identity.Load()
	if identity != nil {
		ctx = auth.NewContext(ctx, *identity)
	}
	now := graphql.Now()
	raw := &graphql.RawParams{
		Query:         params.Query,
		OperationName: params.OperationName,
		Variables:     params.Variables,
		Extensions:    params.Extensions,
		ReadTime:      graphql.TraceTiming{Start: now, End: now},
	}
	rc, errs := c.exec.CreateOperationContext(ctx, raw)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		c.rejectOp(op, resp)
		return
	}
	if rc.Operation.Operation == ast.Mutation {
		// The socket's address counts the mutations of an anonymous
		// socket; it is looked up for mutations alone.
		if gerr := c.t.mutations.mutationsAllowed(ctx, rc, c.ws.RemoteAddr().String()); gerr != nil {
			c.rejectOp(op, &graphql.Response{Errors: gqlerror.List{gerr}})
			return
		}
	}
	if rc.Operation.Operation == ast.Subscription {
		joining = true
		c.t.execs.join(op, ctx, c.exec, raw, rc, c.t.cfg.viewerDirective, c.t.cfg.resumeArgument)
		return
	}
	c.runSingle(op, ctx, rc)
}

// startPanicked answers a panic raised while op was being started, on the
// socket's reader or its per-message helper (handleOffStack), where
// nothing else would recover it and the replica's process would end. It
// is logged with its stack. A deferred recover costs a subscribe nothing
// until it recovers; frames of other kinds do not pass here.
//
// Before op joins (joining false), the panic is the preparation's:
// gqlgen's parsing and validation, the executor's parameter and context
// mutators (APQ, the complexity limit, which calls the schema's
// complexity functions), its error presenter. Nothing the socket or the
// engine holds is locked or half-done there, op is only registered: it is
// answered as an operation that failed before it ran (rejectOp:
// graphql-transport-ws's error, the legacy protocol's data then
// complete), with the internal error, and the socket goes on serving.
//
// Out of join, it is not: the engine contains the panics of the code it
// calls for others (the gate's Access and Confirm, its Denier, the
// resolver's join hook, the executor's interceptors, the live form's
// preparation, Presence's Enter: see sharedExecutions), so this one is
// the engine's own, raised maybe under the registry's or an execution's
// lock, or Presence's Leave (as a refused subscriber leaves), with op
// half joined, which nothing here can tell or undo. Only
// this socket is closed, with graphql-ws's internal server error (4500;
// RFC 6455's 1011 on the legacy protocol); its teardown releases what it
// can of op.
func (c *wsConn) startPanicked(ctx context.Context, op *operation, joining bool, recovered any) {
	logRecovered(c.t.log, ctx, "starting an operation on a WebSocket", recovered)
	if !joining {
		c.rejectOp(op, &graphql.Response{Errors: gqlerror.List{internalError()}})
		return
	}
	code := closeInternalError
	if c.machine.proto == legacyWS {
		code = closeInternalErrorLegacy
	}
	c.closeWith(code, "Internal server error")
}

// The close codes of a socket whose state a panic left unknown (see
// startPanicked): graphql-ws's CloseCode.InternalServerError, and RFC
// 6455's for the legacy protocol, whose clients know no 4xxx codes.
const (
	closeInternalError       = 4500
	closeInternalErrorLegacy = 1011
)

// limitOperation applies the per-socket limits on starting an operation:
// how many may be open at once and how many may start per second. It
// returns the error to answer the operation with, or nil.
func (c *wsConn) limitOperation() *gqlerror.Error {
	l := c.t.cfg.limits
	if l.MaxOperations > 0 {
		c.mu.Lock()
		open := len(c.ops)
		c.mu.Unlock()
		if open >= l.MaxOperations {
			return limitError("this socket has %d operations open, its limit; complete one first", open)
		}
	}
	if l.SubscribeRate > 0 {
		if ok, wait := c.subscribes.take(time.Now(), l.SubscribeRate, burstOf(l.SubscribeRate, l.SubscribeBurst)); !ok {
			return rateLimitedError("too many operations started on this socket", wait)
		}
	}
	return nil
}

func (c *wsConn) limitVariables(vars map[string]any) *gqlerror.Error {
	limit := c.t.cfg.limits.MaxVariablesBytes
	if size, over := variablesOver(vars, limit); over {
		return limitError("variables take %d bytes of JSON or more, more than the limit of %d", size, limit)
	}
	return nil
}

// hasOp reports whether operation id is open.
func (c *wsConn) hasOp(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops[id] != nil
}

// isEnding reports whether id names an operation that ended by itself and
// whose last frame is still queued (see removeOp).
func (c *wsConn) isEnding(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ending[id] != nil
}

// addOp registers id; fresh is false (and op the existing one) when the id
// is in use.
func (c *wsConn) addOp(id string) (op *operation, fresh bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if existing, busy := c.ops[id]; busy {
		return existing, false
	}
	idJSON, _ := json.Marshal(id)
	op = &operation{id: id, idJSON: string(idJSON), sub: c}
	c.ops[id] = op
	c.opsGrown = c.opsGrown || len(c.ops) > smallOps
	c.t.metrics.operations.Inc()
	return op, true
}

// smallOps is how many operations a socket's maps hold before they are
// replaced once empty again: a Go map keeps the room it grew to, so a
// socket that once had a hundred operations open would keep some 3.5 KB
// for them while idle, a third of what an idle socket costs.
const smallOps = 8

// deleteOp takes id out of ops; under mu.
func (c *wsConn) deleteOp(id string) {
	delete(c.ops, id)
	if len(c.ops) == 0 && c.opsGrown {
		c.ops, c.opsGrown = make(map[string]*operation), false
	}
}

// deleteEnding takes id out of ending; under mu. An empty map is dropped
// (removeOp makes one again) once it has grown.
func (c *wsConn) deleteEnding(id string) {
	delete(c.ending, id)
	if len(c.ending) == 0 && c.endingGrown {
		c.ending, c.endingGrown = nil, false
	}
}

// removeOp takes op out of the ops map; false if it was not there (the
// client completed it, or the socket is going).
func (c *wsConn) removeOp(op *operation) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops[op.id] != op {
		return false
	}
	c.deleteOp(op.id)
	c.t.metrics.operations.Dec()
	// Every caller queues op's last frame next.
	if c.ending == nil {
		c.ending = make(map[string]*operation)
	}
	c.ending[op.id] = op
	c.endingGrown = c.endingGrown || len(c.ending) > smallOps
	return true
}

// lastFrameTaken forgets op as ending: the writer has taken its last
// frame, written or skipped.
func (c *wsConn) lastFrameTaken(op *operation) {
	c.mu.Lock()
	if c.ending[op.id] == op {
		c.deleteEnding(op.id)
	}
	c.mu.Unlock()
}

// rejectOp ends an operation that failed before it ran (parse,
// validation, limits) as its protocol does (wsMachine.reject).
func (c *wsConn) rejectOp(op *operation, resp *graphql.Response) {
	if c.removeOp(op) {
		c.carryOut(c.machine.reject(op, resp))
	}
}

// runSingle executes a query or mutation: next, then complete. A socket
// told to go away meanwhile does not run it (see onSubscribe). One that
// panics is answered with an internal error (executeOperation): it runs on
// a goroutine of the socket's, where a panic would end the process.
func (c *wsConn) runSingle(op *operation, ctx context.Context, rc *graphql.OperationContext) {
	if !c.beginSingle(op) {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	op.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		defer c.endSingle() // once the answer is queued: a socket going away may close after it
		resp := executeOperation(c.t.log, ctx, c.exec, rc)
		if resp == nil || !c.removeOp(op) {
			return // completed by the client, or the socket is gone
		}
		c.enqueue(outItem{kind: frameNext, op: op, data: &payload{bytes: encodeResponse(resp)}})
		c.enqueue(outItem{kind: frameComplete, op: op})
	}()
}

// isLeaving reports whether goAway has been called.
func (c *wsConn) isLeaving() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leaving
}

// beginSingle counts op as a query or mutation in flight and reports
// true, unless the socket is going away: then op is forgotten unanswered
// (see onSubscribe) and it reports false. Looking at leaving and counting
// under one lock, as goAway looks at the count, is what keeps a socket
// from closing before an answer it owes: the check in onSubscribe alone
// would let an operation prepared while goAway found none running start
// after the close was chosen, to be cancelled when it is sent.
func (c *wsConn) beginSingle(op *operation) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaving {
		if c.ops[op.id] == op {
			c.deleteOp(op.id)
			c.t.metrics.operations.Dec()
		}
		return false
	}
	c.singles++
	return true
}

// endSingle counts a query or mutation out once its answer is queued (or
// not owed: completed by the client, the socket gone); the last one on a
// socket going away chooses its 1001 close, after that answer.
func (c *wsConn) endSingle() {
	c.mu.Lock()
	c.singles--
	last := c.leaving && c.singles == 0
	c.mu.Unlock()
	if last {
		c.closeWith(closeGoingAway, drainReason)
	}
}

// onComplete stops an operation at the client's request; nothing more is
// sent for its id, which may be reused at once: not even the last frames
// of one that had ended by itself, if they are still queued.
func (c *wsConn) onComplete(id string) {
	c.mu.Lock()
	op := c.ops[id]
	if op != nil {
		c.deleteOp(id)
	} else if ended := c.ending[id]; ended != nil {
		c.deleteEnding(id)
		ended.finished.Store(true)
	}
	c.mu.Unlock()
	if op != nil {
		c.release(op)
	}
}

// streamEnded is called by a shared execution whose stream completed by
// itself.
func (c *wsConn) streamEnded(op *operation) {
	if c.removeOp(op) {
		c.enqueue(outItem{kind: frameComplete, op: op})
		if op.handoff != nil {
			c.t.execs.leave(op) // its other execution (replay or live) too
		}
	}
}
