package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
)

// streamFormat frames the results of one HTTP stream for its wire
// protocol: Server-Sent Events (sseFormat) or Apollo's multipart
// subscriptions (multipartFormat). Everything else about a stream
// (admission, the queue, backpressure, expiry, drain, keepalive, metrics)
// is the same for every format and lives in httpStream.
type streamFormat interface {
	// name labels the format's streams in metrics
	// (herald_http_streams{transport}).
	name() string
	// contentType is the response's Content-Type.
	contentType() string
	// preamble is written as soon as the stream opens, so that clients
	// and proxies see it begin.
	preamble() []byte
	// appendNextHead and appendNextTail append the framing before and
	// after one result of op, p holding its shared encoding, which goes
	// between them as it is (see appendNext), so that a large one can be
	// written from the shared bytes rather than copied next to its
	// framing. Formats that carry one operation per stream ignore op.
	appendNextHead(buf []byte, op *operation, p *payload) []byte
	appendNextTail(buf []byte, op *operation, p *payload) []byte
	// appendEnd appends the end of op's results: for a format with one
	// operation per stream, the end of the stream. With err, op ends
	// because of the transport (the stream fell behind, its credentials
	// expired): the error is sent first, in a form the client reads as
	// such.
	appendEnd(buf []byte, op *operation, err *gqlerror.Error) []byte
	// appendGoAway appends what a draining replica sends before it ends
	// the stream; nothing if the format's clients reconnect by themselves.
	appendGoAway(buf []byte) []byte
	// keepalive is written every streamConfig.keepAlive, so that proxies
	// do not take the stream for idle.
	keepalive() []byte
}

// streamConfig is the HTTP-stream part of Options, defaulted.
type streamConfig struct {
	keepAlive       time.Duration // how often a keepalive is written
	writeTimeout    time.Duration
	queueItems      int
	queueBytes      int
	viewerDirective string
	resumeArgument  string
}

// httpStreams is what every HTTP streaming transport shares: the runner
// that checks requests, admission and drain, the shared executions, the
// metrics and the settings.
type httpStreams struct {
	run      *runner
	cfg      streamConfig
	sessions *sessions
	execs    *sharedExecutions
	metrics  *metrics
	keeper   *keeper       // keeps parked streams alive (see parkedStream); nil: streams are not parked
	parker   *parker       // watches parked streams for their clients' end; nil: a goroutine each does
	frames   *frameBuffers // for parkedStream.writeNow (the WebSockets' own)
}

// readParams decodes a request's parameters: the query string for GET,
// the JSON body (at most maxBodyBytes) for POST.
func (t *httpStreams) readParams(w http.ResponseWriter, r *http.Request, viaGET bool, maxBodyBytes int64) (*graphql.RawParams, *requestError) {
	if viaGET {
		return readQueryString(r, maxBodyBytes)
	}
	return postTransport{run: t.run, maxBodyBytes: maxBodyBytes}.read(w, r)
}

// subscriptionOnly reads and prepares a request of which only a
// subscription is streamed. Anything else, and whatever is wrong before
// the operation runs, it answers as postTransport and getTransport answer
// it, as JSON with a status. ok reports a subscription, prepared, for the
// caller to stream.
func (t *httpStreams) subscriptionOnly(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, maxBodyBytes int64) (
	ctx context.Context, params *graphql.RawParams, opCtx *graphql.OperationContext, ok bool) {
	viaGET := r.Method == http.MethodGet
	m, acceptable := negotiate(r)
	if !acceptable {
		m = mediaJSON // errors only: a stream needs no JSON media type
	}
	params, rerr := t.readParams(w, r, viaGET, maxBodyBytes)
	if rerr != nil {
		t.run.reject(w, r, m, rerr.status, rerr.msg)
		return nil, nil, nil, false
	}
	if ctx, opCtx, ok = t.run.prepare(w, r, exec, m, params, viaGET); !ok {
		return nil, nil, nil, false
	}
	if opCtx.Operation.Operation != ast.Subscription {
		if !acceptable {
			t.run.notAcceptable(w, r)
		} else {
			t.run.dispatch(ctx, w, r, exec, m, opCtx, viaGET)
		}
		return nil, nil, nil, false
	}
	return ctx, params, opCtx, true
}

// admit counts a stream about to open toward --max-connections, or
// answers r with 503 and returns false. The refusal is sent as
// application/json whatever the client accepts: it is an HTTP-level
// refusal, not a GraphQL result, and Apollo Client reads a non-2xx
// application/json answer as a ServerError (which RetryLink retries),
// where it would take application/graphql-response+json for the
// subscription's own GraphQL errors.
func (t *httpStreams) admit(w http.ResponseWriter, r *http.Request) bool {
	switch t.sessions.admit() {
	case refusedDraining:
		t.run.reject(w, r, mediaJSON, http.StatusServiceUnavailable, "server is shutting down; reconnect to another replica")
		return false
	case refusedFull:
		t.run.reject(w, r, mediaJSON, http.StatusServiceUnavailable, fmt.Sprintf(
			"this replica holds its limit of %d connections; reconnect to another replica", t.sessions.maxConnections))
		return false
	}
	return true
}

// open starts the stream of an admitted request, authenticated as ctx
// says: the response headers, and the format's preamble. The caller must
// close it. subscription says the stream will be a subscription's, which
// may be parked (see start), and whose headers subscribe sends once it has
// joined its execution: they are all a client is told of its stream being
// open (EventSource's open event), and a change made after them must
// reach it.
func (t *httpStreams) open(ctx context.Context, w http.ResponseWriter, r *http.Request, f streamFormat, subscription bool) *httpStream {
	st := t.newStream(w, r, f)
	st.userID = userOf(ctx)
	if subscription && t.keeper != nil && r.ProtoMajor == 1 && r.ProtoMinor >= 1 {
		// A parked stream's connection is hijacked and closed when the
		// stream ends (finish): say so, or a client would put it back in
		// its pool and send its next request (a mutation, which it does
		// not retry) on a connection about to close (RFC 9112, 9.6).
		w.Header().Set("Connection", "close")
	}
	t.begin(st)
	if !subscription {
		t.sendHead(st)
	}
	return st
}

// newStream makes the stream of an admitted request, not yet started.
func (t *httpStreams) newStream(w http.ResponseWriter, r *http.Request, f streamFormat) *httpStream {
	rc := http.NewResponseController(w)
	return &httpStream{
		t:       t,
		f:       f,
		w:       w,
		rc:      rc,
		ctl:     rc,
		out:     responseWriter{w: w, rc: rc},
		r:       r,
		created: time.Now(),
		wake:    make(chan struct{}, 1),
		away:    make(chan struct{}),
		cut:     make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// start counts st and sends its response headers and preamble; the caller
// must close st.
func (t *httpStreams) start(st *httpStream) {
	t.begin(st)
	t.sendHead(st)
}

// begin counts st as open: in the metrics, and among the sessions a drain
// or a disconnect reaches.
func (t *httpStreams) begin(st *httpStream) {
	t.metrics.streams.WithLabelValues(st.f.name()).Inc()
	t.sessions.track(st, true)
}

// sendHead sends st's response headers and preamble.
func (t *httpStreams) sendHead(st *httpStream) {
	h := st.w.Header()
	h.Set("Content-Type", st.f.contentType())
	// no-transform: a proxy or CDN that compresses (Cloudflare does
	// multipart/mixed, Express's and Next.js's middleware text/event-stream)
	// holds output until it has enough, so events and heartbeats would
	// arrive late, in bursts (RFC 9111 section 5.2.2.6).
	h.Set("Cache-Control", "no-cache, no-transform")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer this response
	noSniff(h)                       // once per stream, not per event
	st.w.WriteHeader(http.StatusOK)
	st.writeAndFlush(st.f.preamble())
}

// httpStream is one streamed HTTP response: the request's goroutine writes
// it (or, once a subscription's stream is parked, a writer goroutine that
// runs while something is due), and executions hand it results through a
// bounded queue, so a slow client holds up no one else.
type httpStream struct {
	t       *httpStreams
	f       streamFormat
	w       http.ResponseWriter      // nil once parked
	rc      *http.ResponseController // nil once parked
	ctl     *http.ResponseController // rc for drop, to cut a write under way; nil once parked (guarded by mu)
	r       *http.Request            // nil once parked
	out     streamWriter             // the response, or the parked stream's connection
	parked  atomic.Pointer[parkedStream]
	created time.Time
	userID  string     // who the stream is for; "" anonymous
	op      *operation // the subscription, once joined
	ops     *streamOps // the operations of a single-connection-mode stream; nil otherwise
	// expires is when a subscription's credentials expire, in unix
	// nanoseconds (0: never), known before it joins its execution: an
	// event handed to it before its loop or park watches the expiry is
	// judged by it (see deliver).
	expires int64

	wake     chan struct{} // buffered: the queue or the state changed
	away     chan struct{} // closed by goAway (drain)
	awayOnce sync.Once
	cut      chan struct{} // closed by drop
	cutOnce  sync.Once
	done     chan struct{} // closed when the stream has finished

	mu        sync.Mutex
	queue     []streamItem
	bytes     int
	completed bool            // the execution ended: complete after the queue
	sealed    bool            // the credentials expired: no more events are queued
	failure   *gqlerror.Error // end the stream with this error (it fell behind, or was disconnected)
	endErr    *gqlerror.Error // with completed: end with this error (see denied)
	room      roomSignal      // wakes a replay waiting in awaitRoom when flush takes the queue
	// cancelStart ends the context of the subscription joining its
	// execution (see join); nil once it has joined. goAway and drop call
	// it (abandonStart).
	cancelStart context.CancelFunc
	// cancelRun ends the context of the query or mutation the stream
	// runs (see run); nil when none runs. drop calls it: a drain lets an
	// operation finish until its deadline, then ends it, as a socket's.
	cancelRun context.CancelFunc
	// released: release has begun, and the request may be over, after
	// which its ResponseController (ctl) may not be used.
	released bool
}

// streamItem is one queued piece of a stream: a result of op, or with no
// result the end of op (in a stream that carries several operations).
type streamItem struct {
	op    *operation
	p     *payload
	event bool // a subscription's event, counted as a delivery
	// err, with no p, ends op with this error (see denied).
	err *gqlerror.Error
}

// appendNext appends one result of op as format f frames it.
func appendNext(f streamFormat, buf []byte, op *operation, p *payload) []byte {
	buf = f.appendNextHead(buf, op, p)
	buf = append(buf, p.bytes...)
	return f.appendNextTail(buf, op, p)
}

// single sends one result and ends the stream; a stream whose user was
// disconnected meanwhile ends with that error instead, as a socket closes
// before its running query's result.
func (st *httpStream) single(resp *graphql.Response) {
	st.mu.Lock()
	failure := st.failure
	st.mu.Unlock()
	switch {
	case failure != nil:
		st.write(nil, true, failure)
	case resp != nil:
		st.write([]streamItem{{p: &payload{bytes: encodeResponse(resp)}}}, true, nil)
	}
}

// run executes a query or mutation with a context that ends with the
// request's, when a drain drops the stream or when its user is
// disconnected, and returns its result; nil, without running it, when the
// user was disconnected before.
func (st *httpStream) run(ctx context.Context, exec graphql.GraphExecutor, opCtx *graphql.OperationContext) *graphql.Response {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st.mu.Lock()
	if st.failure != nil {
		// The user was disconnected before it began (disconnect found
		// nothing to cancel): it does not run, and single sends why. The
		// tokens a mutation spent are given back, as for a stream refused
		// (sseTransport.stream).
		st.mu.Unlock()
		st.t.run.mutations.giveBack(ctx, opCtx, st.r.RemoteAddr)
		return nil
	}
	st.cancelRun = cancel
	st.mu.Unlock()
	if isClosed(st.cut) {
		cancel() // dropped before: drop found nothing to cancel
	}
	responses, rctx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(rctx)
	st.mu.Lock()
	st.cancelRun = nil
	st.mu.Unlock()
	return resp
}

// subscribe joins the subscription's shared execution and streams its
// results until it completes, the client goes, it falls behind, its
// credentials expire or the replica drains.
func (st *httpStream) subscribe(ctx context.Context, exec graphql.GraphExecutor, params *graphql.RawParams, opCtx *graphql.OperationContext) {
	st.op = &operation{sub: st}
	if id, ok := auth.FromContext(ctx); ok && !id.ExpiresAt.IsZero() {
		st.expires = expiryNanos(id.ExpiresAt)
	}
	st.join(ctx, exec, params, opCtx)
	st.t.sendHead(st) // once joined: see open
	if st.park(ctx) {
		return
	}
	st.loop(ctx)
}

// join joins st.op's shared execution with a context that ends with the
// request's (the client goes) or when a drain tells the stream to go away
// or drops it, so that a resolver still starting then is abandoned (see
// sharedExecutions.abandonWith) rather than holding the request: the
// stream ends either way, as a socket's start ends with its close frame.
func (st *httpStream) join(ctx context.Context, exec graphql.GraphExecutor, params *graphql.RawParams, opCtx *graphql.OperationContext) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st.mu.Lock()
	st.cancelStart = cancel
	st.mu.Unlock()
	if isClosed(st.away) || isClosed(st.cut) {
		cancel() // told to go or dropped before: abandonStart found no start to cancel
	}
	st.t.execs.join(st.op, ctx, exec, params, opCtx, st.t.cfg.viewerDirective, st.t.cfg.resumeArgument)
	st.mu.Lock()
	st.cancelStart = nil
	st.mu.Unlock()
}

// loop writes what executions hand the stream, and a keepalive every
// streamConfig.keepAlive.
func (st *httpStream) loop(ctx context.Context) {
	keepalive := time.NewTicker(st.t.cfg.keepAlive)
	defer keepalive.Stop()
	// away is st.away, and then, in a stream of several operations told to
	// go away, the end of the queries and mutations it runs (see
	// streamOps.goAway): their results go out before the stream ends. One
	// channel for both keeps the select, run for every batch, as it was.
	var away <-chan struct{} = st.away
	leaving := false
	var expiry <-chan struct{}
	var credentials *expiryTimer // nil: they never expire
	if id, ok := auth.FromContext(ctx); ok && !id.ExpiresAt.IsZero() {
		credentials = newExpiryTimer(st, id.ExpiresAt)
		defer credentials.stop()
		expiry = credentials.expired
	}
	for {
		select {
		case <-st.wake:
			if more, _ := st.flush(); !more {
				return
			}
		case <-keepalive.C:
			credentials.check() // the wall clock may have been stepped past the expiry
			if !st.writeAndFlush(st.f.keepalive()) {
				return
			}
		case <-expiry:
			// What was queued before, a finished operation's result and
			// complete among them, goes out first (select may pick this
			// over a pending wake): only what still runs ends with the
			// error, or the client would send the rest again.
			if more, written := st.flush(); more && written {
				st.fail(expiredError())
			}
			return
		case <-away:
			if st.ops != nil && !leaving {
				leaving, away = true, st.ops.goAway()
				continue
			}
			// What was queued goes out first, as on a socket; then the
			// client reconnects elsewhere and resumes.
			if more, written := st.flush(); more && written {
				st.writeAndFlush(st.f.appendGoAway(nil))
			}
			return
		case <-st.cut:
			return
		case <-st.r.Context().Done():
			return // the client went away
		}
	}
}

// expiryTimer seals a stream served by its request's goroutine when its
// credentials expire: at the expiry itself, not when the loop comes to see
// it (it may be writing to a slow client), so nothing queued after it is
// written. The expiry is a wall-clock time (a token's exp) and is judged
// on the wall clock, as a socket's is (wsMachine.expired), while a timer
// counts monotonic time: after a step of the wall clock back, the timer
// fires early and is armed again for what is left; after a step forward,
// it would fire late, so the loop also checks at each keepalive, as the
// keeper does a socket's expiry at each of its pings.
type expiryTimer struct {
	st      *httpStream
	at      time.Time     // the credentials' expiry, on the wall clock
	expired chan struct{} // closed once they have expired

	// Guarded by st.mu.
	timer *time.Timer
	done  bool // expired, or stopped
}

func newExpiryTimer(st *httpStream, at time.Time) *expiryTimer {
	// Round(0): at is judged on the wall clock even if it carries a
	// monotonic reading.
	e := &expiryTimer{st: st, at: at.Round(0), expired: make(chan struct{})}
	st.mu.Lock()
	defer st.mu.Unlock()
	e.timer = time.AfterFunc(time.Until(at), e.check)
	return e
}

// check seals the stream once the credentials have expired by the wall
// clock, and otherwise arms the timer for what is left. Nothing happens
// for a nil e (credentials that never expire).
func (e *expiryTimer) check() {
	if e == nil {
		return
	}
	st := e.st
	st.mu.Lock()
	defer st.mu.Unlock()
	switch left := time.Until(e.at); {
	case e.done:
	case left > 0:
		e.timer.Reset(left)
	default:
		e.done = true
		st.sealed = true
		close(e.expired)
	}
}

// stop stops the timer for good: a check under way does nothing more.
func (e *expiryTimer) stop() {
	e.st.mu.Lock()
	defer e.st.mu.Unlock()
	e.done = true
	e.timer.Stop()
}

// flush writes what is queued; more is false once the stream is over,
// written is false when a write failed (the client is gone, or past the
// write deadline): nothing more can be written then.
func (st *httpStream) flush() (more, written bool) {
	st.mu.Lock()
	batch, completed, failure, endErr := st.queue, st.completed, st.failure, st.endErr
	st.queue, st.bytes = nil, 0
	st.room.wake()
	st.mu.Unlock()
	if failure != nil {
		st.fail(failure)
		return false, true
	}
	if !st.write(batch, completed, endErr) {
		return false, false
	}
	return !completed, true
}

// fail ends the stream with a transport-level error: every operation of
// a single-connection-mode stream ends with it.
func (st *httpStream) fail(err *gqlerror.Error) {
	if st.ops == nil {
		st.writeAndFlush(st.f.appendEnd(nil, nil, err))
		return
	}
	var buf []byte
	for _, op := range st.ops.list() {
		buf = st.f.appendEnd(buf, op, err)
	}
	st.writeAndFlush(buf)
}

// codeSlowConsumer is the error code of a stream ended because it fell
// behind: the client reconnects and resumes from its last cursor.
const codeSlowConsumer = "SLOW_CONSUMER"

// slowConsumerError is the error that ends a stream that fell behind.
func slowConsumerError(reason string) *gqlerror.Error {
	return &gqlerror.Error{Message: reason, Extensions: map[string]any{"code": codeSlowConsumer}}
}

// slowConsumer is the message of a stream whose queue overflowed.
const slowConsumer = "slow consumer: the stream fell behind its events; reconnect and resume from the last event's cursor"

// expiredError ends a stream whose credentials expired.
func expiredError() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "the token has expired; reconnect with a fresh one",
		Extensions: map[string]any{"code": "UNAUTHENTICATED"},
	}
}

// write writes the items in batch, then the end of the stream if end is
// set (with endErr, if any), and flushes them; false if the client is gone.
func (st *httpStream) write(batch []streamItem, end bool, endErr *gqlerror.Error) bool {
	if len(batch) == 0 && !end {
		return true
	}
	_ = st.out.SetWriteDeadline(time.Now().Add(st.t.cfg.writeTimeout))
	if isClosed(st.cut) {
		return false // dropped: the deadline just set would outlast drop's
	}
	var err error
	unflushed := 0 // bytes written since the last flush
	for _, it := range batch {
		var n int
		if it.p == nil {
			n, err = st.out.Write(st.f.appendEnd(nil, it.op, it.err))
		} else {
			n, err = st.writeNext(it)
		}
		if unflushed += n; err == nil && unflushed >= answerChunk {
			// A batch (a resumed stream's replay) as a whole may take a
			// slow client longer than the write timeout: it is paced too.
			err, unflushed = st.pace(), 0
		}
		if err != nil {
			break
		}
	}
	if err == nil && end {
		_, err = st.out.Write(st.f.appendEnd(nil, st.op, endErr))
	}
	if err == nil {
		err = st.out.Flush()
	}
	return err == nil
}

// writeNext writes one result as the format frames it, and returns the
// bytes written.
func (st *httpStream) writeNext(it streamItem) (int, error) {
	p := it.p
	buf := make([]byte, 0, len(p.bytes)+len(p.cursor)+64)
	n, err := st.writePaced(appendNext(st.f, buf, it.op, p))
	if err != nil {
		return n, err
	}
	if it.event {
		st.t.metrics.delivered(p)
	}
	return n, nil
}

// errStreamDropped fails a write to a stream that drop has cut.
var errStreamDropped = errors.New("server: the stream was dropped")

// writePaced writes b, a result as framed, in parts of at most answerChunk
// bytes, each sent under a write deadline of its own (see pace), as a
// plain answer is written (answerDeadline.write): a client that reads a
// large result (a query's, over graphql-sse) steadily but slowly gets all
// of it, and one that stops reading is given up on within the write
// timeout of the part it stopped at.
func (st *httpStream) writePaced(b []byte) (int, error) {
	written := 0
	for {
		part := b[written:min(len(b), written+answerChunk)]
		n, err := st.out.Write(part)
		written += n
		if err != nil || written == len(b) {
			return written, err
		}
		if err := st.pace(); err != nil {
			return written, err
		}
	}
}

// pace sends what was written and gives what follows a write deadline of
// its own; a stream dropped meanwhile fails at once (see write).
func (st *httpStream) pace() error {
	if err := st.out.Flush(); err != nil {
		return err
	}
	_ = st.out.SetWriteDeadline(time.Now().Add(st.t.cfg.writeTimeout))
	if isClosed(st.cut) {
		return errStreamDropped
	}
	return nil
}

// writeAndFlush writes a piece of the stream outside any result (a
// preamble, a keepalive, an end); false if the client is gone.
func (st *httpStream) writeAndFlush(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	_ = st.out.SetWriteDeadline(time.Now().Add(st.t.cfg.writeTimeout))
	if isClosed(st.cut) {
		return false // dropped (see write)
	}
	if _, err := st.out.Write(b); err != nil {
		return false
	}
	return st.out.Flush() == nil
}

// close releases everything the stream holds, once its request is over;
// a parked stream outlives its request and releases it when it ends.
func (st *httpStream) close() {
	if st.parked.Load() == nil {
		st.release()
	}
}

// release releases everything the stream holds.
func (st *httpStream) release() {
	st.mu.Lock()
	st.released = true
	st.mu.Unlock()
	if st.op != nil {
		st.op.finished.Store(true)
		st.t.execs.leave(st.op)
	}
	if st.ops != nil {
		st.ops.stopAll(st.t.execs)
	}
	close(st.done)
	st.t.sessions.track(st, false)
	st.t.metrics.streams.WithLabelValues(st.f.name()).Dec()
	st.t.sessions.done()
}

// signal wakes the stream's goroutine, or a parked stream's writer.
func (st *httpStream) signal() {
	if ps := st.parked.Load(); ps != nil {
		ps.kick()
		return
	}
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// deliver writes an event of a subscription at once where a parked
// stream can take it without waiting (see parkedStream.writeNow), and
// queues it otherwise.
func (st *httpStream) deliver(op *operation, p *payload) {
	if ps := st.parked.Load(); ps != nil {
		// Credentials that expired since the keeper last looked (up to a
		// second ago) take no more events: sealed now, as the keeper
		// would, and as a stream its request serves is at the expiry.
		if ps.expires != 0 {
			if now := time.Now(); now.UnixNano() >= ps.expires {
				ps.checkTimers(now)
				return
			}
		}
		if ps.writeNow(op, p) {
			return
		}
	} else if st.expires != 0 && time.Now().UnixNano() >= st.expires {
		// Expired before the loop's timer sealed the stream (its start
		// outlasted the credentials): sealed now, as the timer would.
		st.mu.Lock()
		st.sealed = true
		st.mu.Unlock()
		return
	}
	st.enqueue(streamItem{op: op, p: p, event: true})
}

// enqueue queues an item, or marks the stream a slow consumer when its
// queue is full: as a socket's (outQueue.push), it takes an item of any
// size until it holds queueBytes, and an operation's end whatever the bytes.
func (st *httpStream) enqueue(it streamItem) {
	size := 0
	if it.p != nil {
		size = len(it.p.bytes)
	}
	st.mu.Lock()
	switch {
	case st.failure != nil || st.completed:
	case st.sealed && it.event:
		// After the credentials expired: the stream ends with what was
		// queued before, then UNAUTHENTICATED.
	case len(st.queue) >= st.t.cfg.queueItems || size > 0 && st.bytes >= st.t.cfg.queueBytes:
		st.failure = slowConsumerError(slowConsumer)
		st.queue, st.bytes = nil, 0
		st.t.metrics.slowCloses.Inc()
	default:
		st.queue = append(st.queue, it)
		st.bytes += size
	}
	st.mu.Unlock()
	if it.p == nil && st.ops != nil {
		// it.op's complete is queued, after its result: a stream going
		// away need not wait for it (streamOps.goAway).
		st.ops.settle(it.op)
	}
	st.signal()
}

// streamEnded completes the stream once what is queued is written; in a
// stream that carries several operations, only op.
func (st *httpStream) streamEnded(op *operation) {
	if st.ops != nil {
		st.ops.ended(st, op)
		return
	}
	st.mu.Lock()
	st.completed = true
	st.mu.Unlock()
	st.signal()
}

// denied ends op with err after what is queued: a stream of one
// operation ends, a stream of several ends only op.
func (st *httpStream) denied(op *operation, err *gqlerror.Error) {
	if st.ops != nil {
		if st.ops.remove(op) {
			st.enqueue(streamItem{op: op, err: err})
		}
		st.t.execs.leave(op)
		return
	}
	st.mu.Lock()
	if !st.completed && st.failure == nil {
		st.completed, st.endErr = true, err
	}
	st.mu.Unlock()
	st.t.execs.leave(op)
	st.signal()
}

// tooSlow ends the stream with an error its client can act on.
// A stream that completed is not: nothing more is queued on it (enqueue),
// and what is queued, its end included, goes out.
//
// On a stream of several operations, tooSlow for one that has ended on it
// (its DELETE, or its end queued, before it has left its executions) does
// nothing: that operation is no longer the stream's to fail for.
func (st *httpStream) tooSlow(op *operation, reason string) {
	if st.ops != nil && op != nil && !st.ops.has(op) {
		return
	}
	st.mu.Lock()
	if st.failure == nil && !st.completed {
		st.failure = slowConsumerError(reason)
		st.queue, st.bytes = nil, 0
		st.t.metrics.slowCloses.Inc()
	}
	st.mu.Unlock()
	st.signal()
}

// The stream as a session (see sessions).

func (st *httpStream) openedAt() time.Time { return st.created }

func (st *httpStream) goAway() {
	st.awayOnce.Do(func() { close(st.away) })
	st.abandonStart()
	if ps := st.parked.Load(); ps != nil {
		ps.kick()
	}
}

func (st *httpStream) drop() {
	st.cutOnce.Do(func() { close(st.cut) })
	st.abandonStart()
	st.mu.Lock()
	if st.cancelRun != nil {
		st.cancelRun()
	}
	st.mu.Unlock()
	if ps := st.parked.Load(); ps != nil {
		ps.closeConn()
		return
	}
	// The request's goroutine may be blocked writing to a client that
	// reads nothing, until the write timeout: the write fails now (write
	// sees st.cut should it set its deadline after this).
	st.mu.Lock()
	ctl := st.ctl
	if !st.released && ctl != nil {
		_ = ctl.SetWriteDeadline(time.Now())
	}
	st.mu.Unlock()
	if ps := st.parked.Load(); ps != nil && ctl == nil { // parked since the look above
		ps.closeConn()
	}
}

// abandonStart ends the context of the subscription joining its execution,
// if one is (see join): the stream is told to go, or dropped, so the
// resolver still starting is abandoned. It never blocks: the leave runs on
// abandonWith's goroutine. Callers close st.away or st.cut first, which
// join checks after publishing cancelStart, so no start is missed.
func (st *httpStream) abandonStart() {
	st.mu.Lock()
	if st.cancelStart != nil {
		st.cancelStart()
	}
	st.mu.Unlock()
}

func (st *httpStream) user() string { return st.userID }

// disconnect ends the stream with a FORBIDDEN error: an administrator
// disconnected its user. What is queued is dropped.
func (st *httpStream) disconnect() {
	st.mu.Lock()
	if st.failure == nil { // the first failure stands: a slow consumer was counted as one
		st.failure = &gqlerror.Error{Message: disconnectedReason, Extensions: map[string]any{"code": codeForbidden}}
		st.queue, st.bytes = nil, 0
	}
	if st.cancelRun != nil {
		st.cancelRun() // its result is not sent (see single)
	}
	st.mu.Unlock()
	st.signal()
}

func (st *httpStream) ended() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}
