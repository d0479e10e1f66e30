package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
)

// wsConfig is the WebSocket part of Options, defaulted.
type wsConfig struct {
	initTimeout     time.Duration
	pingInterval    time.Duration
	pongTimeout     time.Duration
	writeTimeout    time.Duration
	queueItems      int
	queueBytes      int
	maxMessageBytes int64
	viewerDirective string
	resumeArgument  string
	limits          Limits
}

// closeGrace is how long a closing socket waits for the peer's close frame
// (and a stuck write is given) before the TCP connection is dropped.
const closeGrace = time.Second

// wsTransport serves GraphQL over WebSocket, both subprotocols, on gqlgen's
// executor. It is a graphql.Transport so that it shares the HTTP
// transports' executor: the query cache, APQ and error presenter.
type wsTransport struct {
	cfg       wsConfig
	authn     auth.Authenticator
	upgrader  websocket.Upgrader
	frames    frameBuffers // for writeNow
	execs     *sharedExecutions
	keeper    *keeper
	metrics   *metrics
	mutations *identityLimiter // shared with HTTP; nil: no limit
	log       *slog.Logger
	reject    func(w http.ResponseWriter, r *http.Request, status int, msg string)

	sessions *sessions // admission and drain, shared with the HTTP streams
}

var _ graphql.Transport = (*wsTransport)(nil)

// Supports claims WebSocket upgrade requests.
func (t *wsTransport) Supports(r *http.Request) bool { return isWebSocketUpgrade(r) }

// Do negotiates the subprotocol, upgrades and serves the socket until it
// closes. Requests offering neither subprotocol are refused before the
// upgrade, with a body that says what to offer.
func (t *wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	proto, ok := negotiateSubprotocol(websocket.Subprotocols(r))
	if !ok {
		t.reject(w, r, http.StatusBadRequest,
			"unsupported WebSocket subprotocol: offer graphql-transport-ws (graphql-ws library) or graphql-ws (subscriptions-transport-ws)")
		return
	}
	switch t.sessions.admit() {
	case refusedDraining:
		t.reject(w, r, http.StatusServiceUnavailable, "server is shutting down; reconnect to another replica")
		return
	case refusedFull:
		w.Header().Set("Retry-After", "1")
		t.reject(w, r, http.StatusServiceUnavailable, fmt.Sprintf(
			"this replica holds its limit of %d WebSocket connections; reconnect to another replica", t.cfg.limits.MaxConnections))
		return
	}
	upgradeID, hasUpgradeID, err := t.authn.FromRequest(r)
	if err != nil {
		t.sessions.done()
		t.refuseCredentials(w, r, err)
		return
	}
	hj := &readerHijacker{ResponseWriter: w}
	ws, err := t.upgrader.Upgrade(hj, r, http.Header{"Sec-WebSocket-Protocol": {proto.String()}})
	if err != nil {
		t.sessions.done()
		return // the upgrader has answered the request
	}
	// The socket is served on a goroutine of its own so that this handler
	// returns: the HTTP server then releases the request, the response and
	// the hijacked connection's buffers, kilobytes per idle socket.
	c := newWSConn(t, ws, proto, exec)
	c.input = newInputWaiter(ws.NetConn(), hj.br)
	if hasUpgradeID {
		c.upgradeIdentity = &upgradeID
	}
	c.start()
	go c.serve()
}

// refuseCredentials answers an upgrade whose request carries credentials
// (an Authorization header or cookie) that cannot be accepted, before
// upgrading: 401 for bad ones, 503 when they could not be checked.
func (t *wsTransport) refuseCredentials(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, auth.ErrInvalidCredentials) {
		t.reject(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	t.log.ErrorContext(r.Context(), "server: cannot authenticate WebSocket upgrade", slog.Any("error", err))
	t.reject(w, r, http.StatusServiceUnavailable, "authentication is unavailable; try again later")
}

// drainReason is the reason sent with the close frame of a drained socket.
const drainReason = "server shutting down; reconnect"

// The socket as a session (see sessions): admission and drain.

func (c *wsConn) openedAt() time.Time { return c.created }
func (c *wsConn) goAway()             { c.closeWith(closeGoingAway, drainReason) }
func (c *wsConn) drop()               { _ = c.ws.NetConn().Close() }
func (c *wsConn) ended() bool         { return c.tornDown() }

// operation is one operation id on one socket: a subscription membership
// or a query/mutation in flight.
type operation struct {
	id     string
	idJSON string     // the id as a JSON string, encoded once
	sub    subscriber // the transport the operation's results go to
	// finished is set when nothing more may be sent for this id: the
	// client completed it, or its last frame was written.
	finished atomic.Bool

	exec    *execution // subscriptions; guarded by the registry's lock
	idx     int        // position among exec's members; guarded by exec.mu
	handoff *handoff   // a resumed subscription's replay, until it goes live
	cancel  context.CancelFunc
}

// wsConn is one socket: a reader on a goroutine of its own (serve, started
// by wsTransport.Do, which returns at once; each message is read on a
// short-lived helper, see inputWaiter), a writer goroutine that runs only
// while its bounded queue holds frames, and the operations by id.
type wsConn struct {
	t       *wsTransport
	ws      *websocket.Conn
	machine wsMachine // the protocol: what messages and ticks mean
	exec    graphql.GraphExecutor
	queue   *outQueue
	input   *inputWaiter // nil: the reader reads on its own stack

	ctx    context.Context // ends when the socket is torn down
	cancel context.CancelFunc

	created time.Time

	closeOnce   sync.Once
	closing     chan struct{} // closed once a close code is chosen
	closeCode   int
	closeMsg    string
	closeAbrupt bool          // only the rest of a frame begun goes before the close frame
	closeSent   chan struct{} // made with the close code; closed when the writer is done with the close frame
	done        chan struct{} // closed at teardown: the writer stops

	// Writer-owned (one writer runs at a time).
	writeDeadline int64         // unix nanoseconds; see extendWriteDeadline
	direct        *directWriter // see writeNow
	noDirect      bool          // the socket has no directWriter

	// Reader-owned.
	awaitClose      bool // the reader chose a close frame the writer must send before teardown
	identity        auth.Identity
	hasIdentity     bool
	upgradeIdentity *auth.Identity // from the upgrade request (a cookie, a header)
	subscribes      tokenBucket    // Limits.SubscribeRate

	mu  sync.Mutex
	ops map[string]*operation

	wg sync.WaitGroup // the writer and queries/mutations in flight
}

func newWSConn(t *wsTransport, ws *websocket.Conn, proto protocol, exec graphql.GraphExecutor) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	now := time.Now()
	c := &wsConn{
		t: t, ws: ws, machine: wsMachine{proto: proto}, exec: exec,

		ctx:     ctx,
		cancel:  cancel,
		created: now,
		closing: make(chan struct{}),
		done:    make(chan struct{}),
		ops:     make(map[string]*operation),
	}
	writeLoop := c.writeLoop // bound once: a go statement on c.writeLoop would allocate each time
	c.queue = newOutQueue(t.cfg.queueItems, t.cfg.queueBytes, func() {
		c.wg.Add(1)
		go writeLoop()
	})
	c.machine.heard(now)
	return c
}

// serve runs the reader loop until the socket ends, then releases
// everything the socket holds.
func (c *wsConn) serve() {
	defer c.t.sessions.done()
	c.serveInput()
	c.awaitCloseFrame()
	c.teardown()
}

// awaitCloseFrame gives the writer up to closeGrace to send the close
// frame the reader chose as its input ended (the client closed, broke the
// framing or sent too much), before teardown closes the connection under
// it. The writer's close has the same grace, so this ends as it does.
func (c *wsConn) awaitCloseFrame() {
	if !c.awaitClose {
		return
	}
	timer := time.NewTimer(closeGrace)
	defer timer.Stop()
	select {
	case <-c.closeSent:
	case <-timer.C:
	}
}

// start registers the socket before it is served. It runs on the upgrade
// handler's goroutine, so that the long-lived reader's stack does not grow
// here (see inputWaiter).
func (c *wsConn) start() {
	c.wire().sealed = true // from now on only the socket's writer writes to it
	c.t.sessions.track(c, true)
	c.t.keeper.add(c)
	c.t.metrics.sockets.WithLabelValues(c.machine.proto.String()).Inc()
	c.ws.SetReadLimit(c.t.cfg.maxMessageBytes)
	c.ws.SetPongHandler(func(string) error {
		c.touch()
		return nil
	})
	// gorilla's own handlers would answer straight to the connection.
	c.ws.SetPingHandler(c.onPing)
	c.ws.SetCloseHandler(c.onPeerClose)
}

// wire is the socket's connection, which only its writer writes to.
func (c *wsConn) wire() *deadlineConn { return c.ws.NetConn().(*deadlineConn) }

// onPing answers a WebSocket ping from the client through the socket's
// writer, so that the pong goes out after the rest of a frame writeNow
// began (RFC 6455 section 5.5.2). A ping is a sign of life.
func (c *wsConn) onPing(data string) error {
	c.touch()
	if !c.isClosing() && !c.writeFrameNow(opPong, data) {
		c.enqueue(outItem{kind: framePongCtl, raw: data})
	}
	return nil
}

// onPeerClose answers the client's close frame with its code through the
// socket's writer, after at most the rest of a frame begun (RFC 6455
// section 5.5.1); what else is queued is dropped, as the client is
// leaving. The reader then returns and waits for the answer to go out
// (awaitCloseFrame). If the server has chosen a close of its own, that
// close frame is the answer.
func (c *wsConn) onPeerClose(code int, _ string) error {
	c.chooseClose(code, "", true)
	c.awaitClose = true
	return nil
}

func (c *wsConn) touch() { c.machine.heard(time.Now()) }

// handleOffStack handles a message on a short-lived goroutine and waits for
// it, so messages are still handled one at a time and in order. Handling a
// subscribe goes deep (parse, validate, resolver) and would leave the
// long-lived reader goroutine with a grown stack that an idle server never
// shrinks; the helper's stack is released when it returns.
func (c *wsConn) handleOffStack(data []byte) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.handle(data)
	}()
	<-done
}

// keepaliveFastPath handles the exact ping and pong frames clients send,
// the only traffic of an idle socket, without the JSON decoder or a helper
// goroutine (see handleOffStack and wsMachine.keepalive).
func (c *wsConn) keepaliveFastPath(data []byte) bool {
	reply, handled := c.machine.keepalive(data)
	if reply != "" {
		c.send(frameRaw, reply)
	}
	return handled
}

// tornDown reports whether the socket has ended and released everything.
func (c *wsConn) tornDown() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// closingAbruptly reports whether a close was chosen that drops the
// frames not yet written: the answer to the client's close, or a slow
// consumer's.
func (c *wsConn) closingAbruptly() bool {
	return c.isClosing() && c.closeAbrupt // closeAbrupt is set before closing is closed
}

func (c *wsConn) isClosing() bool {
	select {
	case <-c.closing:
		return true
	default:
		return false
	}
}

// closeWith closes the socket with code and reason: the writer sends the
// close frame and the reader waits briefly for the peer's answer. It never
// blocks, so fan-out and timers may call it.
func (c *wsConn) closeWith(code int, reason string) {
	c.chooseClose(code, reason, false)
}

// chooseClose chooses the close frame, unless one is chosen already, and
// wakes a writer to send it. A close that answers the client's is not
// counted as the server's.
func (c *wsConn) chooseClose(code int, reason string, answer bool) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeMsg = code, reason
		c.closeAbrupt = answer || code == closeTryAgainLater
		c.closeSent = make(chan struct{}) // made here: an open socket does without
		close(c.closing)
		if !answer {
			c.t.metrics.closeCounter(code).Inc()
		}
		if c.closeAbrupt {
			// Unblock a write stuck on a peer that does not read.
			_ = c.wire().setWriteDeadline(time.Now().Add(closeGrace))
		}
		c.queue.wake() // a writer sends the close frame
	})
}

// teardown releases everything the socket holds, whoever ended it.
func (c *wsConn) teardown() {
	close(c.done)
	c.cancel()
	_ = c.ws.NetConn().Close()
	c.queue.close() // no writer starts from now on, so wg.Wait below is final

	c.mu.Lock()
	ops := c.ops
	c.ops = nil
	c.mu.Unlock()
	for _, op := range ops {
		c.release(op)
	}
	c.wg.Wait()
	c.t.keeper.remove(c)
	c.t.sessions.track(c, false)
	c.t.metrics.sockets.WithLabelValues(c.machine.proto.String()).Dec()
}

// release stops an operation that is no longer in the ops map.
func (c *wsConn) release(op *operation) {
	op.finished.Store(true)
	c.t.metrics.operations.Dec()
	if op.cancel != nil {
		op.cancel()
	}
	c.t.execs.leave(op)
}

// send writes or queues a connection-level frame.
func (c *wsConn) send(kind frameKind, raw string) {
	switch {
	case kind == frameRaw && c.writeFrameNow(opText, raw):
		return
	case kind == framePingCtl && c.writeFrameNow(opPing, ""):
		return
	}
	c.enqueue(outItem{kind: kind, raw: raw})
}

func (c *wsConn) enqueue(it outItem) {
	if !c.queue.push(it) {
		c.closeWith(closeTryAgainLater, "slow consumer: outbound queue full; reconnect and resume")
	}
}

// deliver queues an event of a shared execution for op.
func (c *wsConn) deliver(op *operation, p *payload) {
	if p.direct && c.writeNow(op, p) {
		return
	}
	c.enqueue(outItem{kind: frameNext, op: op, data: p})
}

// handle processes one text message from the client: the protocol
// decides, the socket carries it out.
func (c *wsConn) handle(data []byte) {
	c.carryOut(c.machine.receive(data))
}

// carryOut does what the protocol decided (see wsStep). Connection-level
// frames may be written at once (send); an operation's frames are queued.
func (c *wsConn) carryOut(s wsStep) {
	if s.nowAcked {
		c.t.keeper.acked(c)
	}
	for i := range s.n {
		if it := s.frames[i]; it.op == nil {
			c.send(it.kind, it.raw)
		} else {
			c.enqueue(it)
		}
	}
	if s.close != 0 {
		c.closeWith(s.close, s.reason)
	}
	switch s.act {
	case actAuthenticate:
		c.onInit(s.initPayload)
	case actStart:
		c.onSubscribe(s.id, s.params)
	case actStop:
		c.onComplete(s.id)
	}
}

// onInit judges connection_init's credentials, falling back on those of
// the upgrade request, and has the protocol answer.
func (c *wsConn) onInit(payload map[string]any) {
	id, ok, err := c.t.authn.FromInitPayload(c.ctx, payload)
	if err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
		c.t.log.Error("server: cannot authenticate WebSocket connection", slog.Any("error", err))
	}
	if err == nil && !ok && c.upgradeIdentity != nil {
		id, ok = *c.upgradeIdentity, true
	}
	c.upgradeIdentity = nil
	v := initVerdict{err: err}
	if ok {
		v.expires = id.ExpiresAt
	}
	step := c.machine.answerInit(v, time.Now(), &c.t.cfg)
	if step.nowAcked {
		c.identity, c.hasIdentity = id, ok
	}
	c.carryOut(step)
}

// onSubscribe starts operation id, which the protocol has let through:
// the socket's limits, the execution, the mutation rate.
func (c *wsConn) onSubscribe(id string, params operationPayload) {
	limit := c.limitOperation()
	op, fresh := c.addOp(id)
	if !fresh {
		c.carryOut(c.machine.idInUse(id, op.idJSON))
		return
	}
	if limit == nil {
		limit = c.limitVariables(params.Variables)
	}
	if limit != nil {
		c.rejectOp(op, &graphql.Response{Errors: gqlerror.List{limit}})
		return
	}
	// Every operation is traced on its own, as an HTTP request would be.
	ctx := graphql.StartOperationTrace(c.ctx)
	if c.hasIdentity {
		ctx = auth.NewContext(ctx, c.identity)
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
	if rc.Operation.Operation == ast.Mutation && c.hasIdentity {
		if ok, wait := c.t.mutations.allow(c.identity.UserID, time.Now()); !ok {
			c.rejectOp(op, &graphql.Response{Errors: gqlerror.List{rateLimitedError("too many mutations by this user", wait)}})
			return
		}
	}
	if rc.Operation.Operation == ast.Subscription {
		c.t.execs.join(op, ctx, c.exec, raw, rc, c.t.cfg.viewerDirective, c.t.cfg.resumeArgument)
		return
	}
	c.runSingle(op, ctx, rc)
}

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
	c.t.metrics.operations.Inc()
	return op, true
}

// removeOp takes op out of the ops map; false if it was not there (the
// client completed it, or the socket is going).
func (c *wsConn) removeOp(op *operation) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ops[op.id] != op {
		return false
	}
	delete(c.ops, op.id)
	c.t.metrics.operations.Dec()
	return true
}

// rejectOp ends an operation that failed before it ran (parse,
// validation, limits) as its protocol does (wsMachine.reject).
func (c *wsConn) rejectOp(op *operation, resp *graphql.Response) {
	if c.removeOp(op) {
		c.carryOut(c.machine.reject(op, resp))
	}
}

// runSingle executes a query or mutation: next, then complete.
func (c *wsConn) runSingle(op *operation, ctx context.Context, rc *graphql.OperationContext) {
	ctx, cancel := context.WithCancel(ctx)
	op.cancel = cancel
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cancel()
		responses, rctx := c.exec.DispatchOperation(ctx, rc)
		resp := responses(rctx)
		if resp == nil || !c.removeOp(op) {
			return // completed by the client, or the socket is gone
		}
		c.enqueue(outItem{kind: frameNext, op: op, data: &payload{bytes: encodeResponse(resp)}})
		c.enqueue(outItem{kind: frameComplete, op: op})
	}()
}

// onComplete stops an operation at the client's request; nothing more is
// sent for its id, which may be reused at once.
func (c *wsConn) onComplete(id string) {
	c.mu.Lock()
	op := c.ops[id]
	if op != nil {
		delete(c.ops, id)
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
			_ = c.ws.NetConn().Close() // the reader sees it and tears down
			return
		}
	}
}

// batchBytes is how many bytes of frames the writer gathers before a
// write, large payloads included: several frames ready for one socket
// leave in one system call, and a write is at most batchBytes and one
// frame. That bounds what a close must wait for when it follows the write
// under way (see writeBatch), and how much one write deadline covers; a
// write of 32 KiB costs a system call for little.
const batchBytes = 32 << 10

// writeBatch writes the frames of batch in order with as few system calls
// as it can. Frames are built one after another in one buffer, and a
// large payload joins the same write as a part of its own (writev) rather
// than being copied for each socket. The GraphQL protocols allow one
// message per frame, not one frame per write.
func (c *wsConn) writeBatch(batch []outItem) error {
	if len(batch) == 1 {
		return c.write(&batch[0])
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
		if it.kind == frameNext && len(it.data.bytes) > largePayload {
			parts = append(parts, (*buf)[flushed:], it.data.bytes, closingBrace)
			flushed = len(*buf)
			large += len(it.data.bytes)
		}
		if len(*buf)+large >= batchBytes {
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
	return c.wire().writeFrameParts(parts)
}

// appendItem appends the frame of one queued item to buf: whole, except
// that a next frame with a large payload gets only its header (the
// payload and closing brace follow as parts of their own). An item whose
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

// countDelivered counts the next frames of items, once written.
func (c *wsConn) countDelivered(items []outItem) {
	for i := range items {
		if it := &items[i]; it.kind == frameNext {
			c.t.metrics.deliveries.Inc()
			if !it.data.appended.IsZero() {
				c.t.metrics.latency.Observe(time.Since(it.data.appended).Seconds())
			}
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
		if err := c.write(&batch[i]); err != nil {
			_ = c.ws.NetConn().Close() // the reader sees it and tears down
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
}

// write writes one queued item as a whole frame (frameWire: the rest of
// one).
func (c *wsConn) write(it *outItem) error {
	switch it.kind {
	case frameRaw:
		return c.writeSmall(opText, it.raw)
	case framePingCtl:
		return c.writeSmall(opPing, "")
	case framePongCtl:
		return c.writeSmall(opPong, it.raw)
	case frameWire:
		_, err := io.WriteString(c.wire().Conn, it.raw)
		return err
	}
	if it.op.finished.Load() {
		return nil // the client completed it: silence for this id
	}
	if it.kind == frameNext {
		return c.writeNext(it.op, it.data)
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

func (c *wsConn) writeNext(op *operation, p *payload) error {
	buf := c.t.frames.get()
	defer c.t.frames.put(buf)
	*buf = appendOpFrameHead((*buf)[:0], c.machine.proto, frameNext, op.idJSON, len(p.bytes))
	var err error
	if len(p.bytes) > largePayload {
		err = c.wire().writeFrameParts(net.Buffers{*buf, p.bytes, closingBrace})
	} else {
		*buf = append(append(*buf, p.bytes...), '}')
		err = c.wire().writeFrame(*buf)
	}
	if err != nil {
		return err
	}
	c.t.metrics.deliveries.Inc()
	if !p.appended.IsZero() {
		c.t.metrics.latency.Observe(time.Since(p.appended).Seconds())
	}
	return nil
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

// checkTimers enforces the init timeout, the credentials' expiry and
// keepalive (wsMachine.tick); the keeper calls it for every socket on
// each tick.
func (c *wsConn) checkTimers(now time.Time) {
	if !c.isClosing() {
		c.carryOut(c.machine.tick(now, c.created, &c.t.cfg))
	}
}

// encodeResponse renders an execution result as a protocol payload.
func encodeResponse(resp *graphql.Response) []byte {
	buf := make([]byte, 0, len(resp.Data)+64)
	buf = append(buf, '{')
	if len(resp.Errors) > 0 {
		errs, _ := json.Marshal(resp.Errors)
		buf = append(buf, `"errors":`...)
		buf = append(buf, errs...)
		buf = append(buf, ',')
	}
	buf = append(buf, `"data":`...)
	if len(resp.Data) == 0 {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, resp.Data...)
	}
	if cursor, ok := onlyCursor(resp.Extensions); ok {
		// Every subscription event carries just its cursor: spare
		// encoding/json's sorted, reflective encoding of a map.
		buf = append(buf, `,"extensions":{"cursor":`...)
		buf = appendJSONString(buf, cursor)
		buf = append(buf, '}')
	} else if len(resp.Extensions) > 0 {
		ext, _ := json.Marshal(resp.Extensions)
		buf = append(buf, `,"extensions":`...)
		buf = append(buf, ext...)
	}
	return append(buf, '}')
}

// onlyCursor returns the cursor when it is the only extension.
func onlyCursor(ext map[string]any) (string, bool) {
	if len(ext) != 1 {
		return "", false
	}
	cursor, ok := ext["cursor"].(string)
	return cursor, ok
}

// appendJSONString appends s as a JSON string. Cursors are plain ASCII;
// anything else is left to encoding/json.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

func newWSTransport(opts Options, m *metrics, resp responder, mutations *identityLimiter,
	ss *sessions, execs *sharedExecutions) *wsTransport {
	cfg := wsConfig{
		initTimeout:     opts.InitTimeout,
		pingInterval:    opts.PingInterval,
		pongTimeout:     opts.PongTimeout,
		writeTimeout:    opts.WriteTimeout,
		queueItems:      opts.QueueMessages,
		queueBytes:      opts.QueueBytes,
		maxMessageBytes: opts.MaxMessageBytes,
		viewerDirective: opts.ViewerDirective,
		resumeArgument:  opts.ResumeArgument,
		limits:          opts.Limits,
	}
	return &wsTransport{
		cfg:       cfg,
		mutations: mutations,
		authn:     opts.Authenticator,
		upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			// ReadBufferSize 0: gorilla reads through readerHijacker's buffer.
			WriteBufferSize: 4096,
			WriteBufferPool: &sync.Pool{},
			// Server.withCORS has checked the Origin against the allow-list
			// before the request got here.
			CheckOrigin: func(*http.Request) bool { return true },
		},
		execs:    execs,
		sessions: ss,
		keeper:   newKeeper(cfg),
		metrics:  m,
		log:      opts.Logger,
		reject: func(w http.ResponseWriter, r *http.Request, status int, msg string) {
			resp.reject(w, r, fallbackMedia(r), status, msg)
		},
	}
}
