package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/surrogate"
)

// postTransport is GraphQL over HTTP POST with a JSON body.
type postTransport struct {
	run          *runner
	maxBodyBytes int64
}

var _ graphql.Transport = postTransport{}

// Supports claims every POST, whatever its Content-Type, so that an
// unsupported one gets 415 rather than gqlgen's "transport not supported".
func (t postTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodPost && !isWebSocketUpgrade(r)
}

// Do reads the JSON body and executes it.
func (t postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	m, ok := negotiate(r)
	if !ok {
		t.run.notAcceptable(w, r)
		return
	}
	params, err := t.read(w, r)
	if err != nil {
		t.run.reject(w, r, m, err.status, err.msg)
		return
	}
	t.run.execute(w, r, exec, m, params, false)
}

// read checks the Content-Type and decodes the body, at most maxBodyBytes.
func (t postTransport) read(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, *requestError) {
	start := graphql.Now()
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		return nil, err
	}
	if err := checkContentEncoding(r.Header.Values("Content-Encoding")); err != nil {
		return nil, err
	}
	tooLarge := &requestError{http.StatusRequestEntityTooLarge,
		fmt.Sprintf("request body exceeds the limit of %d bytes", t.maxBodyBytes)}
	if r.ContentLength > t.maxBodyBytes {
		// Refused before a byte is read, so that a client waiting on
		// "Expect: 100-continue" is not invited to send it all.
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.maxBodyBytes))
	if _, over := errors.AsType[*http.MaxBytesError](err); over {
		return nil, tooLarge
	}
	if err != nil {
		return nil, bodyReadError(err)
	}
	params, rerr := decodeBody(body)
	if rerr != nil {
		return nil, rerr
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	return params, nil
}

// checkContentEncoding refuses a body in a content coding (gzip, br, …):
// the server decodes none, and would otherwise parse the coded bytes as
// JSON (RFC 9110 §8.4.1 and §15.5.16).
func checkContentEncoding(codings []string) *requestError {
	for _, header := range codings {
		for c := range strings.SplitSeq(header, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return unsupportedMedia(fmt.Sprintf("Content-Encoding %q is not supported; send the body uncompressed", clip(c)))
			}
		}
	}
	return nil
}

// bodyReadError answers a body that could not be read. The error's text
// names the server's and the client's addresses, which a client behind a
// load balancer must not learn: it is not passed on.
func bodyReadError(err error) *requestError {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &requestError{http.StatusRequestTimeout, "the request body did not arrive in time"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("the request body ended before its announced length")
	}
	return badRequest("could not read the request body")
}

// checkContentType accepts application/json in UTF-8, the only request
// media type the spec requires and the only one this server supports.
func checkContentType(header string) *requestError {
	const want = "use application/json"
	if header == "" {
		return unsupportedMedia("request has no Content-Type; " + want)
	}
	mt, params, err := mime.ParseMediaType(header)
	if err != nil {
		return unsupportedMedia(fmt.Sprintf("malformed Content-Type %q; %s", clip(header), want))
	}
	if mt != string(mediaJSON) {
		return unsupportedMedia(fmt.Sprintf("unsupported Content-Type %q; %s", clip(mt), want))
	}
	if cs := params["charset"]; cs != "" && !strings.EqualFold(cs, "utf-8") {
		return unsupportedMedia(fmt.Sprintf("unsupported charset %q; use utf-8", clip(cs)))
	}
	return nil
}

// decodeBody decodes a POST body: a JSON object with the optional members
// query, operationName, variables and extensions. Other members are
// ignored, as the spec leaves them to other specifications.
func decodeBody(body []byte) (*graphql.RawParams, *requestError) {
	v, err := decodeJSON("request body", body)
	if err != nil {
		return nil, err
	}
	fields, ok := v.(map[string]any)
	if !ok {
		return nil, badRequest("request body must be a JSON object, got %s", kindOf(v))
	}
	p := &graphql.RawParams{}
	if p.Query, err = asString("query", fields["query"]); err != nil {
		return nil, err
	}
	if p.OperationName, err = asString("operationName", fields["operationName"]); err != nil {
		return nil, err
	}
	if p.Variables, err = asObject("variables", fields["variables"]); err != nil {
		return nil, err
	}
	if p.Extensions, err = asObject("extensions", fields["extensions"]); err != nil {
		return nil, err
	}
	return p, requireDocument(p)
}

// getTransport is GraphQL over HTTP GET, for queries only.
type getTransport struct {
	run      *runner
	maxBytes int64 // the query string's limit: Options.MaxBodyBytes
}

var _ graphql.Transport = getTransport{}

// Supports claims every GET that is not a WebSocket upgrade.
func (t getTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && !isWebSocketUpgrade(r)
}

// Do reads the query string and executes it.
func (t getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	m, ok := negotiate(r)
	if !ok {
		t.run.notAcceptable(w, r)
		return
	}
	params, err := readQueryString(r, t.maxBytes)
	if err != nil {
		t.run.reject(w, r, m, err.status, err.msg)
		return
	}
	t.run.execute(w, r, exec, m, params, true)
}

// readQueryString decodes the parameters query, operationName, variables
// (JSON) and extensions (JSON) from r's URL, a query string of at most
// maxBytes (the body limit: a document sent with GET is held to it as one
// sent with POST; 0: no limit beyond the HTTP server's on headers).
func readQueryString(r *http.Request, maxBytes int64) (*graphql.RawParams, *requestError) {
	start := graphql.Now()
	if maxBytes > 0 && int64(len(r.URL.RawQuery)) > maxBytes {
		return nil, &requestError{http.StatusRequestURITooLong,
			fmt.Sprintf("query string exceeds the limit of %d bytes; send a larger operation with POST", maxBytes)}
	}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: %v", err)
	}
	p := &graphql.RawParams{
		Query:         values.Get("query"),
		OperationName: values.Get("operationName"),
		Headers:       r.Header,
	}
	for _, param := range []struct{ name, value string }{{"query", p.Query}, {"operationName", p.OperationName}} {
		if !utf8.ValidString(param.value) {
			return nil, notUTF8(param.name)
		}
	}
	var rerr *requestError
	if p.Variables, rerr = objectParam(values, "variables"); rerr != nil {
		return nil, rerr
	}
	if p.Extensions, rerr = objectParam(values, "extensions"); rerr != nil {
		return nil, rerr
	}
	p.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	return p, requireDocument(p)
}

// objectParam decodes the JSON object in query parameter name; an absent
// or empty parameter is nil.
func objectParam(values url.Values, name string) (map[string]any, *requestError) {
	raw := values.Get(name)
	if raw == "" {
		return nil, nil
	}
	v, err := decodeJSON(name, []byte(raw))
	if err != nil {
		return nil, err
	}
	return asObject(name, v)
}

// requireDocument rejects a request with neither a query nor an APQ hash
// to look one up by.
func requireDocument(p *graphql.RawParams) *requestError {
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return badRequest(`request has no query: send the GraphQL document in "query"`)
	}
	return nil
}

// runner executes a request once a transport has read it. It is shared by
// the transports so that GET and POST authenticate and answer alike.
type runner struct {
	authn        auth.Authenticator
	challenge    func(error) string // WWW-Authenticate value of a 401, given why the credentials were refused
	mutations    *identityLimiter   // nil: mutations are not rate limited
	maxVariables int                // bytes of variables JSON; 0: no limit
	responder
}

// execute authenticates r, then prepares and executes params, writing the
// response as m. viaGET restricts execution to queries.
func (x *runner) execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor,
	m mediaType, params *graphql.RawParams, viaGET bool) {
	ctx, opCtx, ok := x.prepare(w, r, exec, m, params, viaGET)
	if ok {
		x.dispatch(ctx, w, r, exec, m, opCtx, viaGET)
	}
}

// prepare authenticates r, checks the variables limit and prepares params
// (parse, validation, APQ, depth and complexity limits). It returns the
// context carrying the identity and the operation, or ok=false once it has
// answered r as m: a request error with its status, errors found by
// validation as a GraphQL result. A mutation sent with GET (viaGET) whose
// variables are wrong is refused as any GET mutation is (405): the
// document and operationName say what runs, not the variables.
func (x *runner) prepare(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor,
	m mediaType, params *graphql.RawParams, viaGET bool) (ctx context.Context, opCtx *graphql.OperationContext, ok bool) {
	ctx, ok = x.authenticate(w, r, m)
	if !ok {
		return nil, nil, false
	}
	if size, over := variablesOver(params.Variables, x.maxVariables); over {
		x.reject(w, r, m, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("variables take %d bytes of JSON or more, more than the limit of %d", size, x.maxVariables))
		return nil, nil, false
	}
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	switch {
	case errs != nil && viaGET && isMutation(opCtx):
		x.refuseGETMutation(w, r, m)
		return nil, nil, false
	case errs != nil:
		x.result(w, r, m, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
		return nil, nil, false
	}
	return ctx, opCtx, true
}

// isMutation reports whether opCtx, as far as gqlgen got with it, runs a
// mutation. gqlgen picks the operation once the document has parsed and
// validated, and only then coerces the variables: an opCtx returned with
// errors names its operation when only the variables were wrong.
func isMutation(opCtx *graphql.OperationContext) bool {
	return opCtx != nil && opCtx.Operation != nil && opCtx.Operation.Operation == ast.Mutation
}

// refuseGETMutation answers a mutation sent with GET: the spec requires
// 405, whatever else is wrong with the request once its operation is
// known.
func (x *runner) refuseGETMutation(w http.ResponseWriter, r *http.Request, m mediaType) {
	w.Header().Set("Allow", http.MethodPost)
	x.reject(w, r, m, http.StatusMethodNotAllowed, "mutation operations cannot be sent with GET; use POST")
}

// dispatch executes a prepared operation once and writes its result as m,
// unless the operation may not run over this request (see permitted) or
// is a mutation beyond the identity's rate.
func (x *runner) dispatch(ctx context.Context, w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor,
	m mediaType, opCtx *graphql.OperationContext, viaGET bool) {
	if !x.permitted(graphql.WithOperationContext(ctx, opCtx), w, r, m, exec, opCtx.Operation.Operation, viaGET) {
		return
	}
	if opCtx.Operation.Operation == ast.Mutation && !x.mutationAllowed(ctx, w, r, m, exec, opCtx) {
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	resp := responses(ctx)
	if resp == nil {
		x.noResponse(ctx, w, r)
		return
	}
	x.result(w, r, m, resp)
}

// permitted reports whether operation type op may run over this request,
// answering the request itself if not. GET may only run queries (the spec
// requires 405 for mutations), and a plain HTTP request may not run a
// subscription, whose events need a stream: WebSocket, an event stream
// (sseTransport) for a request that accepts text/event-stream, or a
// multipart stream (multipartTransport) for one that accepts Apollo's
// multipart/mixed;subscriptionSpec=1.0. Each refusal carries the code
// codeBadRequest (a 405's from reject's statusCode).
func (x *runner) permitted(ctx context.Context, w http.ResponseWriter, r *http.Request, m mediaType,
	exec graphql.GraphExecutor, op ast.Operation, viaGET bool) bool {
	switch {
	case viaGET && op == ast.Mutation:
		x.refuseGETMutation(w, r, m)
		return false
	case viaGET && op == ast.Subscription:
		w.Header().Set("Allow", http.MethodPost)
		x.reject(w, r, m, http.StatusMethodNotAllowed,
			"subscription operations cannot be sent with GET as a plain request; send Accept: text/event-stream for a stream, "+
				"or Accept: multipart/mixed;subscriptionSpec=1.0 for a multipart stream, or use the WebSocket transport")
		return false
	case op == ast.Subscription:
		err := gqlerror.Errorf("subscription operations are not supported over a plain HTTP request; send Accept: text/event-stream " +
			"for an event stream, or Accept: multipart/mixed;subscriptionSpec=1.0 for a multipart stream (Apollo Client's HttpLink), " +
			"or use the WebSocket transport")
		errcode.Set(err, codeBadRequest)
		x.result(w, r, m, exec.DispatchError(ctx, gqlerror.List{err}))
		return false
	}
	return true
}

// codeBadRequest is the extensions.code of an operation that the request
// cannot carry, whatever its document and variables: a mutation with GET,
// a subscription without a stream. A client can tell from it that sending
// the operation again the same way cannot succeed, and from the operation
// what to do instead. It is Apollo Server's code (its BadRequestError)
// for the refusal of a GET whose operation is not a query, the one such
// refusal Apollo Server has.
const codeBadRequest = "BAD_REQUEST"

// mutationAllowed spends the mutation tokens of the identity (or of an
// anonymous client's address) for the mutation opCtx runs, one per
// mutation (see identityLimiter.mutationsAllowed), or answers and returns
// false: 429 with Retry-After and a RATE_LIMITED error, or, for more
// mutations than the burst, the error as a validation error's.
func (x *runner) mutationAllowed(ctx context.Context, w http.ResponseWriter, r *http.Request, m mediaType,
	exec graphql.GraphExecutor, opCtx *graphql.OperationContext) bool {
	gerr := x.mutations.mutationsAllowed(ctx, opCtx, r.RemoteAddr)
	switch {
	case gerr == nil:
		return true
	case gerr.Extensions["code"] == codeRateLimited:
		x.refuseRateLimited(w, r, m, gerr)
	default:
		x.result(w, r, m, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), gqlerror.List{gerr}))
	}
	return false
}

// refuseRateLimited answers a RATE_LIMITED error: 429 with Retry-After.
func (x *runner) refuseRateLimited(w http.ResponseWriter, r *http.Request, m mediaType, gerr *gqlerror.Error) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(gerr.Extensions["retryAfter"].(float64)))))
	x.sendErrors(w, r, m, http.StatusTooManyRequests, gerr)
}

// authenticate returns r's context carrying the client's identity, if it
// presented one. Otherwise it answers the request and returns ok=false:
// 401 for credentials the authenticator refuses, 503 when it could not
// check them (telling the client its credentials are bad would be a lie),
// nothing when the client left meanwhile (see credentialsUnchecked).
func (x *runner) authenticate(w http.ResponseWriter, r *http.Request, m mediaType) (context.Context, bool) {
	id, ok, err := requestCredentials(x.log, x.authn, r)
	switch {
	case errors.Is(err, auth.ErrInvalidCredentials):
		w.Header().Set("WWW-Authenticate", x.challenge(err))
		x.sendErrors(w, r, m, http.StatusUnauthorized, &gqlerror.Error{
			Message:    err.Error(),
			Extensions: map[string]any{"code": "UNAUTHENTICATED"},
		})
		return nil, false
	case err != nil:
		if x.credentialsUnchecked(r, "server: cannot authenticate request", err) {
			x.reject(w, r, m, http.StatusServiceUnavailable, "authentication is unavailable; try again later")
		}
		return nil, false
	case ok:
		return auth.NewContext(r.Context(), id), true
	}
	return r.Context(), true
}

// requestCredentials has authn judge r's credentials. A panic of the
// authenticator's is logged with its stack and taken as credentials that
// could not be checked (errAuthenticatorPanicked: 503 with Retry-After),
// as one at connection_init is (wsConn.authenticateInit), rather than left
// to gqlgen's recovery, which answers 500 and skips what the caller holds
// for the request: a WebSocket upgrade's place under --max-connections.
func requestCredentials(log *slog.Logger, authn auth.Authenticator, r *http.Request) (id auth.Identity, ok bool, err error) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(log, r.Context(), "authenticating a request", recovered)
			id, ok, err = auth.Identity{}, false, errAuthenticatorPanicked
		}
	}()
	return authn.FromRequest(r)
}

// credentialsUnchecked logs err, the authenticator's failure to check r's
// credentials (not its refusal of them), and reports whether r is to be
// answered, with a 503. A client that hung up while they were checked (a
// JWKS refetch outlasted it, say) ends r's context and makes the
// authenticator give up: nothing failed on the server's side, and no one
// would read the answer, so that is logged at debug level: no client can
// page an operator alerting on errors. Otherwise the provider, or the
// authenticator, failed: logged as msg at error level, with what tells the
// operator whose request it was (sampled: logAuthFailure).
//
// A relayed request's context is not its client's: it ends when the
// replica holding the stream stops serving it (relayServe), while its
// client still waits on the replica that forwarded it, which writes what
// this one answers. So it is always answered, 503 as a relayed start that
// outlasts relayServe is (startOperation): answered nothing, it read as an
// operation accepted (200, empty) that never started. An ended one is the
// provider outlasting relayServe, an error as any other.
func (rs responder) credentialsUnchecked(r *http.Request, msg string, err error) (answer bool) {
	ctx := r.Context()
	if ctx.Err() != nil && !isRelayed(ctx) {
		rs.log.DebugContext(ctx, "server: the client left while its credentials were checked",
			slog.String("remote_addr", r.RemoteAddr), slog.String("path", r.URL.Path), slog.Any("error", err))
		return false
	}
	rs.logAuthFailure(ctx, msg, slog.String("remote_addr", r.RemoteAddr), slog.String("path", r.URL.Path),
		slog.Any("error", err))
	return true
}

// noResponse handles an executor that produced no response. A canceled
// request needs no answer; otherwise the schema broke its contract.
func (x *runner) noResponse(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	if ctx.Err() != nil {
		return
	}
	x.log.ErrorContext(ctx, "server: GraphQL operation produced no response")
	x.sendErrors(w, r, mediaJSON, http.StatusInternalServerError,
		&gqlerror.Error{Message: "internal system error"})
}

// requestError is a request that is not well-formed GraphQL over HTTP; it
// is answered with status and msg before anything executes.
type requestError struct {
	status int
	msg    string
}

func badRequest(format string, args ...any) *requestError {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// notUTF8 refuses a parameter whose text is not UTF-8, the only encoding
// GraphQL over HTTP has (a client sending Latin-1, say).
func notUTF8(what string) *requestError {
	return badRequest("%s is not valid UTF-8", what)
}

func unsupportedMedia(msg string) *requestError {
	return &requestError{http.StatusUnsupportedMediaType, msg}
}

// decodeJSON decodes data, which must hold exactly one JSON value. Numbers
// stay json.Number so that large integers survive to input coercion, as in
// gqlgen's own transports.
func decodeJSON(what string, data []byte) (any, *requestError) {
	// encoding/json would replace bytes that are not UTF-8 with U+FFFD,
	// and the operation would run on text the client did not send.
	if !utf8.Valid(data) {
		return nil, notUTF8(what)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badRequest("%s is empty; expected a JSON object", what)
		}
		return nil, badRequest("%s is not valid JSON: %v", what, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("%s is not valid JSON: unexpected data after the top-level value", what)
	}
	// Now that data is JSON, each backslash begins an escape.
	if surrogate.LoneInJSON(data) {
		return nil, badRequest("%s is not valid UTF-8: it escapes half of a UTF-16 surrogate pair alone, which is no character", what)
	}
	return v, nil
}

// asString returns v as a string; null is "".
func asString(what string, v any) (string, *requestError) {
	switch s := v.(type) {
	case nil:
		return "", nil
	case string:
		return s, nil
	}
	return "", badRequest("%s must be a string, got %s", what, kindOf(v))
}

// asObject returns v as a JSON object; null is nil.
func asObject(what string, v any) (map[string]any, *requestError) {
	switch o := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return o, nil
	}
	return nil, badRequest("%s must be a JSON object, got %s", what, kindOf(v))
}

// kindOf names the JSON type of a value decoded by decodeJSON.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}
