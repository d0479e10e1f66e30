// Command herald runs one Herald replica: a GraphQL gateway for the chat
// domain whose event log lives in NATS JetStream, embedded by default.
//
//	go run ./cmd/herald            # embedded NATS, data in ./data, http://localhost:8080
//	go run ./cmd/herald -h         # every flag and its HERALD_* variable
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald: invalid configuration:\n%v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	a, err := startApp(startCtx, cfg, logger)
	cancelStart()
	if err != nil {
		logger.Error("herald could not start: " + err.Error())
		return 1
	}

	code := 0
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-a.Err():
		logger.Error(err.Error())
		code = 1
	}
	stop() // a second signal now kills the process the default way
	stopCtx, cancelStop := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancelStop()
	if err := a.Stop(stopCtx); err != nil {
		logger.Error("unclean shutdown: " + err.Error())
		code = 1
	}
	return code
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
