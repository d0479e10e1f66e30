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

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/playground"

	"github.com/heraldhq/herald/auth"
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
	// If it also has a method Challenge() string, its result is sent as the
	// WWW-Authenticate header of 401 responses; otherwise a Bearer challenge
	// is sent.
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
	return o, nil
}

// Server is Herald's HTTP handler. It serves:
//
//	/graphql  GraphQL over HTTP (GET and POST)
//	/         GraphiQL
//	/healthz  liveness
//	/readyz   readiness
type Server struct {
	mux       *http.ServeMux
	graphql   http.Handler // gqlgen's handler with this package's transports
	responder responder
	readiness func(ctx context.Context) []Check

	// upgrade serves /graphql requests that ask for a WebSocket upgrade. It
	// is nil until a WebSocket transport exists; such requests are refused
	// rather than misread as plain GET requests.
	upgrade http.Handler
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
	s := &Server{
		responder: responder{log: opts.Logger},
		readiness: opts.Readiness,
	}
	s.graphql = newGraphQLHandler(opts, s.responder)
	s.mux = s.routes()
	return s, nil
}

// ServeHTTP routes r to the endpoint for its path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// routes registers method-less patterns and checks methods in the handlers,
// so that a wrong method gets a JSON 405 instead of falling through to the
// catch-all 404 or the mux's plain-text 405.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/graphql", s.serveGraphQL)
	mux.Handle("/{$}", onlyGET(playground.Handler("Herald", "/graphql")))
	mux.Handle("/healthz", onlyGET(http.HandlerFunc(serveHealthz)))
	mux.Handle("/readyz", onlyGET(http.HandlerFunc(s.serveReadyz)))
	mux.HandleFunc("/", serveNotFound)
	return mux
}
