// Package server is Herald's transport layer: the HTTP routes that carry
// GraphQL over HTTP plus the operational endpoints. It knows gqlgen's
// executor API but nothing about the domain; the executable schema and the
// authenticator are injected through Options.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/server/graphiql"
)

// Defaults applied by New to zero-valued Options fields.
const (
	defaultMaxBodyBytes   = 1 << 20
	defaultQueryCacheSize = 1000
	defaultAPQCacheSize   = 1000
)

// Check is one readiness check's result.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Options configures New.
type Options struct {
	// Schema is the executable schema to serve. Required.
	Schema graphql.ExecutableSchema
	// Authenticator identifies the client of every GraphQL request. Required.
	// If it also has a method ChallengeFor(err error) string, its result for
	// the error refusing the credentials is sent as the WWW-Authenticate
	// header of 401 responses (auth.JWT's says error="invalid_token"); else,
	// if it has a method Challenge() string, that; otherwise a Bearer
	// challenge.
	Authenticator auth.Authenticator
	// Readiness reports the state of the dependencies; the server is ready
	// when every returned check is OK. Required. It is given a context that
	// expires after a short timeout and should honour it.
	Readiness func(ctx context.Context) []Check
	// MaxBodyBytes bounds a POST /graphql request body; default 1 MiB.
	MaxBodyBytes int64
	// QueryCacheSize is the number of parsed and validated documents kept;
	// default 1000.
	QueryCacheSize int
	// APQCacheSize is the number of automatic persisted queries kept;
	// default 1000.
	APQCacheSize int
	// Introspection enables the __schema and __type fields.
	Introspection bool
	// Logger receives recovered panics and failures; default slog.Default().
	Logger *slog.Logger

	// WebSocket (graphql-transport-ws and legacy graphql-ws at /graphql).

	// InitTimeout is how long a socket may stay without connection_init
	// before it is closed with 4408; default 3s.
	InitTimeout time.Duration
	// PingInterval is how often an idle socket is pinged (graphql-transport-ws
	// ping; legacy ka plus a WebSocket ping), how often an event stream gets
	// a keepalive comment, and how often a multipart stream gets a heartbeat
	// part, though at least every 10s (see multipartKeepAlive); default 15s.
	PingInterval time.Duration
	// PongTimeout is how long after a ping interval without any frame from
	// the client the socket is taken as dead and closed; default PingInterval.
	PongTimeout time.Duration
	// WriteTimeout bounds writing one batch of frames to a socket or an
	// event stream, and how long any other answer (a query's result,
	// GraphiQL's files, /metrics) may wait on a client that does not read
	// it: each 4 KiB of it must be taken within WriteTimeout, or the
	// connection is dropped; default 10s.
	WriteTimeout time.Duration
	// QueueMessages and QueueBytes bound each socket's and HTTP stream's
	// outbound queue; a socket whose queue is full is closed with 1013
	// (retry later) as a slow consumer, a stream ends with a SLOW_CONSUMER
	// error. A queue below QueueBytes takes a message of any size, so one
	// result larger than QueueBytes goes out. Defaults 1024 messages and
	// 1 MiB.
	QueueMessages int
	QueueBytes    int
	// MaxMessageBytes bounds one message from a client (1009 above it);
	// default 64 KiB.
	MaxMessageBytes int64
	// ViewerDirective names the schema directive that marks fields whose
	// value depends on who asks. Identical subscriptions share one execution
	// across identities unless they select such a field (marked on the type
	// it is selected through, or on an interface that type implements, or on
	// a type implementing that interface or another interface of that type;
	// a mark on a type marks all its fields). Empty: never share
	// across identities. New refuses a name the schema does not declare as
	// a directive on FIELD_DEFINITION: it would mark no field, and every
	// viewer's values would be shared with every other.
	ViewerDirective string
	// ResumeArgument names the subscription argument that carries a resume
	// cursor. A subscription given one replays from it, so it runs its own
	// execution instead of joining a shared one whose earlier results it
	// did not see. Empty: no argument is special. New refuses a name that
	// no Subscription field takes as a String argument: every resume would
	// be shared as if it were live, and a subscriber joining one after its
	// replay would miss that replay.
	ResumeArgument string
	// AroundFields, if set, wraps every field resolution (tracing,
	// instrumentation).
	AroundFields graphql.FieldMiddleware
	// Metrics is where the server registers its instruments and what
	// /metrics serves; default a new registry with Go and process collectors.
	Metrics *prometheus.Registry

	// AllowedOrigins lists the web origins whose pages may use the server
	// from a browser (WebSocket upgrades and CORS): "*" for any, exact
	// origins ("https://app.example.com") and wildcard subdomains
	// ("https://*.example.com"). Same-origin requests and requests without
	// an Origin header are always allowed; others get 403. A listed origin's
	// pages may send the user's cookies (Access-Control-Allow-Credentials);
	// an origin allowed by "*" alone may not: it gets
	// Access-Control-Allow-Origin: *, and its requests' cookies are dropped
	// before the Authenticator sees them, so that such a page acts only with
	// credentials it holds itself (an Authorization header, connection_init).
	AllowedOrigins []string
	// Limits bound what one client can make the server do; zero fields
	// are no limit.
	Limits Limits
	// Relay connects the replicas for graphql-sse's single connection
	// mode, whose requests for one stream may reach any replica; default
	// NewLocalRelay(), enough for one replica.
	Relay Relay
	// Presence is told which identified users are subscribed, on this
	// replica, to subscriptions whose resolver announced a presence topic
	// (auth.Announce); nil: nobody is told.
	Presence Presence
}

// withDefaults returns a copy of o with zero fields defaulted, or an error
// naming the first field that is missing or invalid.
func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Schema == nil:
		return o, errors.New("Options.Schema is required")
	case o.Authenticator == nil:
		return o, errors.New("Options.Authenticator is required")
	case o.Readiness == nil:
		return o, errors.New("Options.Readiness is required")
	case o.MaxBodyBytes < 0:
		return o, fmt.Errorf("Options.MaxBodyBytes is %d, must not be negative", o.MaxBodyBytes)
	case o.QueryCacheSize < 0:
		return o, fmt.Errorf("Options.QueryCacheSize is %d, must not be negative", o.QueryCacheSize)
	case o.APQCacheSize < 0:
		return o, fmt.Errorf("Options.APQCacheSize is %d, must not be negative", o.APQCacheSize)
	}
	if err := o.Limits.validate(); err != nil {
		return o, err
	}
	if err := checkViewerDirective(o.Schema.Schema(), o.ViewerDirective); err != nil {
		return o, err
	}
	if err := checkResumeArgument(o.Schema.Schema(), o.ResumeArgument); err != nil {
		return o, err
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = defaultMaxBodyBytes
	}
	if o.QueryCacheSize == 0 {
		o.QueryCacheSize = defaultQueryCacheSize
	}
	if o.APQCacheSize == 0 {
		o.APQCacheSize = defaultAPQCacheSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&o.InitTimeout, 3 * time.Second}, {&o.PingInterval, 15 * time.Second}, {&o.WriteTimeout, 10 * time.Second}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = o.PingInterval
	}
	if o.QueueMessages <= 0 {
		o.QueueMessages = 1024
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 1 << 20
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 64 << 10
	}
	if o.Relay == nil {
		o.Relay = NewLocalRelay()
	}
	if o.Metrics == nil {
		o.Metrics = prometheus.NewRegistry()
		o.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return o, nil
}

// checkViewerDirective refuses a ViewerDirective that schema does not
// declare on FIELD_DEFINITION. The server only looks the name up on the
// fields an operation selects (viewerDependent), so a misspelt or renamed
// directive would not fail anywhere: every field would be taken as the
// same for every viewer, and one viewer's values delivered to all.
func checkViewerDirective(schema *ast.Schema, name string) error {
	if name == "" {
		return nil
	}
	var d *ast.DirectiveDefinition
	if schema != nil {
		d = schema.Directives[name]
	}
	switch {
	case d == nil:
		return fmt.Errorf("Options.ViewerDirective is %q, which the schema does not declare (its directives: %s); "+
			"declare it (directive @%s on FIELD_DEFINITION) or name one it declares", name, declaredDirectives(schema), name)
	case !slices.Contains(d.Locations, ast.LocationFieldDefinition):
		return fmt.Errorf("Options.ViewerDirective is %q, which the schema declares on %s, not FIELD_DEFINITION: it can mark no field",
			name, joinLocations(d.Locations))
	}
	return nil
}

// declaredDirectives lists the directives schema declares itself, leaving
// out GraphQL's built-in ones, for an error message.
func declaredDirectives(schema *ast.Schema) string {
	var names []string
	if schema != nil {
		for name, d := range schema.Directives {
			if d.Position == nil || d.Position.Src == nil || !d.Position.Src.BuiltIn {
				names = append(names, "@"+name)
			}
		}
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func joinLocations(locations []ast.DirectiveLocation) string {
	names := make([]string, len(locations))
	for i, l := range locations {
		names[i] = string(l)
	}
	return strings.Join(names, " | ")
}

// checkResumeArgument refuses a ResumeArgument that no root field of
// schema's Subscription type takes, or that one takes as anything but a
// String. The server finds the cursor by that name among the arguments of
// an operation's root field (findCursor) and passes a reconnecting event
// stream's Last-Event-ID, a string, in it; under a name no field takes, a
// resume would never be found, and would run as a shared execution that a
// second subscriber resuming from the same cursor joins after its replay.
// A field that does not take it (one that cannot resume) is fine.
func checkResumeArgument(schema *ast.Schema, name string) error {
	if name == "" {
		return nil
	}
	var sub *ast.Definition
	if schema != nil {
		sub = schema.Subscription
	}
	if sub == nil {
		return fmt.Errorf("Options.ResumeArgument is %q, but the schema has no Subscription type", name)
	}
	takers := 0
	var fields []string
	for _, f := range sub.Fields {
		if strings.HasPrefix(f.Name, "__") {
			continue
		}
		args := make([]string, len(f.Arguments))
		for i, a := range f.Arguments {
			args[i] = a.Name
		}
		fields = append(fields, fmt.Sprintf("%s(%s)", f.Name, strings.Join(args, ", ")))
		a := f.Arguments.ForName(name)
		if a == nil {
			continue
		}
		if a.Type.Elem != nil || a.Type.NamedType != "String" {
			return fmt.Errorf("Options.ResumeArgument is %q, which Subscription.%s takes as %s: a cursor is a String",
				name, f.Name, a.Type.String())
		}
		takers++
	}
	if takers == 0 {
		return fmt.Errorf("Options.ResumeArgument is %q, which no Subscription field takes (the fields and their arguments: %s); "+
			"name the cursor argument of the subscriptions", name, strings.Join(fields, ", "))
	}
	return nil
}

// Server is Herald's HTTP handler. It serves:
//
//	/graphql  GraphQL over HTTP (GET and POST), WebSocket, Server-Sent
//	          Events and Apollo's multipart subscriptions
//	/         GraphiQL (its files under /graphiql/)
//	/healthz  liveness
//	/readyz   readiness
//	/metrics  Prometheus metrics
type Server struct {
	mux       *http.ServeMux
	graphql   http.Handler // gqlgen's handler with this package's transports
	responder responder
	readiness func(ctx context.Context) []Check
	metrics   *prometheus.Registry
	origins   *originPolicy

	ws         *wsTransport
	sse        *sseTransport
	sseSingle  *sseSingleTransport
	multipart  *multipartTransport
	sessions   *sessions         // WebSockets and event streams: admission, drain
	execs      *sharedExecutions // shared by every transport
	draining   atomic.Bool       // set by StartDrain: /readyz fails
	stopKeeper context.CancelFunc
	keeperDone chan struct{}
}

// New returns a Server configured by opts, or an error if opts is missing a
// required field or has an invalid one.
//
// Resolver errors that have a method Extensions() map[string]any keep those
// extensions in the response (gqlgen's default presenter drops them).
func New(opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	origins, err := newOriginPolicy(opts.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("server: Options.AllowedOrigins: %w", err)
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, fmt.Errorf("server: Options.Metrics: %w", err)
	}
	s := &Server{
		responder: responder{log: opts.Logger, deadline: answerDeadline{timeout: opts.WriteTimeout},
			authFailures: &logSampler{every: authFailureLogEvery}},
		readiness: opts.Readiness,
		metrics:   opts.Metrics,
		origins:   origins,
	}
	mutations := newIdentityLimiter(opts.Limits.MutationRate, opts.Limits.MutationBurst)
	s.sessions = newSessions(opts.Limits.MaxConnections)
	s.execs = newSharedExecutions(m, opts.Logger, opts.QueueMessages, opts.Presence)
	s.execs.schema = opts.Schema.Schema()
	s.ws = newWSTransport(opts, m, s.responder, mutations, s.sessions, s.execs)
	switch p, err := newParker(); {
	case err == nil:
		s.ws.parker = p
	case !errors.Is(err, errNoParker):
		opts.Logger.Warn("server: idle WebSockets keep a goroutine each", slog.Any("error", err))
	}
	s.graphql, s.sse, s.sseSingle, s.multipart = newGraphQLHandler(opts, s.responder, s.ws, mutations, s.sessions, s.execs, m)
	s.mux = s.routes()
	keeperCtx, stop := context.WithCancel(context.Background())
	s.stopKeeper, s.keeperDone = stop, make(chan struct{})
	go func() {
		defer close(s.keeperDone)
		s.ws.keeper.run(keeperCtx)
	}()
	return s, nil
}

// StartDrain begins a graceful stop, at once and without waiting: /readyz
// answers 503 with a failing "draining" check from now on, so load
// balancers stop sending traffic here, and new WebSockets and event
// streams are refused with 503. Open ones and HTTP requests carry on;
// Drain ends them.
// It is safe to call more than once and from any goroutine.
func (s *Server) StartDrain() {
	s.draining.Store(true)
	s.sessions.startDrain()
}

// DisconnectUser ends every WebSocket (closed with 4403) and event stream
// (ended with a FORBIDDEN error) of user on this replica, and returns how
// many it ended. Their subscriptions stop with them. It does not wait for
// the connections to finish, and does not stop user from connecting again:
// whoever calls it revokes the user's credentials too. Every replica must
// be told (Herald passes it on over NATS).
func (s *Server) DisconnectUser(user string) int {
	if user == "" {
		return 0
	}
	return s.sessions.disconnectUser(user)
}

// Draining reports whether StartDrain (or Drain, or Shutdown) has been called.
func (s *Server) Draining() bool { return s.draining.Load() }

// Drain stops the server gracefully: it starts draining (see StartDrain),
// closes every open WebSocket with 1001 (going away) and ends every event
// stream, spread evenly over window, oldest first, so that clients do not
// all reconnect elsewhere at the same moment, then waits for them to
// finish and for every subscription execution to stop. A socket normally
// finishes within milliseconds of its close frame; one whose peer does not
// answer gets about a second, one stuck in a write up to
// Options.WriteTimeout, so give ctx room beyond window. All of it is
// bounded by ctx: when ctx ends, the sessions not yet ended are ended at
// once and the connections of all that have not finished are dropped (the
// error says how many). Drain then waits about a second more for them
// and for the subscription executions to stop, and returns with an error
// counting those that had not (a resolver that ignores its context holds
// its session and its execution), so it returns within about two seconds
// of ctx ending whatever they do. HTTP
// requests are the http.Server's to drain: serve them (and /readyz) until
// Drain returns, then call its Shutdown.
func (s *Server) Drain(ctx context.Context, window time.Duration) error {
	s.draining.Store(true)
	s.sseSingle.stopReserving() // reservations made before are still handed over
	dropped, unfinished := s.sessions.drain(ctx, window)
	running := s.execs.close(ctx, s.sessions.dropGrace)
	var err error
	if dropped > 0 {
		err = fmt.Errorf("dropped %d connections (WebSockets, event streams) that had not closed in time: %w",
			dropped, context.Cause(ctx))
	}
	if unfinished > 0 {
		err = errors.Join(err, fmt.Errorf("gave up on %d connections (WebSockets, event streams) that had not finished %s after being dropped",
			unfinished, s.sessions.dropGrace))
	}
	if running > 0 {
		err = errors.Join(err, fmt.Errorf("gave up on %d subscription executions whose resolvers had not returned %s after being cancelled",
			running, s.sessions.dropGrace))
	}
	s.stopKeeper()
	<-s.keeperDone
	if s.ws.parker != nil {
		s.ws.parker.close() // every socket has ended: none is parked
	}
	return err
}

// Shutdown is Drain with no window: every WebSocket is closed with 1001 at
// once.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.Drain(ctx, 0)
}

// ServeHTTP routes r to the endpoint for its path. A path with empty or
// dot segments is served as its cleaned form rather than redirected to it
// (see withCleanPath).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, withCleanPath(r))
}

// routes registers method-less patterns and checks methods in the handlers,
// so that a wrong method gets a JSON 405 instead of falling through to the
// catch-all 404 or the mux's plain-text 405.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/graphql", s.withCORS(s.serveGraphQL))
	// GraphiQL and /metrics write their own answers: their writes are
	// bounded as the responder's are (answerDeadline).
	bounded := s.responder.deadline.handler
	graphiQL := s.onlyGET(bounded(graphiql.Handler(graphiql.Options{Title: "Herald", Endpoint: "/graphql",
		AssetsPath: "/graphiql/", NotFound: http.HandlerFunc(s.serveNotFound)})))
	mux.Handle("/{$}", graphiQL)
	// /graphiql serves the page too, rather than the mux's redirect to
	// /graphiql/ (the assets' directory, a 404): the page names everything
	// relative to itself, and from /graphiql as from / that is the root.
	mux.Handle("/graphiql", graphiQL)
	mux.Handle("/graphiql/", graphiQL)
	mux.Handle("/healthz", s.onlyGET(http.HandlerFunc(s.serveHealthz)))
	mux.Handle("/readyz", s.onlyGET(http.HandlerFunc(s.serveReadyz)))
	mux.Handle("/metrics", s.onlyGET(withNoSniff(bounded(promhttp.HandlerFor(s.metrics, promhttp.HandlerOpts{})))))
	mux.HandleFunc("/", s.serveNotFound)
	return mux
}
