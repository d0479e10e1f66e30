package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/gorilla/websocket"

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
	parker    *parker // nil: every socket keeps a reader goroutine
	metrics   *metrics
	mutations *identityLimiter // shared with HTTP; nil: no limit
	log       *slog.Logger
	resp      responder // for what refuseCredentials and onInit log
	reject    func(w http.ResponseWriter, r *http.Request, status int, msg string)

	sessions *sessions // admission and drain, shared with the HTTP streams
}

var _ graphql.Transport = (*wsTransport)(nil)

// Supports claims WebSocket upgrade requests.
func (t *wsTransport) Supports(r *http.Request) bool { return isWebSocketUpgrade(r) }

// Do negotiates the subprotocol, upgrades, and hands the socket to a
// reader on a goroutine of its own (wsConn.serve), returning at once
// rather than serving the socket on the request's goroutine. Requests
// offering neither subprotocol are refused before the upgrade, with a
// body that says what to offer; requests of another WebSocket version
// before anything else.
func (t *wsTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if offersOtherVersionsOnly(r) {
		// First: a client of another version cannot tell what else to
		// change (its subprotocols, say) before it knows to retry with
		// version 13, which only refuseHandshake's answer names (RFC 6455
		// section 4.2.2).
		t.refuseHandshake(w, r, http.StatusBadRequest, errUnsupportedVersion)
		return
	}
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		// The upgrader would close the connection without a word, or,
		// with the body in a later segment, read it as frames.
		t.reject(w, r, http.StatusBadRequest, "a WebSocket upgrade request must have no body")
		return
	}
	proto, ok := negotiateSubprotocol(offeredSubprotocols(r))
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
		t.reject(w, r, http.StatusServiceUnavailable, fmt.Sprintf(
			"this replica holds its limit of %d WebSocket connections and HTTP streams together; reconnect to another replica", t.sessions.maxConnections))
		return
	}
	// Bad credentials on the upgrade (a stale cookie) are judged at
	// connection_init, which may carry good ones: a browser cannot read a
	// refused upgrade's 401, and cannot drop its cookie to reconnect.
	// The socket is admitted by now: a panic left to the handler's
	// recovery would keep its place until restart (requestCredentials).
	upgradeID, hasUpgradeID, upgradeErr := requestCredentials(t.log, t.authn, r)
	if upgradeErr != nil && !errors.Is(upgradeErr, auth.ErrInvalidCredentials) {
		t.sessions.done()
		t.refuseCredentials(w, r, upgradeErr)
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
	if c.input != nil {
		c.wire().park = newParkedReader(t.parker, c.wire(), c.serve)
	}
	if hasUpgradeID {
		c.upgradeIdentity = &upgradeID
		c.upgradeUser = upgradeID.UserID
	}
	c.upgradeErr = upgradeErr
	c.start()
	go c.serve()
}

// errUnsupportedVersion refuses a handshake of a WebSocket version other
// than 13.
var errUnsupportedVersion = errors.New("unsupported version: this server speaks WebSocket version 13")

// offersOtherVersionsOnly reports whether an upgrade request names
// WebSocket versions, 13 not among them. One that names none is not a
// handshake of another version but a broken one, left to Do's other
// refusals and the upgrader's.
func offersOtherVersionsOnly(r *http.Request) bool {
	values := r.Header.Values("Sec-WebSocket-Version")
	if len(values) == 0 {
		return false
	}
	for _, v := range values {
		for version := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(version) == "13" {
				return false
			}
		}
	}
	return true
}

// refuseCredentials answers an upgrade whose request carries credentials
// (an Authorization header or cookie) that could not be checked, before
// upgrading, with 503, unless its client left meanwhile (see
// credentialsUnchecked).
func (t *wsTransport) refuseCredentials(w http.ResponseWriter, r *http.Request, err error) {
	if t.resp.credentialsUnchecked(r, "server: cannot authenticate WebSocket upgrade", err) {
		t.reject(w, r, http.StatusServiceUnavailable, "authentication is unavailable; try again later")
	}
}

// drainReason is the reason sent with the close frame of a drained socket.
const drainReason = "server shutting down; reconnect"

// The socket as a session (see sessions): admission and drain.

func (c *wsConn) openedAt() time.Time { return c.created }
func (c *wsConn) drop()               { c.cut() }
func (c *wsConn) ended() bool         { return c.tornDown() }

// goAway closes the socket with 1001, so that its client reconnects to
// another replica, but not before the answers of the queries and
// mutations it runs: a mutation cancelled by the close may have been
// stored, and one stored but not answered leaves the client unable to
// tell whether to send it again. From now on the socket starts no
// operation (see onSubscribe); the last of those in flight to queue its
// answer chooses the close (endSingle), and an idle socket closes at
// once. Subscriptions are not waited for: they resume elsewhere. The
// drain's deadline bounds the wait: its drop cuts the connection and
// cancels what still runs. It never blocks.
func (c *wsConn) goAway() {
	c.mu.Lock()
	c.leaving = true
	answering := c.singles > 0
	c.mu.Unlock()
	if !answering {
		c.closeWith(closeGoingAway, drainReason)
	}
}

// cut closes the connection under the socket: its reader sees the end,
// and c.ctx ends, so that what the socket's operations still wait for
// (a subscription's resolver starting, see sharedExecutions.abandonWith;
// a query) is told at once, though the reader that would tear the socket
// down may be inside one of them.
func (c *wsConn) cut() {
	c.cancel()
	_ = c.ws.NetConn().Close()
}

// user is who the socket acts as: its acknowledged identity's user, or,
// until connection_init is acknowledged, its upgrade request's.
func (c *wsConn) user() string {
	if id := c.identity.Load(); id != nil {
		return id.UserID
	}
	return c.upgradeUser
}

// disconnect closes the socket with 4403, its user disconnected by an
// administrator.
func (c *wsConn) disconnect() { c.closeWith(closeForbidden, disconnectedReason) }

// disconnectedReason is the close reason and error message of a session
// ended by DisconnectUser.
const disconnectedReason = "Forbidden: disconnected by an administrator"

// Refresh is auth.Session's: the socket takes token's credentials, for the
// same user, and is closed with 4403 when they expire instead of the old
// ones. Operations the socket starts afterwards act with the new identity.
func (c *wsConn) Refresh(ctx context.Context, token string) (auth.Identity, error) {
	id, ok, err := c.t.authn.FromToken(ctx, token)
	switch {
	case err != nil:
		return auth.Identity{}, err
	case !ok:
		return auth.Identity{}, fmt.Errorf("%w: refreshSession needs a token", auth.ErrInvalidCredentials)
	}
	// Two refreshes at once (two mutations in flight) must leave the
	// identity and the expiry of the same one: the keeper closes the
	// socket at the expiry, so the other's would close it too early or
	// too late.
	c.refreshMu.Lock()
	cur := c.identity.Load()
	if cur == nil || cur.UserID != id.UserID {
		c.refreshMu.Unlock()
		return auth.Identity{}, fmt.Errorf("%w: the socket acts as %s", auth.ErrOtherUser, describeUser(cur))
	}
	c.identity.Store(&id)
	c.machine.extendExpiry(id.ExpiresAt)
	c.refreshMu.Unlock()
	c.t.keeper.wake(c)
	return id, nil
}

// describeUser names who a socket acts as, for an error.
func describeUser(id *auth.Identity) string {
	if id == nil {
		return "no user"
	}
	return fmt.Sprintf("user %q", id.UserID)
}

// operation is one operation id on one socket: a subscription membership
// or a query/mutation in flight.
type operation struct {
	id     string
	idJSON string     // the id as a JSON string, encoded once
	sub    subscriber // the transport the operation's results go to
	// finished is set when nothing more may be sent for this id: the
	// client completed it, or its last frame was written.
	finished atomic.Bool
	// awaitingState is set for a subscriber that joined a running
	// execution whose results are states and changes to them (a resolver
	// that asked auth.OnJoin to resend its state): it receives nothing
	// until the next state, so that it never gets changes to a state it
	// has not seen. Cleared by the delivery of that state.
	awaitingState atomic.Bool

	exec    *execution // subscriptions; guarded by the registry's lock
	idx     int        // position among exec's members; guarded by exec.mu
	handoff *handoff   // a resumed subscription's replay, until it goes live
	cancel  context.CancelFunc
	// viewer is the subscriber's user ID ("" when anonymous), set before
	// the operation joins an execution. grant is the access a gated
	// execution admitted it under (see execution.admit): since+1, 0 before
	// admission, refusedGrant once refused.
	viewer string
	grant  atomic.Uint64
	// presence is the topic op is counted present on (see
	// presenceTracker), "" when none; guarded by the tracker's lock.
	presence string
}

// wsConn is one socket: a reader on a goroutine of its own (serve, started
// by wsTransport.Do, which returns at once) that runs only while the socket
// has input and parks it in between (see parkedReader; without a parker it
// waits, and each message is read on a short-lived helper, see
// inputWaiter), a writer goroutine that runs only while its bounded queue
// holds frames, and the operations by id.
type wsConn struct {
	t       *wsTransport
	ws      *websocket.Conn
	machine wsMachine // the protocol: what messages and ticks mean
	exec    graphql.GraphExecutor
	queue   *outQueue
	input   *inputWaiter // nil: the reader reads on its own stack

	ctx    context.Context // ends once the socket can carry no more: its close frame sent, its connection cut, or torn down
	cancel context.CancelFunc

	created time.Time
	slot    int32 // in the keeper's live sockets; -1: none. Guarded by the keeper's mu.

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
	awaitClose      bool           // the reader chose a close frame the writer must send before teardown
	upgradeIdentity *auth.Identity // from the upgrade request (a cookie, a header)
	// upgradeErr refuses the upgrade request's credentials: the socket is
	// closed with it at connection_init unless that carries its own.
	upgradeErr error
	// upgradeUser is upgradeIdentity's user, kept (and never changed once
	// the socket serves) so that DisconnectUser finds a socket whose
	// connection_init has not come yet.
	upgradeUser string
	subscribes  tokenBucket // Limits.SubscribeRate

	// Who the socket acts as once acknowledged (nil: anonymous). Set by
	// the reader at connection_init, replaced by Refresh, read by both
	// and by DisconnectUser.
	identity  atomic.Pointer[auth.Identity]
	refreshMu sync.Mutex // a refresh replaces the identity and its expiry together

	mu  sync.Mutex
	ops map[string]*operation
	// ending holds the operations taken out of ops whose last frame
	// (complete, error) is queued and not yet written: a client's
	// complete for the id must silence them too (onComplete).
	ending map[string]*operation
	// singles counts the queries and mutations in flight (runSingle),
	// from their start until their answer is queued. leaving is set by
	// goAway: no operation starts any more, and the socket closes with
	// 1001 once singles is 0. Both under mu, so that no query or mutation
	// starts after goAway has found none running.
	singles int
	leaving bool
	// opsGrown and endingGrown: ops or ending held more than smallOps
	// since they were made (see deleteOp).
	opsGrown, endingGrown bool

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
		slot:    -1,
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
// everything the socket holds, or until the reader parks the socket, to be
// run again on a new goroutine when the socket has input.
func (c *wsConn) serve() {
	if !c.serveInput() {
		return // parked: the parker runs serve again (see parkedReader)
	}
	c.awaitCloseFrame()
	c.teardown()
	c.t.sessions.done()
}

// awaitCloseFrame gives the writer up to closeGrace to send the close
// frame chosen before the reader's input ended (the client closed, broke
// the framing or sent too much; or it was told to close and half-closed
// its side), and the frames queued before it, before teardown closes the
// connection under it. The writer's close has the same grace, so this
// ends as it does.
func (c *wsConn) awaitCloseFrame() {
	if !c.awaitClose && !c.isClosing() {
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
	c.chooseClose(code, "", closeAnswer)
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
	c.chooseClose(code, reason, closeOrderly)
}

// closeSlow closes the socket as a slow consumer (1013), and counts it as
// one unless another close was chosen first.
func (c *wsConn) closeSlow(reason string) {
	if c.chooseClose(closeTryAgainLater, reason, closeDropQueue) {
		c.t.metrics.slowCloses.Inc()
	}
}

// closeKind is how a chosen close frame goes out.
type closeKind int

const (
	closeOrderly   closeKind = iota // after what is queued
	closeDropQueue                  // a slow consumer's: only the rest of a frame begun goes first
	closeAnswer                     // the answer to the client's close: as closeDropQueue, and not counted as the server's
)

// chooseClose chooses the close frame, unless one is chosen already, and
// wakes a writer to send it. It reports whether this call chose it.
func (c *wsConn) chooseClose(code int, reason string, kind closeKind) (chosen bool) {
	answer := kind == closeAnswer
	c.closeOnce.Do(func() {
		chosen = true
		c.closeCode, c.closeMsg = code, reason
		c.closeAbrupt = kind != closeOrderly
		c.closeSent = make(chan struct{}) // made here: an open socket does without
		close(c.closing)
		if !answer && !c.tornDown() {
			// Torn down, no frame goes out: a close chosen then (the last
			// answer owed by a socket going away, its client gone) is none.
			c.t.metrics.closeCounter(code).Inc()
		}
		if c.closeAbrupt {
			// Unblock a write stuck on a peer that does not read, and
			// keep it unblocked: a writer that saw no close yet may be
			// about to extend its deadline (extendWriteDeadline).
			_ = c.wire().limitWriteDeadline(time.Now().Add(closeGrace))
		}
		c.queue.seal()
		c.queue.wake() // a writer sends the close frame
	})
	return chosen
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
	if park := c.wire().park; park != nil {
		park.forget()
	}
	c.t.sessions.track(c, false)
	c.t.metrics.sockets.WithLabelValues(c.machine.proto.String()).Dec()
}

// release stops an operation that is no longer in the ops map.
func (c *wsConn) release(op *operation) {
	c.t.metrics.operations.Dec()
	op.release(c.t.execs)
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
		c.closeSlow("slow consumer: outbound queue full; reconnect and resume")
	}
}

// deliver queues an event of a shared execution for op.
func (c *wsConn) deliver(op *operation, p *payload) {
	// Credentials that expired since the keeper last looked (up to a
	// second ago) take no more events: the socket is closed with 4403 now,
	// as the keeper would, and as an event stream is sealed at its expiry.
	// An anonymous socket (expires 0) reads no clock.
	if exp := c.machine.expires.Load(); exp != 0 && time.Now().UnixNano() >= exp {
		c.carryOut(expiredStep())
		return
	}
	if c.writeNow(op, p) {
		return
	}
	c.enqueue(outItem{kind: frameNext, event: true, op: op, data: p})
}

// awaitRoom is the subscriber's: it waits until the socket's queue has
// room for a replay's next result, or ends (outQueue.awaitRoom), or until
// ctx, the replay's execution's, ends.
func (c *wsConn) awaitRoom(ctx context.Context) {
	c.queue.awaitRoom(ctx.Done())
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
// the upgrade request, and has the protocol answer. The check gets until
// the init timeout: past it the socket is closed with 4408 whatever the
// verdict (see wsMachine.tick), and a check still waiting on a service
// would hold the socket's reader, and its place, for nothing.
func (c *wsConn) onInit(payload map[string]any) {
	ctx, cancel := context.WithDeadline(c.ctx, c.created.Add(c.t.cfg.initTimeout))
	defer cancel()
	id, ok, err := c.authenticateInit(ctx, payload)
	if ctx.Err() != nil {
		c.carryOut(c.machine.tick(time.Now(), c.created, &c.t.cfg)) // 4408
		return
	}
	if err != nil && !errors.Is(err, auth.ErrInvalidCredentials) {
		c.t.resp.logAuthFailure(ctx, "server: cannot authenticate WebSocket connection",
			slog.String("remote_addr", c.ws.RemoteAddr().String()), slog.Any("error", err))
	}
	if err == nil && !ok {
		switch {
		case c.upgradeErr != nil:
			err = c.upgradeErr // it names the cookie or header
		case c.upgradeIdentity != nil:
			id, ok = *c.upgradeIdentity, true
		}
	}
	c.upgradeIdentity, c.upgradeErr = nil, nil
	v := initVerdict{err: err}
	if ok {
		v.expires = id.ExpiresAt
	}
	step := c.machine.answerInit(v, time.Now(), &c.t.cfg)
	if step.nowAcked && ok {
		c.identity.Store(&id)
	}
	c.carryOut(step)
	// Legacy starts that came before connection_init (see holdEarly).
	for _, msg := range c.machine.takeEarly() {
		if c.isClosing() {
			break // as readNext ignores what comes once a close is chosen
		}
		c.carryOut(c.machine.onSubscribe(msg))
	}
}

// authenticateInit has the authenticator judge connection_init's
// payload. It runs on the socket's reader, where nothing would recover a
// panic of the authenticator's and the process would end: one is logged
// and taken as credentials that could not be checked, which close the
// socket with 1013 as the authenticator's own errors do (answerInit).
func (c *wsConn) authenticateInit(ctx context.Context, payload map[string]any) (id auth.Identity, ok bool, err error) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(c.t.log, ctx, "authenticating a WebSocket connection", recovered)
			id, ok, err = auth.Identity{}, false, errAuthenticatorPanicked
		}
	}()
	return c.t.authn.FromInitPayload(ctx, payload)
}

// errAuthenticatorPanicked is the verdict on credentials whose check
// panicked (see authenticateInit).
var errAuthenticatorPanicked = errors.New("the authenticator panicked")

// checkTimers enforces the init timeout, the credentials' expiry and
// keepalive (wsMachine.tick); the keeper calls it for every socket on
// each tick.
func (c *wsConn) checkTimers(now time.Time) {
	if !c.isClosing() {
		c.carryOut(c.machine.tick(now, c.created, &c.t.cfg))
	}
}

// nextDue is when the keeper next has something to check on c.
func (c *wsConn) nextDue() int64 { return c.machine.nextDue(&c.t.cfg) }

// encodeResponse renders an execution result as a protocol payload. A
// result of errors without data (a request error, or a subscription whose
// resolver failed before any event) has no "data" entry, as the GraphQL
// spec asks and wireResponse does over HTTP; execution's explicit null
// stays.
func encodeResponse(resp *graphql.Response) []byte {
	buf := make([]byte, 0, len(resp.Data)+64)
	buf = append(buf, '{')
	if len(resp.Errors) > 0 {
		errs, _ := json.Marshal(resp.Errors)
		buf = append(buf, `"errors":`...)
		buf = append(buf, errs...)
		if len(resp.Data) > 0 {
			buf = append(buf, ',')
		}
	}
	switch {
	case len(resp.Data) > 0:
		buf = append(buf, `"data":`...)
		buf = append(buf, resp.Data...)
	case len(resp.Errors) == 0:
		buf = append(buf, `"data":null`...)
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
	t := &wsTransport{
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
		resp:     resp,
		reject: func(w http.ResponseWriter, r *http.Request, status int, msg string) {
			resp.reject(w, r, fallbackMedia(r), status, msg)
		},
	}
	t.upgrader.Error = t.refuseHandshake
	return t
}

// refuseHandshake answers an upgrade request the upgrader refuses (not a
// GET, a missing Sec-WebSocket-Key; another WebSocket version, which Do
// refuses before anything else) as every
// other refusal is answered, with a GraphQL error saying what is wrong,
// rather than gorilla's bare status text; with the version this server
// speaks (RFC 6455 section 4.4) and, for a method other than GET, the
// method a handshake takes (a 405 must say, RFC 9110 section 15.5.6).
func (t *wsTransport) refuseHandshake(w http.ResponseWriter, r *http.Request, status int, reason error) {
	w.Header().Set("Sec-WebSocket-Version", "13")
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodGet)
	}
	t.reject(w, r, status, "WebSocket handshake refused: "+strings.TrimPrefix(reason.Error(), "websocket: "))
}
