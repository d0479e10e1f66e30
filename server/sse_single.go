package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
)

// A single-connection-mode stream's token travels in this header, or in
// this query parameter where the client cannot set headers (EventSource).
const (
	streamTokenHeader = "X-GraphQL-Event-Stream-Token"
	streamTokenQuery  = "token"
)

// reservationTTL is how long a reserved stream waits to be opened.
const reservationTTL = 30 * time.Second

// maxReservations bounds the streams reserved and not yet opened on one
// replica; maxUserReservations those of one user, and
// maxAnonymousReservations those of every anonymous client together, so
// that one client cannot take them all (a PUT costs it nothing to send,
// and holds a place for reservationTTL).
const (
	maxReservations          = 10000
	maxUserReservations      = 64
	maxAnonymousReservations = maxReservations / 4
)

// claimMethod is the relayed "request" by which the replica that opens a
// stream takes its reservation from the replica that made it.
const claimMethod = "CLAIM"

// sseSingleTransport serves graphql-sse's single connection mode on
// /graphql: PUT reserves a stream and answers its token; GET with the
// token and Accept: text/event-stream opens it; POST (or GET) with the
// token runs an operation whose results the stream carries, as "next"
// events {"id","payload"} and a "complete" event {"id"}; DELETE with the
// token and ?operationId= stops one.
//
// Each of these may reach any replica. The replica holding the stream (or
// the reservation) listens for its token on the Relay, and any other
// replica relays the request to it, so no sticky sessions are needed.
type sseSingleTransport struct {
	*httpStreams
	maxBodyBytes int64
	limits       Limits
	relay        Relay
	replay       http.Handler // serves relayed requests: the GraphQL handler
	log          *slog.Logger
	reserveFor   time.Duration // how long a reservation waits to be opened
	relayServe   time.Duration // bound on serving a relayed request (relayServeTimeout)

	mu         sync.Mutex
	held       map[string]*heldStream
	reserved   int            // held streams not yet opened
	reservedBy map[string]int // of those, each user's ("" anonymous)
	closed     bool           // the server is draining: no new reservations
}

// heldStream is a stream this replica holds: reserved, then open.
type heldStream struct {
	token string
	user  string      // the user who reserved it; "" anonymous
	timer *time.Timer // the reservation's expiry; nil once open
	st    *httpStream // nil while reserved
	stop  func()      // stops listening for the token on the relay
}

var _ graphql.Transport = (*sseSingleTransport)(nil)

func newSSESingleTransport(streams *httpStreams, opts Options, relay Relay) *sseSingleTransport {
	return &sseSingleTransport{
		httpStreams:  streams,
		maxBodyBytes: opts.MaxBodyBytes,
		limits:       opts.Limits,
		relay:        panicSafeRelay{relay: relay, log: opts.Logger},
		log:          opts.Logger,
		reserveFor:   reservationTTL,
		relayServe:   relayServeTimeout,
		held:         make(map[string]*heldStream),
		reservedBy:   make(map[string]int),
	}
}

// Supports claims every request of the single connection mode: a PUT or
// DELETE, or a GET or POST carrying a stream token.
func (t *sseSingleTransport) Supports(r *http.Request) bool {
	if isWebSocketUpgrade(r) {
		return false
	}
	return r.Method == http.MethodPut || r.Method == http.MethodDelete || streamToken(r) != ""
}

// streamToken returns the token r carries, if any.
func streamToken(r *http.Request) string {
	if tok := r.Header.Get(streamTokenHeader); tok != "" {
		return tok
	}
	return r.URL.Query().Get(streamTokenQuery)
}

// Do serves one request of the mode.
func (t *sseSingleTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	switch {
	case r.Method == http.MethodPut:
		t.reserve(w, r)
	case r.Method == http.MethodGet && acceptsEventStream(r):
		t.openStream(w, r)
	default:
		t.operate(w, r, exec)
	}
}

// reserve answers a PUT with 201 and a new stream token, as text/plain.
func (t *sseSingleTransport) reserve(w http.ResponseWriter, r *http.Request) {
	if !acceptsPlainText(r) {
		t.run.reject(w, r, mediaJSON, http.StatusNotAcceptable,
			"a stream reservation (PUT) answers its token as text/plain, which the Accept header does not allow")
		return
	}
	ctx, ok := t.run.authenticate(w, r, mediaJSON)
	if !ok {
		return
	}
	h, status, msg := t.hold(userOf(ctx))
	if h == nil {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(int(max(t.reserveFor/time.Second, 1))))
		}
		t.run.reject(w, r, mediaJSON, status, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	noSniff(w.Header())
	w.WriteHeader(http.StatusCreated)
	_, _ = t.run.deadline.write(w, []byte(h.token))
}

// hold reserves a new stream for user, listening for its token; nil with
// the status and message to answer when it cannot.
func (t *sseSingleTransport) hold(user string) (*heldStream, int, string) {
	if t.sessions.isDraining() {
		return nil, http.StatusServiceUnavailable, "server is shutting down; reserve the stream on another replica"
	}
	token, err := newStreamToken()
	if err != nil {
		t.log.Error("server: cannot make a stream token", slog.Any("error", err))
		return nil, http.StatusInternalServerError, "cannot make a stream token"
	}
	h := &heldStream{token: token, user: user}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, http.StatusServiceUnavailable, "server is shutting down; reserve the stream on another replica"
	}
	if t.reserved >= maxReservations {
		t.mu.Unlock()
		return nil, http.StatusServiceUnavailable, "this replica holds too many stream reservations; try again shortly"
	}
	if limit := reservationsAllowed(user); t.reservedBy[user] >= limit {
		t.mu.Unlock()
		who := "this user holds"
		if user == "" {
			who = "anonymous clients hold"
		}
		return nil, http.StatusTooManyRequests, fmt.Sprintf(
			"%s %d stream reservations not yet opened, the most allowed; open them, or wait until they lapse (%s)", who, limit, t.reserveFor)
	}
	t.held[token] = h
	t.reserved++
	t.reservedBy[user]++
	t.mu.Unlock()
	if !t.listen(h) {
		t.forget(h)
		return nil, http.StatusServiceUnavailable, "cannot reserve a stream now: the relay between replicas is unavailable"
	}
	t.mu.Lock()
	if t.held[token] == h {
		h.timer = time.AfterFunc(t.reserveFor, func() { t.expire(h) })
	}
	t.mu.Unlock()
	return h, 0, ""
}

// reservationsAllowed is how many streams user may hold reserved and not
// yet opened on one replica.
func reservationsAllowed(user string) int {
	if user == "" {
		return maxAnonymousReservations
	}
	return maxUserReservations
}

// unreserveLocked counts a reservation of user's as opened or forgotten;
// t.mu is held.
func (t *sseSingleTransport) unreserveLocked(user string) {
	t.reserved--
	if t.reservedBy[user]--; t.reservedBy[user] <= 0 {
		delete(t.reservedBy, user)
	}
}

// listen registers h's token on the relay.
func (t *sseSingleTransport) listen(h *heldStream) bool {
	stop, err := t.relay.Listen(h.token, func(ctx context.Context, msg RelayMessage) RelayMessage {
		return t.serveRelayed(ctx, h.token, msg)
	})
	if err != nil {
		t.log.Error("server: cannot listen for a stream's requests on the relay", slog.Any("error", err))
		return false
	}
	t.mu.Lock()
	forgotten := t.held[h.token] != h // close or an expiry came first
	if !forgotten {
		h.stop = stop
	}
	t.mu.Unlock()
	if forgotten {
		stop()
		return false
	}
	return true
}

// expire forgets a reservation that was never opened.
func (t *sseSingleTransport) expire(h *heldStream) {
	t.mu.Lock()
	var stop func()
	if h.st == nil { // checked and forgotten under one lock: claim may be opening it
		stop = t.releaseLocked(h)
	}
	t.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// forget stops holding h and listening for its token.
func (t *sseSingleTransport) forget(h *heldStream) {
	t.mu.Lock()
	stop := t.releaseLocked(h)
	t.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// releaseLocked stops holding h, with t.mu held, and returns the function
// that stops listening for its token, to call once t.mu is released; nil
// if there is none. A caller that forgets h only while it is a reservation
// checks h.st in the same critical section: once t.mu is released, claim
// may open it.
func (t *sseSingleTransport) releaseLocked(h *heldStream) func() {
	if t.held[h.token] == h {
		delete(t.held, h.token)
		if h.st == nil {
			t.unreserveLocked(h.user)
		}
	}
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	stop := h.stop
	h.stop = nil
	return stop
}

// stopReserving refuses new reservations from now on: the server is
// draining. The reservations it holds are still handed over (handOver) to
// the replica that opens their stream, until they lapse (reservationTTL):
// a client that reserved here just before the drain opens its stream on
// another replica, the load balancer having taken this one out, and must
// not be told that its stream does not exist. This replica opens none of
// them itself: a draining replica admits no stream (httpStreams.admit).
// Open streams are sessions, ended by the drain, and forget themselves.
func (t *sseSingleTransport) stopReserving() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
}

// close refuses new reservations and forgets those it holds, which no
// replica can open afterwards: for a server that will answer nothing more,
// hand-overs included. A drain only stops reserving (stopReserving).
func (t *sseSingleTransport) close() {
	t.mu.Lock()
	t.closed = true
	var stops []func()
	for _, h := range t.held {
		if h.st == nil {
			if stop := t.releaseLocked(h); stop != nil {
				stops = append(stops, stop)
			}
		}
	}
	t.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

// openStream answers a GET with the token and Accept: text/event-stream
// with the reserved stream, taking the reservation from whichever replica
// made it.
func (t *sseSingleTransport) openStream(w http.ResponseWriter, r *http.Request) {
	token := streamToken(r)
	if !validStreamToken(token) {
		t.streamNotFound(w, r)
		return
	}
	ctx, ok := t.run.authenticate(w, r, mediaJSON)
	if !ok || !t.admit(w, r) {
		return
	}
	st := t.newStream(w, r, sseSingleFormat{})
	id, signedIn := auth.FromContext(ctx)
	st.ops = newStreamOpsOpenedWith(newOpContexts(r.Context(), id, signedIn))
	h, status, msg := t.claim(ctx, token, userOf(ctx), st)
	if h == nil {
		t.sessions.done()
		t.run.reject(w, r, mediaJSON, status, msg)
		return
	}
	defer t.forget(h)
	st.userID = userOf(ctx)
	t.start(st)
	defer st.close()
	st.loop(ctx)
}

// claim makes st the open stream of token: from a reservation of this
// replica, or one taken over the relay from the replica that made it.
func (t *sseSingleTransport) claim(ctx context.Context, token, user string, st *httpStream) (*heldStream, int, string) {
	t.mu.Lock()
	h := t.held[token]
	switch {
	case h != nil && h.user != user:
		// Open or not: another user learns nothing of a token.
		t.mu.Unlock()
		return nil, http.StatusNotFound, streamNotFound
	case h != nil && h.st != nil:
		t.mu.Unlock()
		return nil, http.StatusConflict, "the stream is already open"
	case h != nil:
		h.st = st
		t.unreserveLocked(h.user)
		if h.timer != nil {
			h.timer.Stop()
			h.timer = nil
		}
		t.mu.Unlock()
		return h, 0, ""
	}
	t.mu.Unlock()
	if isRelayed(ctx) {
		return nil, http.StatusNotFound, streamNotFound
	}
	if status, msg := t.claimRemote(ctx, token, user); status != http.StatusOK {
		return nil, status, msg
	}
	h = &heldStream{token: token, user: user, st: st}
	t.mu.Lock()
	t.held[token] = h
	t.mu.Unlock()
	if !t.listen(h) {
		t.forget(h)
		return nil, http.StatusServiceUnavailable, "cannot open the stream now: the relay between replicas is unavailable"
	}
	return h, 0, ""
}

// claimRemote asks the replica holding token's reservation to hand it
// over, answering the status to give the client.
func (t *sseSingleTransport) claimRemote(ctx context.Context, token, user string) (int, string) {
	msg := RelayMessage{Header: http.Header{}}
	msg.Header.Set(relayMethodHeader, claimMethod)
	msg.Header.Set(relayUserHeader, user)
	reply, err := sendPatiently(ctx, t.relay, token, msg, t.relayWait())
	t.countRelayed(ctx, err)
	switch {
	case errors.Is(err, ErrNoStreamHolder):
		return http.StatusNotFound, streamNotFound
	case err != nil && ctx.Err() != nil:
		t.log.DebugContext(ctx, "server: the client left while its stream reservation was claimed over the relay", slog.Any("error", err))
		return http.StatusServiceUnavailable, "the request ended before the stream's replica answered"
	case err != nil:
		t.log.ErrorContext(ctx, "server: cannot claim a stream reservation over the relay", slog.Any("error", err))
		return http.StatusBadGateway, "cannot reach the replica that holds the stream's reservation; reserve a new stream"
	}
	switch status := relayedStatus(reply); status {
	case http.StatusOK:
		return status, ""
	case http.StatusConflict:
		return status, "the stream is already open"
	default:
		return http.StatusNotFound, streamNotFound
	}
}

// relayWait is how long a sender waits for a relayed request: longer than
// the holder may take to serve it (see relayTimeout).
func (t *sseSingleTransport) relayWait() time.Duration {
	return t.relayServe + relayTimeout - relayServeTimeout
}

// serveRelayed answers a message relayed to token by another replica,
// within relayServe.
func (t *sseSingleTransport) serveRelayed(ctx context.Context, token string, msg RelayMessage) RelayMessage {
	ctx, cancel := context.WithTimeout(ctx, t.relayServe)
	defer cancel()
	if msg.Header.Get(relayMethodHeader) == claimMethod {
		return relayStatus(t.handOver(token, msg.Header.Get(relayUserHeader)))
	}
	r, err := replayedRequest(ctx, msg)
	if err != nil {
		t.log.ErrorContext(ctx, "server: cannot serve a relayed request", slog.Any("error", err))
		return relayStatus(http.StatusBadRequest)
	}
	rec := newRelayRecorder()
	t.replay.ServeHTTP(rec, r)
	if !rec.answered() {
		// A path that answers nothing takes r's ended context for a
		// client that left (see credentialsUnchecked); a relayed
		// request's client has not: it waits on the forwarding replica,
		// which would answer it 200 with nothing, an operation accepted
		// that never started. It is told to try again.
		if r.Context().Err() == nil {
			t.log.ErrorContext(ctx, "server: a relayed request was answered nothing",
				slog.String("method", r.Method), slog.String("path", r.URL.Path))
		}
		t.run.reject(rec, r, mediaJSON, http.StatusServiceUnavailable,
			"the replica that holds the stream gave no answer to the request; try again")
	}
	return rec.message()
}

// handOver gives token's reservation up to the replica opening its stream.
// It checks and forgets the reservation under one lock: a stream opened
// here meanwhile (claim), or handed over to another replica, must not be
// handed over too, or two streams would fulfil one reservation.
func (t *sseSingleTransport) handOver(token, user string) int {
	t.mu.Lock()
	h := t.held[token]
	status := http.StatusOK
	var stop func()
	switch {
	case h == nil || h.user != user:
		status = http.StatusNotFound
	case h.st != nil:
		status = http.StatusConflict
	default:
		stop = t.releaseLocked(h)
	}
	t.mu.Unlock()
	if stop != nil {
		stop()
	}
	return status
}

// operate serves an operation (POST, or GET without an event stream) or
// its stop (DELETE): here if this replica holds the stream, otherwise by
// relaying it to the replica that does.
func (t *sseSingleTransport) operate(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	token := streamToken(r)
	if !validStreamToken(token) {
		t.streamNotFound(w, r)
		return
	}
	t.mu.Lock()
	h := t.held[token]
	var st *httpStream
	if h != nil {
		st = h.st
	}
	t.mu.Unlock()
	switch {
	case st != nil:
		t.serveOperation(w, r, exec, h.user, st)
	case h != nil:
		t.reservedNotOpen(w, r, h.user)
	case isRelayed(r.Context()):
		t.streamNotFound(w, r)
	default:
		t.forward(w, r, token)
	}
}

// reservedNotOpen answers an operation on a reservation whose stream is not
// open: 409 for its user, and, as for any token, 404 for another (who must
// not learn that the token is reserved) once the request authenticates.
func (t *sseSingleTransport) reservedNotOpen(w http.ResponseWriter, r *http.Request, user string) {
	ctx, ok := t.run.authenticate(w, r, mediaJSON)
	if !ok {
		return
	}
	if userOf(ctx) != user {
		t.streamNotFound(w, r)
		return
	}
	t.run.reject(w, r, mediaJSON, http.StatusConflict,
		"the stream is reserved but not open; open it (GET with Accept: text/event-stream) before sending operations")
}

// forward relays r to the replica holding token's stream and writes its
// answer.
func (t *sseSingleTransport) forward(w http.ResponseWriter, r *http.Request, token string) {
	msg, rerr := relayRequest(r, t.maxBodyBytes)
	if rerr != nil {
		t.run.reject(w, r, mediaJSON, rerr.status, rerr.msg)
		return
	}
	reply, err := sendPatiently(r.Context(), t.relay, token, msg, t.relayWait())
	t.countRelayed(r.Context(), err)
	switch {
	case errors.Is(err, ErrNoStreamHolder):
		t.streamNotFound(w, r)
	case err != nil && r.Context().Err() != nil:
		// The client left while its request was on its way: nothing
		// failed, and no one is left to answer.
		t.log.DebugContext(r.Context(), "server: the client left while its request was relayed to the stream's replica", slog.Any("error", err))
	case errors.Is(err, ErrRelayMessageTooLarge):
		t.run.reject(w, r, mediaJSON, http.StatusRequestEntityTooLarge,
			"the request is too large to relay to the replica that holds the stream; send a smaller one")
	case errors.Is(err, ErrRelayAnswerTooLarge):
		t.log.ErrorContext(r.Context(), "server: the answer of the stream's replica is too large to relay back", slog.Any("error", err))
		t.run.reject(w, r, mediaJSON, http.StatusBadGateway,
			"the answer of the replica that holds the stream is too large to relay back")
	case err != nil:
		t.log.ErrorContext(r.Context(), "server: cannot relay a request to the stream's replica", slog.Any("error", err))
		t.run.reject(w, r, mediaJSON, http.StatusBadGateway, "cannot reach the replica that holds the stream; try again")
	default:
		t.run.writeRelayed(w, reply)
	}
}

// serveOperation runs an operation on st, the open stream of user.
func (t *sseSingleTransport) serveOperation(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor,
	user string, st *httpStream) {
	ctx, ok := t.run.authenticate(w, r, mediaJSON)
	if !ok {
		return
	}
	if userOf(ctx) != user {
		t.streamNotFound(w, r)
		return
	}
	if r.Method == http.MethodDelete {
		t.stopOperation(w, r, st)
		return
	}
	viaGET := r.Method == http.MethodGet
	params, rerr := t.read(w, r, viaGET)
	if rerr != nil {
		t.run.reject(w, r, mediaJSON, rerr.status, rerr.msg)
		return
	}
	id, _ := params.Extensions["operationId"].(string)
	if id == "" {
		t.run.reject(w, r, mediaJSON, http.StatusBadRequest,
			"the operation has no id: send a non-empty string as extensions.operationId")
		return
	}
	if len(id) > maxOperationIDBytes {
		t.run.reject(w, r, mediaJSON, http.StatusBadRequest,
			fmt.Sprintf("extensions.operationId is %d bytes, at most %d allowed", len(id), maxOperationIDBytes))
		return
	}
	op, opCtx, status := st.ops.add(ctx, id, st)
	if op == nil {
		msg := "an operation with this id is running on the stream; complete it or pick another id"
		switch status {
		case http.StatusNotFound:
			msg = streamNotFound
		case http.StatusServiceUnavailable:
			msg = streamLeaving
		}
		t.run.reject(w, r, mediaJSON, status, msg)
		return
	}
	if !t.startOperation(w, r, exec, st, op, opCtx, params, viaGET) {
		return
	}
	t.run.deadline.extend(w) // the header, flushed after this returns
	w.WriteHeader(http.StatusAccepted)
}

// startOperation prepares and starts op, which runs with ctx. An
// operation that may not run ends on the stream with its error, as it
// would on a WebSocket; false if r was answered instead.
func (t *sseSingleTransport) startOperation(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor,
	st *httpStream, op *operation, ctx context.Context, params *graphql.RawParams, viaGET bool) (started bool) {
	defer st.ops.busy.Done()
	running := false // a query or mutation runs on, and settles when it ends
	defer func() {
		if !running {
			st.ops.settle(op)
		}
	}()
	joining := false
	defer func() {
		if recovered := recover(); recovered != nil {
			t.startPanicked(ctx, st, op, joining, recovered)
			started = true
		}
	}()
	if err := t.limitOperation(st); err != nil {
		st.ops.fail(st, op, &graphql.Response{Errors: gqlerror.List{err}})
		return true
	}
	if size, over := variablesOver(params.Variables, t.limits.MaxVariablesBytes); over {
		st.ops.fail(st, op, &graphql.Response{Errors: gqlerror.List{limitError(
			"variables take %d bytes of JSON or more, more than the limit of %d", size, t.limits.MaxVariablesBytes)}})
		return true
	}
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	// A GET mutation is refused whatever its variables (see runner.prepare).
	if errs != nil && !(viaGET && isMutation(opCtx)) {
		st.ops.fail(st, op, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
		return true
	}
	switch opCtx.Operation.Operation {
	case ast.Mutation:
		if viaGET {
			st.ops.remove(op)
			op.release(t.execs)
			t.run.refuseGETMutation(w, r, mediaJSON)
			return false
		}
		// An anonymous client's mutations count by its address; a request
		// relayed from another replica has the one that replica took it
		// from (replayedRequest), or none ("") from a replica of an
		// earlier version, whose relayed clients count as one.
		if gerr := t.run.mutations.mutationsAllowed(ctx, opCtx, r.RemoteAddr); gerr != nil {
			st.ops.fail(st, op, &graphql.Response{Errors: gqlerror.List{gerr}})
			return true
		}
	case ast.Subscription:
		// A stream going away does not wait for its subscriptions, nor
		// for one still starting: it ends, and this start with it.
		st.ops.settle(op)
		joining = true
		t.execs.join(op, ctx, exec, params, opCtx, t.cfg.viewerDirective, t.cfg.resumeArgument)
		if isRelayed(r.Context()) && r.Context().Err() != nil && st.ops.remove(op) {
			// Its start outlasted relayServe: the sender may have stopped
			// waiting, and its client would retry an operation running
			// here. Take it back and say so.
			op.release(t.execs)
			t.run.reject(w, r, mediaJSON, http.StatusServiceUnavailable,
				"starting the operation took longer than a relayed request may; try again")
			return false
		}
		return true
	}
	st.ops.busy.Add(1)
	running = true
	go st.ops.runSingle(ctx, st, op, exec, opCtx)
	return true
}

// startPanicked answers a panic raised while op was being started, on the
// goroutine of the request that sent it, as wsConn.startPanicked does on a
// socket's. gqlgen's handler would recover it and answer that request 500,
// but op stayed registered on the stream: the stream never got its error
// nor its complete, its id stayed in use (a retry was 409) and it counted
// against Limits.MaxOperations until the stream ended. It is logged with
// its stack, and op ends on the stream with the internal error, its id
// freed; the request is answered 202, as for the stream's other
// operations that fail before they run, their error on the stream.
//
// Before op joins (joining false), the panic is the preparation's (the
// executor's parameter and context mutators, the complexity limit's
// functions, its error presenter): op holds nothing yet, and ends as
// one that failed before it ran (streamOps.fail).
//
// Out of join, it is the engine's own (see wsConn.startPanicked), op maybe
// half joined: op is released (leave takes it out of whatever it joined,
// as the stream's end would) and then ended on the stream. The stream
// goes on: join reaches it only through op (op's results and end), and
// ending it would cost its other operations and undo nothing more of
// op's than release does. (A socket is closed instead, 4500: that is how
// its protocols say an operation's state is unknown.)
func (t *sseSingleTransport) startPanicked(ctx context.Context, st *httpStream, op *operation, joining bool, recovered any) {
	logRecovered(t.log, ctx, "starting an operation on a single-connection stream", recovered)
	if !joining {
		st.ops.fail(st, op, &graphql.Response{Errors: gqlerror.List{internalError()}})
		return
	}
	removed := st.ops.remove(op) // first: what reaches op until it has left comes before its end
	op.release(t.execs)
	if removed {
		st.enqueue(streamItem{op: op, err: internalError()})
	}
}

// limitOperation applies Limits.MaxOperations and Limits.SubscribeRate to
// the stream, as to a socket.
func (t *sseSingleTransport) limitOperation(st *httpStream) *gqlerror.Error {
	l := t.limits
	o := st.ops
	o.mu.Lock()
	defer o.mu.Unlock()
	if l.MaxOperations > 0 && len(o.byID) > l.MaxOperations {
		return limitError("this stream has %d operations open, its limit; complete one first", len(o.byID)-1)
	}
	if l.SubscribeRate > 0 {
		if ok, wait := o.starts.take(time.Now(), l.SubscribeRate, burstOf(l.SubscribeRate, l.SubscribeBurst)); !ok {
			return rateLimitedError("too many operations started on this stream", wait)
		}
	}
	return nil
}

// stopOperation answers a DELETE: the operation named by ?operationId=
// stops, and its "complete" event ends it on the stream.
func (t *sseSingleTransport) stopOperation(w http.ResponseWriter, r *http.Request, st *httpStream) {
	id := r.URL.Query().Get("operationId")
	if id == "" {
		t.run.reject(w, r, mediaJSON, http.StatusBadRequest, "name the operation to stop in the operationId query parameter")
		return
	}
	if op := st.ops.take(id); op != nil {
		op.release(t.execs)
		st.enqueue(streamItem{op: op})
	}
	t.run.deadline.extend(w) // the header, flushed after this returns
	w.WriteHeader(http.StatusOK)
}

// read decodes an operation's parameters: the query string for GET, the
// JSON body for POST.
func (t *sseSingleTransport) read(w http.ResponseWriter, r *http.Request, viaGET bool) (*graphql.RawParams, *requestError) {
	if viaGET {
		return readQueryString(r, t.maxBodyBytes)
	}
	return postTransport{run: t.run, maxBodyBytes: t.maxBodyBytes}.read(w, r)
}

// streamNotFound is the answer for a token no replica holds, or holds for
// another user: which of the two is not told.
const streamNotFound = "stream not found: reserve one with PUT and open it with GET before sending operations"

// streamLeaving is the answer for an operation sent to a stream whose
// replica is draining: the stream ends once the operations it runs have
// finished, and its client sends the operation again on a new one.
const streamLeaving = "server is shutting down: the stream ends once its running operations finish; send the operation on a new stream, reserved on another replica"

func (t *sseSingleTransport) streamNotFound(w http.ResponseWriter, r *http.Request) {
	t.run.reject(w, r, mediaJSON, http.StatusNotFound, streamNotFound)
}

// The outcomes of a relayed request, herald_sse_relayed_requests_total's
// label values (see countRelayed).
const (
	relayOK       = "ok"
	relayNoHolder = "no_holder"
	relayCanceled = "canceled"  // the client left first: not an error of the relay
	relayTooLarge = "too_large" // the client's request, refused with 413
	relayError    = "error"
)

// countRelayed counts a relayed request by its outcome; one whose client
// left first (ctx ended) is "canceled", not an error of the relay.
func (t *sseSingleTransport) countRelayed(ctx context.Context, err error) {
	outcome := relayOK
	switch {
	case errors.Is(err, ErrNoStreamHolder):
		outcome = relayNoHolder
	case err != nil && ctx.Err() != nil:
		outcome = relayCanceled
	case errors.Is(err, ErrRelayMessageTooLarge):
		outcome = relayTooLarge
	case err != nil:
		outcome = relayError
	}
	t.metrics.relayed.WithLabelValues(outcome).Inc()
}

// relayStatus is an answer that is only a status.
func relayStatus(status int) RelayMessage {
	h := http.Header{}
	h.Set(relayStatusHeader, strconv.Itoa(status))
	return RelayMessage{Header: h}
}

// relayedStatus is the status of a relayed answer.
func relayedStatus(msg RelayMessage) int {
	status, err := strconv.Atoi(msg.Header.Get(relayStatusHeader))
	if err != nil {
		return http.StatusBadGateway
	}
	return status
}

// userOf is the user ctx is authenticated as; "" for anonymous.
func userOf(ctx context.Context) string {
	if id, ok := auth.FromContext(ctx); ok {
		return id.UserID
	}
	return ""
}

// acceptsPlainText reports whether r's Accept header allows text/plain.
func acceptsPlainText(r *http.Request) bool {
	if len(r.Header.Values("Accept")) == 0 {
		return true
	}
	ok := false
	eachAcceptedRange(r, func(mt string, _ map[string]string, q float64) {
		if q > 0 && (mt == "text/plain" || mt == "text/*" || mt == "*/*") {
			ok = true
		}
	})
	return ok
}

// newStreamToken returns 128 random bits, base64url: a token no one can
// guess, safe in a header, a query string and a NATS subject.
func newStreamToken() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// validStreamToken reports whether tok could be one of newStreamToken's.
func validStreamToken(tok string) bool {
	if len(tok) != 22 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// streamOps are the operations of a single-connection-mode stream, by the
// client's operation id.
type streamOps struct {
	mu     sync.Mutex
	byID   map[string]*operation
	starts tokenBucket // Limits.SubscribeRate
	closed bool        // the stream ended: no operation may start
	// leaving: the stream was told to go away (a drain). No operation
	// may start, and the stream ends once unsettled is empty (goAway).
	leaving bool
	// unsettled holds the operations whose result may yet be queued: each
	// from add until its end (complete) is queued (httpStream.enqueue), it
	// turns out to be a subscription, or it ends with nothing to send. A
	// stream told to go away waits for them, so that the result of a
	// query or mutation accepted with 202 reaches its client, who would
	// otherwise send it again on a new stream: a mutation twice.
	unsettled map[*operation]struct{}
	settled   chan struct{} // made by goAway; closed once unsettled is empty
	// busy counts operations being started and queries or mutations
	// running, which the stream's end waits for.
	busy sync.WaitGroup
	// contexts makes the contexts the operations run with. Set before the
	// stream is shared, then only read.
	contexts opContexts
}

// newStreamOps makes the operations of a stream opened by no request:
// their contexts carry their identity and nothing else (see opContexts).
func newStreamOps() *streamOps {
	return newStreamOpsOpenedWith(newOpContexts(context.Background(), auth.Identity{}, false))
}

// newStreamOpsOpenedWith makes the operations of a stream whose
// operations run with contexts from contexts.
func newStreamOpsOpenedWith(contexts opContexts) *streamOps {
	return &streamOps{byID: make(map[string]*operation), unsettled: make(map[*operation]struct{}), contexts: contexts}
}

// opContexts makes the contexts a stream's operations run with: the
// values of the request that opened the stream (its GET, which lasts as
// long as the stream does), with the identity of the request that sent
// the operation, and nothing else of that request. A context derived from
// that request's, even through context.WithoutCancel, keeps its parents
// reachable for as long as the operation runs: net/http's contexts of the
// request and of its connection, and the values of every handler it went
// through: about 1.1 KiB for each subscription a stream holds, where one
// on a socket holds 300 to 400 B (TestSingleOperationLetsItsRequestGo).
// Neither request's end ends an operation: its cancel does (streamOps.add).
type opContexts struct {
	bare     context.Context // the opening request's values, without its end or its identity
	own      context.Context // bare with the stream's identity, shared by the operations sent with it
	identity auth.Identity   // the stream's, if signedIn
	signedIn bool
}

// newOpContexts makes the contexts of the operations of a stream opened
// by a request with context opened, as identity if signedIn.
func newOpContexts(opened context.Context, identity auth.Identity, signedIn bool) opContexts {
	bare := context.WithoutCancel(opened)
	own := bare
	if signedIn {
		own = auth.NewContext(bare, identity)
	}
	return opContexts{bare: bare, own: own, identity: identity, signedIn: signedIn}
}

// of returns the values an operation sent by a request with context ctx
// runs with: the stream's, with ctx's identity. That request is of the
// stream's user (serveOperation), but its credentials may not be those
// that opened the stream (a refreshed token, expiring later, or another
// name or admin claim): the operation acts with its own, as it did when it
// ran with its request's context. Those of the stream cost nothing more.
// Identities are compared with ==: two that differ only in how a time is
// stored get a context each, which is as right.
func (c opContexts) of(ctx context.Context) context.Context {
	id, ok := auth.FromContext(ctx)
	switch {
	case ok == c.signedIn && (!ok || id == c.identity):
		return c.own
	case ok:
		return auth.NewContext(c.bare, id)
	default:
		return c.bare
	}
}

// add registers operation id and returns the context it runs with: the
// stream's values and ctx's identity (opContexts.of), until the operation
// ends or the stream does; ctx is that of the request that sent it, and
// the operation keeps nothing else of it. It returns nil with 409 for an
// id in use, 404 once the stream has ended, 503 once it is going away.
// The caller must call busy.Done once the operation has started, and see
// that settle is called for it (startOperation).
func (o *streamOps) add(ctx context.Context, id string, st *httpStream) (*operation, context.Context, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case o.closed:
		return nil, nil, http.StatusNotFound
	case o.leaving:
		return nil, nil, http.StatusServiceUnavailable
	case o.byID[id] != nil:
		return nil, nil, http.StatusConflict
	}
	idJSON, _ := json.Marshal(id)
	op := &operation{id: id, idJSON: string(idJSON), sub: st}
	ctx, op.cancel = context.WithCancel(graphql.StartOperationTrace(o.contexts.of(ctx)))
	o.byID[id] = op
	o.unsettled[op] = struct{}{}
	o.busy.Add(1)
	return op, ctx, 0
}

// settle says op will queue nothing the stream must wait for: its
// complete is queued, it is a subscription, or it ended with nothing to
// send. It may be called more than once.
func (o *streamOps) settle(op *operation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.unsettled, op)
	if len(o.unsettled) == 0 && o.settled != nil {
		close(o.settled)
		o.settled = nil
	}
}

// goAway refuses new operations from now on (add answers 503) and returns
// a channel closed once the operations accepted have settled: the queries
// and mutations running have queued their results. Subscriptions are not
// waited for: they end with the stream, and their clients subscribe again
// elsewhere. The stream's end bounds the wait: a drain past its deadline
// drops the stream, which cancels them (stopAll).
func (o *streamOps) goAway() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.leaving = true
	settled := make(chan struct{})
	if len(o.unsettled) == 0 {
		close(settled)
	} else {
		o.settled = settled
	}
	return settled
}

// remove takes op out; false if it was not there (stopped, or the stream
// ended).
func (o *streamOps) remove(op *operation) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byID[op.id] != op {
		return false
	}
	delete(o.byID, op.id)
	return true
}

// has reports whether op is still one of the stream's.
func (o *streamOps) has(op *operation) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.byID[op.id] == op
}

// take removes and returns the operation id; nil if there is none.
func (o *streamOps) take(id string) *operation {
	o.mu.Lock()
	defer o.mu.Unlock()
	op := o.byID[id]
	delete(o.byID, id)
	return op
}

// list returns the operations running.
func (o *streamOps) list() []*operation {
	o.mu.Lock()
	defer o.mu.Unlock()
	ops := make([]*operation, 0, len(o.byID))
	for _, op := range o.byID {
		ops = append(ops, op)
	}
	return ops
}

// fail ends op, which did not start, with resp: a "next" holding its
// errors, then "complete".
func (o *streamOps) fail(st *httpStream, op *operation, resp *graphql.Response) {
	if o.remove(op) {
		op.cancel()
		st.enqueue(streamItem{op: op, p: &payload{bytes: encodeResponse(resp)}})
		st.enqueue(streamItem{op: op})
	}
}

// runSingle executes a query or mutation and sends its result; an
// internal error if it panics (executeOperation): it runs on a goroutine
// of the stream's, where a panic would end the process.
func (o *streamOps) runSingle(ctx context.Context, st *httpStream, op *operation, exec graphql.GraphExecutor,
	opCtx *graphql.OperationContext) {
	defer o.busy.Done()
	defer op.cancel()
	defer o.settle(op) // queuing its complete settles it; this, when it returns with none
	resp := executeOperation(st.t.execs.log, ctx, exec, opCtx)
	if resp == nil || !o.remove(op) {
		return // stopped by the client, or the stream is gone
	}
	st.enqueue(streamItem{op: op, p: &payload{bytes: encodeResponse(resp)}})
	st.enqueue(streamItem{op: op})
}

// ended completes op, whose execution completed by itself.
func (o *streamOps) ended(st *httpStream, op *operation) {
	if o.remove(op) {
		st.enqueue(streamItem{op: op})
		if op.handoff != nil {
			st.t.execs.leave(op) // its other execution (replay or live) too
		}
	}
}

// stopAll stops every operation once the stream has ended: queries and
// mutations are canceled and waited for, subscriptions leave their
// executions.
func (o *streamOps) stopAll(execs *sharedExecutions) {
	o.mu.Lock()
	o.closed = true
	for _, op := range o.byID {
		op.cancel()
	}
	o.mu.Unlock()
	o.busy.Wait()
	o.mu.Lock()
	ops := o.byID
	o.byID = nil
	o.mu.Unlock()
	for _, op := range ops {
		op.release(execs)
	}
}

// sseSingleFormat frames a single-connection-mode stream: the events of
// distinct connections mode, whose data names the operation,
// {"id":…,"payload":…} for "next" and {"id":…} for "complete". The
// events carry no SSE id: a stream of several operations has no one
// position to resume from.
type sseSingleFormat struct{ sseFormat }

var _ streamFormat = sseSingleFormat{}

func (sseSingleFormat) name() string { return "sse_single" }

func (sseSingleFormat) appendNextHead(buf []byte, op *operation, _ *payload) []byte {
	buf = append(buf, "event: next\ndata: {\"id\":"...)
	buf = append(buf, op.idJSON...)
	return append(buf, ",\"payload\":"...)
}

func (sseSingleFormat) appendNextTail(buf []byte, _ *operation, _ *payload) []byte {
	return append(buf, "}\n\n"...)
}

// appendEnd appends op's "complete", after a "next" holding err if there
// is one. The stream itself has no end event: its response ends.
func (f sseSingleFormat) appendEnd(buf []byte, op *operation, err *gqlerror.Error) []byte {
	if op == nil {
		return buf
	}
	if err != nil {
		body, _ := json.Marshal(wireResponse{Errors: gqlerror.List{err}})
		buf = appendNext(f, buf, op, &payload{bytes: body})
	}
	buf = append(buf, "event: complete\ndata: {\"id\":"...)
	buf = append(buf, op.idJSON...)
	return append(buf, "}\n\n"...)
}
