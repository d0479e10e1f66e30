// Command articles serves a second domain on Herald's engine: the authors
// and articles of Sangria's subscription example (schema.graphqls,
// library/, graph/), through the same server and pubsub packages as
// Herald's chat, with NATS embedded in-process.
//
//	go run ./examples/articles --addr 127.0.0.1:8080 --data-dir data-articles
//
// GraphiQL is at the address given. Development authentication: whoever
// names a user (the X-Herald-User header, "user" in connection_init) is
// that user, which this schema never asks for.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/examples/articles/graph"
	"github.com/heraldhq/herald/examples/articles/library"
	"github.com/heraldhq/herald/pubsub"
	"github.com/heraldhq/herald/server"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP listen address")
	dataDir := flag.String("data-dir", "data-articles", "where the embedded NATS server keeps the event log")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *dataDir, logger); err != nil {
		logger.Error("articles stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then stops gracefully.
func run(ctx context.Context, addr, dataDir string, logger *slog.Logger) error {
	g, err := openGateway(ctx, dataDir, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(fmt.Errorf("listen on %s: %w", addr, err), g.stop(ctx, nil))
	}
	hs := &http.Server{Handler: g.server, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	logger.Info("serving the articles example", "graphiql", "http://"+ln.Addr().String())
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = g.stop(stopCtx, hs.Shutdown)
	if serveErr == nil {
		serveErr = <-served // at once: Shutdown has closed the listener
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		return err
	}
	return errors.Join(fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), serveErr), err)
}

// gateway is the example's wiring: the event log, the library following
// it, and Herald's server in front of the library's schema.
type gateway struct {
	log     *pubsub.Log
	lib     *library.Library
	server  *server.Server
	stopLib context.CancelFunc
	libDone chan struct{}
}

// openGateway opens the event log in dataDir (embedded NATS, no TCP
// listener) and starts the library following it.
func openGateway(ctx context.Context, dataDir string, logger *slog.Logger) (*gateway, error) {
	log, err := pubsub.Open(ctx, pubsub.Options{DataDir: dataDir, Stream: "ARTICLES", Name: "articles", Logger: logger})
	if errors.Is(err, pubsub.ErrDataDirInUse) {
		return nil, fmt.Errorf("--data-dir %s: open the event log: %w; stop the other or pick another directory", dataDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open the event log: %w", err)
	}
	runCtx, stopLib := context.WithCancel(context.Background())
	g := &gateway{log: log, lib: library.New(log, logger), stopLib: stopLib, libDone: make(chan struct{})}
	go func() {
		defer close(g.libDone)
		if err := g.lib.Run(runCtx); err != nil {
			logger.Error("following the event log stopped", "err", err)
		}
	}()
	g.server, err = server.New(g.serverOptions(logger))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("set up the server: %w", err), g.stop(ctx, nil))
	}
	return g, nil
}

// serverOptions serves the library's schema with the engine's default
// limits: a zero server.Limits would bound neither an operation's depth
// nor the mutation rate.
func (g *gateway) serverOptions(logger *slog.Logger) server.Options {
	return server.Options{
		Schema:          graph.NewSchema(g.lib, g.log.Epoch()),
		Authenticator:   auth.Dev{},
		Readiness:       g.readiness,
		Introspection:   true,
		ViewerDirective: graph.ViewerDirective,
		ResumeArgument:  graph.ResumeArgument,
		Limits:          server.DefaultLimits(),
		Logger:          logger,
	}
}

// readiness is /readyz: the log answers and the library has been read.
func (g *gateway) readiness(ctx context.Context) []server.Check {
	logCheck := server.Check{Name: "log", OK: true}
	if err := g.log.Health(ctx); err != nil {
		logCheck.OK, logCheck.Detail = false, err.Error()
	}
	return []server.Check{logCheck, {Name: "library", OK: g.lib.Ready()}}
}

// stop closes every socket and stream (1001) and stops the executions,
// then stops HTTP with closeHTTP (if any), then the library and the event
// log, in that order.
func (g *gateway) stop(ctx context.Context, closeHTTP func(context.Context) error) error {
	var errs []error
	if g.server != nil {
		errs = append(errs, g.server.Shutdown(ctx))
	}
	if closeHTTP != nil {
		errs = append(errs, closeHTTP(ctx))
	}
	g.stopLib()
	<-g.libDone
	return errors.Join(append(errs, g.log.Close())...)
}
