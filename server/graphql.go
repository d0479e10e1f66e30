package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// newGraphQLHandler builds gqlgen's handler around opts.Schema with this
// package's GET and POST transports instead of gqlgen's, which deviate from
// the GraphQL-over-HTTP spec in status codes and error bodies, and its two
// HTTP streams: Server-Sent Events and Apollo's multipart subscriptions.
func newGraphQLHandler(opts Options, resp responder, ws *wsTransport, mutations *identityLimiter,
	ss *sessions, execs *sharedExecutions, m *metrics) (http.Handler, *sseTransport, *sseSingleTransport, *multipartTransport) {
	run := &runner{
		authn:        opts.Authenticator,
		challenge:    challengeFor(opts.Authenticator),
		responder:    resp,
		mutations:    mutations,
		maxVariables: opts.Limits.MaxVariablesBytes,
	}
	streams := httpStreams{
		run: run,
		cfg: streamConfig{
			keepAlive:       opts.PingInterval,
			writeTimeout:    opts.WriteTimeout,
			queueItems:      opts.QueueMessages,
			queueBytes:      opts.QueueBytes,
			viewerDirective: opts.ViewerDirective,
			resumeArgument:  opts.ResumeArgument,
		},
		sessions: ss,
		execs:    execs,
		metrics:  m,
		keeper:   ws.keeper,
		parker:   ws.parker,
		frames:   &ws.frames,
	}
	sse := &sseTransport{httpStreams: &streams, maxBodyBytes: opts.MaxBodyBytes}
	multipartStreams := streams
	multipartStreams.cfg.keepAlive = min(opts.PingInterval, multipartKeepAlive)
	multipart := &multipartTransport{httpStreams: &multipartStreams, maxBodyBytes: opts.MaxBodyBytes}
	sseSingle := newSSESingleTransport(&streams, opts, opts.Relay)
	recoverPanic := logPanic(opts.Logger)
	h := handler.New(withEventErrors(opts.Schema, presentError, recoverPanic))
	// The first transport that supports a request serves it: graphql-sse's
	// single connection mode first, which claims the requests carrying its
	// token; then the streams before the plain GET and POST, which claim
	// every GET and POST, and multipart before SSE, which yields to it when
	// both are accepted alike. Each prepares its operations with the
	// executor preciseTransport hands it, for precise answers to bad input.
	docs := newQueryCache(opts.QueryCacheSize)
	shape := shapeLimits{docs: docs}
	if opts.Limits.MaxDepth > 0 {
		shape.depth = &depthLimit{max: opts.Limits.MaxDepth}
	}
	if opts.Limits.MaxComplexity > 0 {
		shape.complexity = &complexityLimit{max: opts.Limits.MaxComplexity, es: opts.Schema}
	}
	for _, t := range []graphql.Transport{
		sseSingle, multipart, sse,
		postTransport{run: run, maxBodyBytes: opts.MaxBodyBytes}, getTransport{run: run, maxBytes: opts.MaxBodyBytes},
		ws,
	} {
		h.AddTransport(preciseTransport{Transport: t, schema: opts.Schema.Schema(), shape: shape})
	}
	h.AroundResponses(eventMetadata)
	if opts.AroundFields != nil {
		h.AroundFields(opts.AroundFields)
	}
	h.SetQueryCache(docs)
	h.SetValidationRulesFn(validationRules(opts.Introspection))
	h.SetErrorPresenter(presentError)
	h.SetRecoverFunc(recoverPanic)
	h.Use(extension.AutomaticPersistedQuery{Cache: newAPQCache(opts.APQCacheSize)})
	if opts.Introspection {
		h.Use(extension.Introspection{})
	}
	// Applied again after validation, to documents the query cache held
	// (see preciseExecutor.refuseShape).
	if shape.depth != nil {
		h.Use(*shape.depth)
	}
	if shape.complexity != nil {
		h.Use(*shape.complexity)
	}
	sseSingle.replay = h
	return h, sse, sseSingle, multipart
}

// serveGraphQL dispatches /graphql by method before gqlgen's handler sees
// the request, because gqlgen answers an unsupported method with 400.
func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	uncacheable(w.Header())
	switch {
	case isWebSocketUpgrade(r):
		s.serveUpgrade(w, r)
	case r.Method == http.MethodGet, r.Method == http.MethodPost:
		s.graphql.ServeHTTP(w, r)
	case r.Method == http.MethodPut, r.Method == http.MethodDelete:
		// graphql-sse's single connection mode: reserve a stream, stop
		// an operation.
		s.graphql.ServeHTTP(w, r)
	default:
		// HEAD included: its answer would be a GET's without the body,
		// and a GET here executes its operation (a query's resolvers, a
		// subscription's stream) to know its status and headers, work
		// whose result HEAD throws away. The GraphQL over HTTP spec asks
		// for GET and POST only. RFC 9110's GET and HEAD for general-
		// purpose servers is met by /healthz, /readyz, /metrics and
		// GraphiQL; a 405 names what /graphql takes (section 15.5.6).
		w.Header().Set("Allow", "GET, POST, PUT, DELETE")
		s.responder.reject(w, r, fallbackMedia(r), http.StatusMethodNotAllowed,
			fmt.Sprintf("method %s is not allowed on /graphql; use GET or POST (PUT and DELETE for graphql-sse's single connection mode)", clip(r.Method)))
	}
}

// uncacheable marks an answer on /graphql. Every answer there is
// negotiated on Accept (its media type, its status, a stream or not), so a
// cache must not hand one client's answer to another that accepts
// something else (RFC 9110 section 12.5.5). Nor may it store one at all:
// results are live data, often one user's, and caches such as Varnish and
// Fastly store a GET's answer that says nothing. Streams say no-cache,
// no-transform instead (httpStreams.sendHead).
func uncacheable(h http.Header) {
	h.Add("Vary", "Accept")
	h.Set("Cache-Control", "no-store")
}

// serveUpgrade hands WebSocket upgrade requests to gqlgen's handler,
// which passes them to the WebSocket transport with its executor.
func (s *Server) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	s.graphql.ServeHTTP(w, r)
}

// isWebSocketUpgrade reports whether r asks to switch to the WebSocket
// protocol. Other upgrade tokens (h2c, say) are ignorable per RFC 9110.
func isWebSocketUpgrade(r *http.Request) bool {
	for _, value := range r.Header.Values("Upgrade") {
		for token := range strings.SplitSeq(value, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "websocket") {
				return true
			}
		}
	}
	return false
}

// extendedError is an error that carries GraphQL error extensions, such as
// {"code": "NOT_FOUND"}.
type extendedError interface {
	error
	Extensions() map[string]any
}

// presentError is gqlgen's default presenter plus extendedError support,
// which gqlgen no longer has. Extensions already on the GraphQL error win.
func presentError(ctx context.Context, err error) *gqlerror.Error {
	gqlErr := graphql.DefaultErrorPresenter(ctx, err)
	ext, ok := errors.AsType[extendedError](err)
	if gqlErr == nil || !ok || len(ext.Extensions()) == 0 {
		return gqlErr
	}
	merged := maps.Clone(ext.Extensions())
	maps.Copy(merged, gqlErr.Extensions)
	// Copy rather than mutate: the error may be a value the resolver shares.
	presented := *gqlErr
	presented.Extensions = merged
	return &presented
}

// codeInternal is the code of an error Herald did not mean: a recovered
// panic.
const codeInternal = "INTERNAL_SERVER_ERROR"

// internalError is what a client gets for a recovered panic: nothing of it.
func internalError() *gqlerror.Error {
	return &gqlerror.Error{Message: "internal system error", Extensions: map[string]any{"code": codeInternal}}
}

// logPanic returns a recover function that logs a panic recovered during
// execution and gives the client gqlgen's usual opaque error instead.
func logPanic(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, recovered any) error {
		attrs := []any{
			slog.String("panic", fmt.Sprint(recovered)),
			slog.String("stack", string(debug.Stack())),
		}
		if path := graphql.GetPath(ctx); path != nil {
			attrs = append(attrs, slog.String("path", path.String()))
		}
		if graphql.HasOperationContext(ctx) {
			attrs = append(attrs, slog.String("operation", graphql.GetOperationContext(ctx).OperationName))
		}
		log.ErrorContext(ctx, "server: recovered panic while executing GraphQL operation", attrs...)
		return internalError()
	}
}

// errorChallenger is an authenticator that words the WWW-Authenticate challenge
// of a 401 after why it refused the credentials, as auth.JWT does: RFC 6750
// section 3.1 has a refused token's challenge say error="invalid_token", so
// that the client gets a new token rather than sending the same one again.
type errorChallenger interface {
	ChallengeFor(err error) string
}

// challengeFor returns the WWW-Authenticate value for authn's 401 responses,
// given the error that refused the credentials: authn's ChallengeFor, or
// else its fixed Challenge, or else a plain Bearer challenge.
func challengeFor(authn any) func(err error) string {
	if c, ok := authn.(errorChallenger); ok {
		return c.ChallengeFor
	}
	fixed := `Bearer realm="herald"`
	if c, ok := authn.(interface{ Challenge() string }); ok {
		fixed = c.Challenge()
	}
	return func(error) string { return fixed }
}
