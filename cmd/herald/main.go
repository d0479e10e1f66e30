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
// SIGTERM, SIGINT or SIGHUP starts a graceful drain (see app.Stop) that
// ends with exit code 0 when everything stopped cleanly; one while starting
// cancels the start, which undoes itself, and run returns 0 too. SIGHUP
// does not reload anything: Herald has no reloadable configuration, and
// a hang-up (the terminal closed) means stop. A process started with
// SIGHUP ignored (nohup) keeps ignoring it. A second signal during the
// drain, or while a cancelled start undoes itself, makes run return 1 at
// once, with what is left cut short but not waited for: the caller must
// exit the process then, as main does. So does a drain that outlasts its
// documented bound (stopBound) by stopMargin.
//
// An invalid configuration returns 2, its error written as one JSON log
// line when the log format asked for is json, otherwise as plain text.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "healthcheck" {
		return healthcheck(args[1:], getenv, stderr)
	}
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		reportConfigError(cfg, err, stderr)
		return 2
	}
	logger := newLogger(cfg, stderr)
	if unknown := cfg.unknownVariables(os.Environ()); len(unknown) > 0 {
		securityWarn(logger, "ignoring environment variables that set no flag (see -h for each flag's variable)", "variables", unknown)
	}

	// One channel sees every signal, so none is lost between the first
	// and the second. Two are buffered: both may arrive during start.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, stopSignals()...)
	defer signal.Stop(signals)
	// The log often goes through a pipe (`2>&1 | jq`, a log shipper) whose
	// reader may be gone: Ctrl-C ends it too. Go kills a process whose
	// write to such a stderr fails, which would skip the drain at its
	// first line; ignored, the write fails and Herald goes on.
	signal.Ignore(syscall.SIGPIPE)

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
		logger.Info("stopped while starting", "signal", first.String(), "start", cfg.hideCredentials(err.Error()))
		return 0
	case err != nil:
		// Through hideCredentials: an error may quote a --nats-url whole,
		// its token in it (nats.go's own parse error does).
		logger.Error("herald could not start: " + cfg.hideCredentials(err.Error()))
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
	if stopCode := awaitStop(a, stopBound(cfg)+stopMargin, signals, logger); stopCode != 0 {
		code = stopCode
	}
	return code
}

// stopSignals are the signals that start the graceful drain. SIGHUP is one:
// Go's default for it kills the process without a drain, and Herald has
// nothing to reload. Unless SIGHUP was ignored when the process started
// (nohup): signal.Notify would stop ignoring it, and a closed terminal
// would then stop a replica that was meant to outlive it.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}

// reportConfigError writes an invalid configuration's error: as one JSON
// log line (level ERROR) when the log format asked for is json, so that
// log collectors parse it; otherwise as plain text for whoever reads the
// terminal. A --log-format that is itself invalid is not json: plain text.
func reportConfigError(cfg config, err error, w io.Writer) {
	if cfg.LogFormat == "json" {
		slog.New(slog.NewJSONHandler(w, nil)).Error("invalid configuration", "err", err.Error())
		return
	}
	fmt.Fprintf(w, "herald: invalid configuration:\n%v\n", err)
}

// fixedStopSteps is what the steps of a stop that do not follow the
// configuration may take at most, one after the other, as the README
// counts them: the drain giving up on connections and executions that
// ignore their cancellation (2 s, server.Drain), then, in closeBackground,
// clearing this replica's presence (5 s), closing the relay (2 s) and
// draining NATS (6 s).
const fixedStopSteps = 15 * time.Second

// stopBound is the longest a stop takes by the README ("Stopping, and
// when NATS is away"): the sockets' drain window and their close
// handshakes, in-flight HTTP requests, then fixedStopSteps.
func stopBound(cfg config) time.Duration {
	return cfg.DrainTimeout + 2*cfg.ShutdownTimeout + fixedStopSteps
}

// stopMargin is how much longer than stopBound run lets a stop take
// before it gives up on it: each step has a timeout of its own, so a stop
// that outlasts the sum is stuck in a step that does not honour its own.
const stopMargin = time.Second

// stopper is what awaitStop stops: the app, or a test's stand-in.
type stopper interface {
	Stop(ctx context.Context) error
	// StopStep names the step of Stop under way, "" if unknown.
	StopStep() string
}

// awaitStop runs s.Stop and returns the exit code: 0 if it stopped
// cleanly, 1 if it reported an error. A signal, or Stop still running
// after bound, cuts the stop short and returns 1 at once without waiting
// for it: the caller must exit the process then.
func awaitStop(s stopper, bound time.Duration, signals <-chan os.Signal, logger *slog.Logger) int {
	stopCtx, cutShort := context.WithCancel(context.Background())
	defer cutShort()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(stopCtx) }()
	overdue := time.NewTimer(bound)
	defer overdue.Stop()
	select {
	case err := <-stopped:
		if err != nil {
			logger.Error("unclean shutdown: " + err.Error())
			return 1
		}
		return 0
	case sig := <-signals:
		// Cut the drain short so that what is left closes at once, but
		// do not wait for it: the process exits now.
		cutShort()
		logger.Error("second signal during the drain: exiting at once", "signal", sig.String())
		return 1
	case <-overdue.C:
		// The orchestrator was told the stop takes at most its bound:
		// exit rather than outlive it, saying where it was stuck.
		cutShort()
		step := s.StopStep()
		if step == "" {
			step = "unknown"
		}
		logger.Error("shutdown outlasted its bound: exiting at once", "bound", bound.String(), "step", step)
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
