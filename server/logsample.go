package server

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// authFailureLogEvery is how often a failure to check credentials is
// logged at most: while an identity service is down, every request and
// socket fails the same way, and a line each would bury everything else
// in the log (a fleet of reconnecting clients sends thousands a second).
const authFailureLogEvery = time.Second

// logSampler lets a failure that repeats per request through to the log
// at most once per interval, and counts the ones it held back, for the
// next line to say how many there were.
type logSampler struct {
	every time.Duration

	mu   sync.Mutex
	next time.Time // before it, lines are held back
	held int       // lines held back since the last one logged
}

// take reports whether a line may be logged at now and, if so, how many
// were held back since the last one.
func (s *logSampler) take(now time.Time) (ok bool, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.next) {
		s.held++
		return false, 0
	}
	held, s.held = s.held, 0
	s.next = now.Add(s.every)
	return true, held
}

// logAuthFailure logs at error level that credentials could not be
// checked, at most once per authFailureLogEvery: while the identity
// service is down every request fails alike. The line says how many like
// it were not logged since the last one ("suppressed").
func (rs responder) logAuthFailure(ctx context.Context, msg string, attrs ...slog.Attr) {
	ok, held := rs.authFailures.take(time.Now())
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, slog.Int("suppressed", held))
	}
	rs.log.LogAttrs(ctx, slog.LevelError, msg, attrs...)
}
