// Command herald runs one Herald replica: a GraphQL gateway for the chat
// domain whose event log lives in NATS JetStream, embedded by default.
//
//	go run ./cmd/herald            # embedded NATS, data in ./data, http://localhost:8080
//	go run ./cmd/herald -h         # every flag and its HERALD_* variable
//	herald healthcheck             # exit 0 if the replica at --addr is ready (for container health checks)
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

// defaultStartTimeout bounds connecting to NATS and setting up at start,
// before the migration of a legacy log and after it; the migration itself
// takes as long as it takes (a signal stops it). config.startTimeout
// holds it, so that tests can shorten it.
const defaultStartTimeout = 30 * time.Second

// run is main without the process: it returns the exit code.
//
// SIGTERM or SIGINT starts a graceful drain (see app.Stop) that ends with
// exit code 0 when everything stopped cleanly; one while starting cancels
// the start, which undoes itself, and run returns 0 too. A second signal
// during the drain, or while a cancelled start undoes itself, makes run
// return 1 at once, with what is left cut short but not waited for: the
// caller must exit the process then, as main does.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], getenv, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald: invalid configuration:\n%v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)

	// One channel sees every signal, so none is lost between the first
	// and the second. Two are buffered: both may arrive during start.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)

	a, first, err := start(cfg, logger, signals)
	var abandoned *abandonedStartError
	switch {
	case errors.As(err, &abandoned):
		// Like a second signal during the drain: what is left of the
		// start is not waited for, the process exits now.
		logger.Error("second signal while starting: exiting at once", "signal", abandoned.second.String())
		return 1
	case err != nil && first != nil:
		// The signal cancelled the start, which undid itself: a stop
		// that was asked for, not a failed start, whatever the cancelled
		// start reports (a NATS dial, for one, ends only at its timeout).
		logger.Info("stopped while starting", "signal", first.String(), "start", err.Error())
		return 0
	case err != nil:
		logger.Error("herald could not start: " + err.Error())
		return 1
	}

	code := 0
	if first == nil {
		select {
		case first = <-signals:
		case err := <-a.Err():
			logger.Error(err.Error())
			code = 1
		}
	}
	if first != nil {
		logger.Info("shutting down gracefully; signal again to exit at once", "signal", first.String())
	}

	stopCtx, cutShort := context.WithCancel(context.Background())
	defer cutShort()
	stopped := make(chan error, 1)
	go func() { stopped <- a.Stop(stopCtx) }()
	select {
	case err := <-stopped:
		if err != nil {
			logger.Error("unclean shutdown: " + err.Error())
			code = 1
		}
		return code
	case sig := <-signals:
		// Cut the drain short so that what is left closes at once, but
		// do not wait for it: the process exits now.
		cutShort()
		logger.Error("second signal during the drain: exiting at once", "signal", sig.String())
		return 1
	}
}

// start starts the app. A signal while it starts cancels the start; if the
// app started anyway, that signal is returned as the one that stops it.
func start(cfg config, logger *slog.Logger, signals <-chan os.Signal) (*app, os.Signal, error) {
	ctx, cancel := context.WithCancel(context.Background()) // startApp bounds its steps by cfg.startTimeout
	defer cancel()
	var (
		a       *app
		err     error
		started = make(chan struct{})
	)
	go func() {
		defer close(started)
		a, err = startApp(ctx, cfg, logger)
	}()
	var sig os.Signal
	select {
	case <-started:
		return a, nil, err
	case sig = <-signals:
	}
	logger.Info("signal while starting: stopping; signal again to exit at once", "signal", sig.String())
	cancel()
	// startApp honours ctx, but a NATS dial or handshake under way ends
	// only at its own timeout (a few seconds): a second signal does not
	// wait for it.
	select {
	case <-started:
		return a, sig, err
	case second := <-signals:
		return nil, sig, &abandonedStartError{second: second}
	}
}

// abandonedStartError is start's error when a second signal came while
// a cancelled start was still undoing itself: the start goes on in the
// background, and the caller must exit the process.
type abandonedStartError struct{ second os.Signal }

func (e *abandonedStartError) Error() string {
	return "start abandoned on a second signal (" + e.second.String() + ")"
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
