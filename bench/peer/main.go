// Command peer is the comparison server most Go teams would write: stock
// gqlgen v0.17.95 with its own transports (WebSocket, POST) over the
// chat-shaped subset of Herald's schema in schema.graphqls, and an in-memory
// per-room channel pub/sub (graph/resolver.go): every subscription resolver
// gets its own buffered channel, and postMessage sends to each channel of the
// room, dropping for a subscriber whose buffer is full.
//
// It serves the same URL and operations as Herald for the load generator:
// POST /graphql and WebSocket /graphql (graphql-transport-ws or graphql-ws).
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/bench/peer/graph"
)

// newHandler returns the /graphql handler, set up as gqlgen's own server
// template does, plus its WebSocket transport.
func newHandler() http.Handler {
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: graph.NewResolver()}))
	// gqlgen v0.17.95's stock WebSocket transport runs on coder/websocket
	// (the transport no longer has a gorilla Upgrader field). Its default
	// accept options refuse a cross-origin Origin header only; the load
	// generator sends none. Setting InsecureSkipVerify (CheckOrigin returning
	// true) would mean importing coder/websocket directly.
	// KeepAlivePingInterval sends ka on graphql-ws only; on
	// graphql-transport-ws, which the benchmarks use, gqlgen pings only with
	// PingPongInterval (and then expects a pong within two intervals).
	srv.AddTransport(transport.Websocket{KeepAlivePingInterval: 10 * time.Second, PingPongInterval: 10 * time.Second})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](100)})

	mux := http.NewServeMux()
	mux.Handle("/graphql", srv)
	return mux
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "listen address")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: newHandler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Printf("peer (stock gqlgen) listening on http://%s/graphql", ln.Addr())
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
