package testrig

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Interrupted is the cause of a context that NotifySignals cancelled.
type Interrupted struct {
	Signal syscall.Signal
}

func (e *Interrupted) Error() string {
	name := map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM", syscall.SIGHUP: "SIGHUP", syscall.SIGQUIT: "SIGQUIT"}[e.Signal]
	if name == "" {
		name = e.Signal.String()
	}
	return "interrupted by " + name
}

// ExitCode is the shell's status for a process ended by the signal: 128+n.
func (e *Interrupted) ExitCode() int { return 128 + int(e.Signal) }

// NotifySignals returns a context that the first of sigs (SIGINT and SIGTERM
// if none are given) cancels with an *Interrupted, and one that a second
// signal cancels, for cleanup to stop waiting for grace periods. stop stops
// catching the signals and waits for the goroutine that does.
func NotifySignals(parent context.Context, sigs ...os.Signal) (ctx, hurry context.Context, stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	ctx, cancel := context.WithCancelCause(parent)
	hurry, hurryUp := context.WithCancelCause(context.WithoutCancel(parent))
	c := make(chan os.Signal, 2)
	signal.Notify(c, sigs...)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := 0
		for {
			select {
			case sig := <-c:
				n++
				s, _ := sig.(syscall.Signal)
				if n == 1 {
					cancel(&Interrupted{Signal: s})
				} else {
					hurryUp(&Interrupted{Signal: s})
				}
			case <-quit:
				return
			}
		}
	}()
	return ctx, hurry, func() {
		signal.Stop(c)
		close(quit)
		<-done
		cancel(context.Canceled)
		hurryUp(context.Canceled)
	}
}
