package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
)

// mediaEventStream is the Server-Sent Events media type.
const mediaEventStream = "text/event-stream"

// sseTransport serves GraphQL over Server-Sent Events in the graphql-sse
// protocol's distinct connections mode: a GET (queries and subscriptions,
// as EventSource sends them) or POST on /graphql with
// Accept: text/event-stream is answered with an event stream of "next"
// events, one per result, and a "complete" event at the end.
//
// A subscription joins the same shared execution as WebSocket subscribers
// of the same operation (see sharedExecutions): the stream frames the
// shared encoding. Each event carries its resume cursor as the SSE id, so
// a client that reconnects (EventSource does by itself) sends it back as
// Last-Event-ID, and the stream resumes after it.
type sseTransport struct {
	run          *runner
	maxBodyBytes int64
	cfg          sseConfig
	sessions     *sessions
	execs        *sharedExecutions
	metrics      *metrics
	log          *slog.Logger
}

// sseConfig is the event-stream part of Options, defaulted.
type sseConfig struct {
	keepAlive       time.Duration // a comment line this often keeps proxies from timing out
	writeTimeout    time.Duration
	queueItems      int
	queueBytes      int
	viewerDirective string
	resumeArgument  string
}

var _ graphql.Transport = (*sseTransport)(nil)

// Supports claims GET and POST requests that prefer an event stream.
func (t *sseTransport) Supports(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodPost) && !isWebSocketUpgrade(r) && acceptsEventStream(r)
}

// acceptsEventStream reports whether r's Accept header lists
// text/event-stream with a q-value at least that of any other media range
// it lists: graphql-sse and EventSource send exactly "text/event-stream".
func acceptsEventStream(r *http.Request) bool {
	best, sse := 0.0, -1.0
	for _, value := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(value, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q, ok := parseQ(params["q"])
			if !ok {
				continue
			}
			if mt == mediaEventStream {
				sse = max(sse, q)
			} else if mt != "*/*" {
				best = max(best, q)
			}
		}
	}
	return sse > 0 && sse >= best
}

// Do reads and checks the request, answering what is wrong with it as JSON
// with a status (as for any GraphQL-over-HTTP request), then streams the
// operation's results. Errors found by validation are results: they are
// sent as a "next" event, since an EventSource cannot read the body of a
// failed response.
func (t *sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	viaGET := r.Method == http.MethodGet
	params, rerr := t.read(w, r, viaGET)
	if rerr != nil {
		t.run.reject(w, r, mediaJSON, rerr.status, rerr.msg)
		return
	}
	ctx, ok := t.run.authenticate(w, r, mediaJSON)
	if !ok {
		return
	}
	if size, over := variablesOver(params.Variables, t.run.maxVariables); over {
		t.run.reject(w, r, mediaJSON, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("variables take %d bytes of JSON or more, more than the limit of %d", size, t.run.maxVariables))
		return
	}
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs == nil {
		if !t.operationAllowed(ctx, w, r, opCtx.Operation.Operation, viaGET) {
			return
		}
		opCtx, errs = t.resumeFrom(ctx, exec, r, params, opCtx)
	}
	switch t.sessions.admit() {
	case refusedDraining:
		t.run.reject(w, r, mediaJSON, http.StatusServiceUnavailable, "server is shutting down; reconnect to another replica")
		return
	case refusedFull:
		w.Header().Set("Retry-After", "1")
		t.run.reject(w, r, mediaJSON, http.StatusServiceUnavailable, fmt.Sprintf(
			"this replica holds its limit of %d connections; reconnect to another replica", t.sessions.maxConnections))
		return
	}
	st := t.open(w, r)
	defer st.close()
	if errs != nil {
		st.single(exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
		return
	}
	st.serve(ctx, exec, params, opCtx)
}

// read decodes the request's parameters: the query string for GET, the
// JSON body for POST.
func (t *sseTransport) read(w http.ResponseWriter, r *http.Request, viaGET bool) (*graphql.RawParams, *requestError) {
	if viaGET {
		return readQueryString(r)
	}
	return postTransport{run: t.run, maxBodyBytes: t.maxBodyBytes}.read(w, r)
}

// operationAllowed answers what a stream may not run: mutations over GET
// (405, as the spec requires), and mutations beyond the identity's rate.
func (t *sseTransport) operationAllowed(ctx context.Context, w http.ResponseWriter, r *http.Request, op ast.Operation, viaGET bool) bool {
	switch {
	case viaGET && op == ast.Mutation:
		w.Header().Set("Allow", http.MethodPost)
		t.run.reject(w, r, mediaJSON, http.StatusMethodNotAllowed, "mutation operations cannot be sent with GET; use POST")
		return false
	case op == ast.Mutation:
		return t.run.mutationAllowed(ctx, w, r, mediaJSON)
	}
	return true
}

// resumeFrom applies a Last-Event-ID header, which an EventSource sends
// when it reconnects, to a subscription: the header's cursor replaces the
// value of the variable that carries the resume argument. A subscription
// that does not pass that argument in a variable cannot resume, and is
// answered with an error rather than silently restarting from now.
func (t *sseTransport) resumeFrom(ctx context.Context, exec graphql.GraphExecutor, r *http.Request,
	params *graphql.RawParams, opCtx *graphql.OperationContext) (*graphql.OperationContext, gqlerror.List) {
	last := r.Header.Get("Last-Event-ID")
	if last == "" || opCtx.Operation.Operation != ast.Subscription || t.cfg.resumeArgument == "" {
		return opCtx, nil
	}
	use := findCursor(opCtx, t.cfg.resumeArgument)
	if use.variable == "" {
		return opCtx, gqlerror.List{{
			Message: fmt.Sprintf("the stream sent Last-Event-ID to resume, but the subscription does not pass its %q argument "+
				"in a variable; declare one (for example $%s: String) so that Herald can resume the stream from the last event",
				t.cfg.resumeArgument, t.cfg.resumeArgument),
			Extensions: map[string]any{"code": "BAD_USER_INPUT"},
		}}
	}
	resumed := *params
	resumed.Variables = maps.Clone(params.Variables)
	if resumed.Variables == nil {
		resumed.Variables = map[string]any{}
	}
	resumed.Variables[use.variable] = last
	*params = resumed
	return exec.CreateOperationContext(ctx, params)
}

// open starts the event stream of an admitted request: the response
// headers, and a comment so that clients and proxies see the stream begin.
func (t *sseTransport) open(w http.ResponseWriter, r *http.Request) *sseStream {
	st := &sseStream{
		t:       t,
		w:       w,
		rc:      http.NewResponseController(w),
		r:       r,
		created: time.Now(),
		wake:    make(chan struct{}, 1),
		away:    make(chan struct{}),
		cut:     make(chan struct{}),
		done:    make(chan struct{}),
	}
	h := w.Header()
	h.Set("Content-Type", mediaEventStream+"; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer this response
	w.WriteHeader(http.StatusOK)
	t.metrics.streams.WithLabelValues("sse").Inc()
	t.sessions.track(st, true)
	st.writeAndFlush(":\n\n")
	return st
}

// sseStream is one event stream: the request's goroutine writes it, and
// executions hand it results through a bounded queue, so a slow client
// holds up no one else.
type sseStream struct {
	t       *sseTransport
	w       http.ResponseWriter
	rc      *http.ResponseController
	r       *http.Request
	created time.Time
	op      *operation // the subscription, once joined

	wake     chan struct{} // buffered: the queue or the state changed
	away     chan struct{} // closed by goAway (drain)
	awayOnce sync.Once
	cut      chan struct{} // closed by drop
	cutOnce  sync.Once
	done     chan struct{} // closed when the stream has finished

	mu        sync.Mutex
	queue     []*payload
	bytes     int
	completed bool   // the execution ended: complete after the queue
	failure   string // the stream fell behind: end it with this error
}

// single sends one result and completes the stream.
func (st *sseStream) single(resp *graphql.Response) {
	if resp == nil {
		return
	}
	st.writeEvents([]*payload{{bytes: encodeResponse(resp)}}, true)
}

// serve runs the operation: a query or mutation once, a subscription until
// it completes, the client goes, it falls behind, its credentials expire
// or the replica drains.
func (st *sseStream) serve(ctx context.Context, exec graphql.GraphExecutor, params *graphql.RawParams, opCtx *graphql.OperationContext) {
	if opCtx.Operation.Operation != ast.Subscription {
		responses, rctx := exec.DispatchOperation(ctx, opCtx)
		st.single(responses(rctx))
		return
	}
	st.op = &operation{sub: st}
	st.t.execs.join(st.op, ctx, exec, params, opCtx, st.t.cfg.viewerDirective, st.t.cfg.resumeArgument)
	st.loop(ctx)
}

// loop writes what executions hand the stream, and a keepalive comment
// when nothing else was written for a while.
func (st *sseStream) loop(ctx context.Context) {
	keepalive := time.NewTicker(st.t.cfg.keepAlive)
	defer keepalive.Stop()
	var expiry <-chan time.Time
	if id, ok := auth.FromContext(ctx); ok && !id.ExpiresAt.IsZero() {
		timer := time.NewTimer(time.Until(id.ExpiresAt))
		defer timer.Stop()
		expiry = timer.C
	}
	for {
		select {
		case <-st.wake:
			if !st.flush() {
				return
			}
		case <-keepalive.C:
			if !st.writeAndFlush(":\n\n") {
				return
			}
		case <-expiry:
			st.fail(expiredError())
			return
		case <-st.away:
			return // the client reconnects elsewhere and resumes
		case <-st.cut:
			return
		case <-st.r.Context().Done():
			return // the client went away
		}
	}
}

// flush writes what is queued; false once the stream is over.
func (st *sseStream) flush() bool {
	st.mu.Lock()
	batch, completed, failure := st.queue, st.completed, st.failure
	st.queue, st.bytes = nil, 0
	st.mu.Unlock()
	if failure != "" {
		st.fail(&gqlerror.Error{Message: failure, Extensions: map[string]any{"code": codeSlowConsumer}})
		return false
	}
	if !st.writeEvents(batch, completed) {
		return false
	}
	return !completed
}

// fail ends the stream with an error result and "complete".
func (st *sseStream) fail(err *gqlerror.Error) {
	body, _ := json.Marshal(wireResponse{Errors: gqlerror.List{err}})
	st.writeEvents([]*payload{{bytes: body}}, true)
}

// codeSlowConsumer is the error code of a stream ended because it fell
// behind: the client reconnects and resumes from its last event's id.
const codeSlowConsumer = "SLOW_CONSUMER"

// expiredError ends a stream whose credentials expired.
func expiredError() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "the token has expired; reconnect with a fresh one",
		Extensions: map[string]any{"code": "UNAUTHENTICATED"},
	}
}

// writeEvents writes a "next" event per payload, then "complete" if
// complete is set, and flushes them; false if the client is gone.
func (st *sseStream) writeEvents(batch []*payload, complete bool) bool {
	if len(batch) == 0 && !complete {
		return true
	}
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.t.cfg.writeTimeout))
	var err error
	for _, p := range batch {
		if err = st.writeNext(p); err != nil {
			break
		}
	}
	if err == nil && complete {
		_, err = st.w.Write([]byte("event: complete\ndata:\n\n"))
	}
	if err == nil {
		err = st.rc.Flush()
	}
	return err == nil
}

// writeNext writes one "next" event: the shared encoding as its data, the
// result's cursor as its id.
func (st *sseStream) writeNext(p *payload) error {
	buf := make([]byte, 0, len("event: next\nid: \ndata: \n\n")+len(p.cursor)+len(p.bytes))
	buf = append(buf, "event: next\n"...)
	if p.cursor != "" {
		buf = append(buf, "id: "...)
		buf = append(buf, p.cursor...)
		buf = append(buf, '\n')
	}
	buf = append(buf, "data: "...)
	buf = append(buf, p.bytes...)
	buf = append(buf, "\n\n"...)
	if _, err := st.w.Write(buf); err != nil {
		return err
	}
	if st.op != nil {
		st.t.metrics.deliveries.Inc()
		if !p.appended.IsZero() {
			st.t.metrics.latency.Observe(time.Since(p.appended).Seconds())
		}
	}
	return nil
}

// writeAndFlush writes a raw piece of the stream (a comment).
func (st *sseStream) writeAndFlush(s string) bool {
	_ = st.rc.SetWriteDeadline(time.Now().Add(st.t.cfg.writeTimeout))
	if _, err := st.w.Write([]byte(s)); err != nil {
		return false
	}
	return st.rc.Flush() == nil
}

// close releases everything the stream holds, once its request is over.
func (st *sseStream) close() {
	if st.op != nil {
		st.op.finished.Store(true)
		st.t.execs.leave(st.op)
	}
	close(st.done)
	st.t.sessions.track(st, false)
	st.t.metrics.streams.WithLabelValues("sse").Dec()
	st.t.sessions.done()
}

// signal wakes the stream's goroutine.
func (st *sseStream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// deliver queues a result, or marks the stream a slow consumer when its
// queue is full.
func (st *sseStream) deliver(_ *operation, p *payload) {
	st.mu.Lock()
	switch {
	case st.failure != "" || st.completed:
	case len(st.queue) >= st.t.cfg.queueItems || st.bytes+len(p.bytes) > st.t.cfg.queueBytes:
		st.failure = "slow consumer: the stream fell behind its events; reconnect and resume from the last event's id"
		st.queue, st.bytes = nil, 0
		st.t.metrics.slowCloses.Inc()
	default:
		st.queue = append(st.queue, p)
		st.bytes += len(p.bytes)
	}
	st.mu.Unlock()
	st.signal()
}

// streamEnded completes the stream once what is queued is written.
func (st *sseStream) streamEnded(*operation) {
	st.mu.Lock()
	st.completed = true
	st.mu.Unlock()
	st.signal()
}

// tooSlow ends the stream with an error its client can act on.
func (st *sseStream) tooSlow(_ *operation, reason string) {
	st.mu.Lock()
	if st.failure == "" {
		st.failure = reason
		st.queue, st.bytes = nil, 0
		st.t.metrics.slowCloses.Inc()
	}
	st.mu.Unlock()
	st.signal()
}

// The stream as a session (see sessions).

func (st *sseStream) openedAt() time.Time { return st.created }
func (st *sseStream) goAway()             { st.awayOnce.Do(func() { close(st.away) }) }
func (st *sseStream) drop()               { st.cutOnce.Do(func() { close(st.cut) }) }
func (st *sseStream) ended() bool {
	select {
	case <-st.done:
		return true
	default:
		return false
	}
}
