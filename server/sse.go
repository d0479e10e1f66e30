package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
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
	*httpStreams
	maxBodyBytes int64
}

var _ graphql.Transport = (*sseTransport)(nil)

// Supports claims GET and POST requests that accept an event stream at
// all: a subscription can be answered with nothing else, and a query or
// mutation is answered as JSON unless the client prefers a stream (see
// Do).
func (t *sseTransport) Supports(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodPost) && !isWebSocketUpgrade(r) &&
		acceptsEventStreamAtAll(r)
}

// acceptsEventStreamAtAll reports whether r's Accept header lists
// text/event-stream with a q-value above 0.
func acceptsEventStreamAtAll(r *http.Request) bool {
	return acceptPreferences(r).eventStream > 0
}

// acceptsEventStream reports whether r's Accept header lists
// text/event-stream with a q-value at least that of any other media range
// it lists: graphql-sse and EventSource send exactly "text/event-stream".
func acceptsEventStream(r *http.Request) bool {
	best, sse := 0.0, -1.0
	eachAcceptedRange(r, func(mt string, _ map[string]string, q float64) {
		if mt == mediaEventStream {
			sse = max(sse, q)
		} else if mt != "*/*" {
			best = max(best, q)
		}
	})
	return sse > 0 && sse >= best
}

// Do reads and checks the request, answering what is wrong with it as JSON
// with a status (as for any GraphQL-over-HTTP request), then streams the
// operation's results. Errors found by validation are results: they are
// sent as a "next" event, since an EventSource cannot read the body of a
// failed response.
//
// That is for clients that prefer an event stream to everything else they
// list (acceptsEventStream), JSON included (jsonAsReadily), as graphql-sse
// and EventSource do. Any other client is answered as multipartTransport
// answers: only a subscription is streamed.
func (t *sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	viaGET := r.Method == http.MethodGet
	if _, jsonToo := jsonAsReadily(r); jsonToo || !acceptsEventStream(r) {
		t.doSubscriptionOnly(w, r, exec)
		return
	}
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
	// A GET mutation is refused whatever its variables (see runner.prepare).
	if errs == nil || viaGET && isMutation(opCtx) {
		var ok bool
		if ok, errs = t.operationAllowed(ctx, w, r, opCtx, viaGET); !ok {
			return
		}
	}
	t.stream(ctx, w, r, exec, params, opCtx, errs)
}

// doSubscriptionOnly serves a client that takes an event stream but not
// for everything: urql's fetchExchange lists JSON and text/event-stream
// alike for queries, and a client may accept a stream less readily than
// JSON. A subscription, which JSON cannot carry, is streamed; anything
// else, and whatever is wrong before the operation runs, is answered as
// postTransport and getTransport answer it.
func (t *sseTransport) doSubscriptionOnly(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if ctx, params, opCtx, ok := t.subscriptionOnly(w, r, exec, t.maxBodyBytes); ok {
		t.stream(ctx, w, r, exec, params, opCtx, nil)
	}
}

// stream admits the request and streams its results: errs (errors found
// before the operation could run) as one result, or the operation's.
func (t *sseTransport) stream(ctx context.Context, w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor,
	params *graphql.RawParams, opCtx *graphql.OperationContext, errs gqlerror.List) {
	if errs == nil {
		opCtx, errs = t.resumeFrom(ctx, exec, r, params, opCtx)
	}
	if !t.admit(w, r) {
		if errs == nil {
			// The tokens operationAllowed spent, for a mutation that does
			// not run.
			t.run.mutations.giveBack(ctx, opCtx, r.RemoteAddr)
		}
		return
	}
	st := t.open(ctx, w, r, sseFormat{}, errs == nil && opCtx.Operation.Operation == ast.Subscription)
	defer st.close()
	switch {
	case errs != nil:
		st.single(exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
	case opCtx.Operation.Operation != ast.Subscription:
		st.single(st.run(ctx, exec, opCtx))
	default:
		st.subscribe(ctx, exec, params, opCtx)
	}
}

// read decodes the request's parameters: the query string for GET, the
// JSON body for POST.
func (t *sseTransport) read(w http.ResponseWriter, r *http.Request, viaGET bool) (*graphql.RawParams, *requestError) {
	return t.readParams(w, r, viaGET, t.maxBodyBytes)
}

// operationAllowed answers what a stream may not run: mutations over GET
// (405, as the spec requires), and mutations beyond the rate of the
// identity, or of an anonymous client's address (429). A mutation of more
// root fields than the burst is refused as a validation error is: errs is
// then its error, to be sent as an event.
func (t *sseTransport) operationAllowed(ctx context.Context, w http.ResponseWriter, r *http.Request,
	opCtx *graphql.OperationContext, viaGET bool) (ok bool, errs gqlerror.List) {
	switch op := opCtx.Operation.Operation; {
	case viaGET && op == ast.Mutation:
		t.run.refuseGETMutation(w, r, mediaJSON)
		return false, nil
	case op == ast.Mutation:
		switch gerr := t.run.mutations.mutationsAllowed(ctx, opCtx, r.RemoteAddr); {
		case gerr == nil:
		case gerr.Extensions["code"] == codeRateLimited:
			t.run.refuseRateLimited(w, r, mediaJSON, gerr)
			return false, nil
		default:
			return true, gqlerror.List{gerr}
		}
	}
	return true, nil
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
	if use.variable == "" && !rootTakes(opCtx, opCtx.Operation.SelectionSet, t.cfg.resumeArgument) {
		return opCtx, gqlerror.List{{
			Message: fmt.Sprintf("the stream sent Last-Event-ID to resume, but the subscription's field takes no %q argument, "+
				"so it cannot resume: open the stream again without Last-Event-ID", t.cfg.resumeArgument),
			Extensions: map[string]any{"code": "BAD_USER_INPUT"},
		}}
	}
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

// rootTakes reports whether a root field of the selection set declares
// the argument in the schema (roomPresence, say, takes no cursor).
func rootTakes(rc *graphql.OperationContext, set ast.SelectionSet, argument string) bool {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.InlineFragment:
			if rootTakes(rc, sel.SelectionSet, argument) {
				return true
			}
		case *ast.FragmentSpread:
			if f := rc.Doc.Fragments.ForName(sel.Name); f != nil && rootTakes(rc, f.SelectionSet, argument) {
				return true
			}
		case *ast.Field:
			if sel.Definition != nil && sel.Definition.Arguments.ForName(argument) != nil {
				return true
			}
		}
	}
	return false
}

// sseFormat frames a stream as Server-Sent Events in graphql-sse's
// distinct connections mode: a "next" event per result, whose id is the
// result's cursor, and a "complete" event at the end.
type sseFormat struct{}

var _ streamFormat = sseFormat{}

func (sseFormat) name() string        { return "sse" }
func (sseFormat) contentType() string { return mediaEventStream + "; charset=utf-8" }

// preamble and keepalive are an empty comment, which clients ignore.
func (sseFormat) preamble() []byte  { return []byte(":\n\n") }
func (sseFormat) keepalive() []byte { return []byte(":\n\n") }

// appendNextHead and appendNextTail frame a "next" event: the shared
// encoding as its data, the result's cursor as its id.
func (sseFormat) appendNextHead(buf []byte, _ *operation, p *payload) []byte {
	buf = append(buf, "event: next\n"...)
	if p.cursor != "" {
		buf = append(buf, "id: "...)
		buf = append(buf, p.cursor...)
		buf = append(buf, '\n')
	}
	return append(buf, "data: "...)
}

func (sseFormat) appendNextTail(buf []byte, _ *operation, _ *payload) []byte {
	return append(buf, "\n\n"...)
}

// appendEnd appends "complete", after a "next" event holding err if there
// is one: graphql-sse has no other place for an error.
func (f sseFormat) appendEnd(buf []byte, _ *operation, err *gqlerror.Error) []byte {
	if err != nil {
		body, _ := json.Marshal(wireResponse{Errors: gqlerror.List{err}})
		buf = appendNext(f, buf, nil, &payload{bytes: body})
	}
	return append(buf, "event: complete\ndata:\n\n"...)
}

// appendGoAway appends nothing: a stream that ends without "complete" is
// one its client reconnects (EventSource does by itself, sending
// Last-Event-ID), so a draining replica simply ends it.
func (sseFormat) appendGoAway(buf []byte) []byte { return buf }
