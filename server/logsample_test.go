package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/testrig"
)

func TestLogSampler(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	type take struct {
		after    time.Duration // since t0
		ok       bool
		wantHeld int
	}
	cases := []struct {
		name  string
		takes []take
	}{
		{"the first line goes out", []take{{0, true, 0}}},
		{"lines within the interval are held back and counted on the next", []take{
			{0, true, 0}, {time.Millisecond, false, 0}, {999 * time.Millisecond, false, 0},
			{time.Second, true, 2}, {1500 * time.Millisecond, false, 0}, {5 * time.Second, true, 1},
		}},
		{"a line once per interval holds nothing back", []take{
			{0, true, 0}, {time.Second, true, 0}, {2 * time.Second, true, 0},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &logSampler{every: time.Second}
			for i, tk := range tc.takes {
				ok, held := s.take(t0.Add(tk.after))
				if ok != tk.ok || held != tk.wantHeld {
					t.Fatalf("take %d at +%v = (%v, %d), want (%v, %d)", i, tk.after, ok, held, tk.ok, tk.wantHeld)
				}
			}
		})
	}
}

// downAuth is an authenticator whose identity service is down: it can
// check no credentials, of a request or of a socket's connection_init (an
// upgrade carries none here, so the socket gets as far as its init).
type downAuth struct{ auth.Dev }

func (a downAuth) FromRequest(r *http.Request) (auth.Identity, bool, error) {
	if isWebSocketUpgrade(r) {
		return a.Dev.FromRequest(r)
	}
	return auth.Identity{}, false, errors.New("ask the identity service: connection refused")
}

func (downAuth) FromInitPayload(context.Context, map[string]any) (auth.Identity, bool, error) {
	return auth.Identity{}, false, errors.New("ask the identity service: connection refused")
}

// TestAuthFailuresLoggedOncePerInterval: while the identity service is
// down every request and socket fails alike; the ERROR line is logged
// once per interval, on all transports together, and the next one says
// how many like it were held back. Each client still gets its answer.
func TestAuthFailuresLoggedOncePerInterval(t *testing.T) {
	logs := &testrig.LogBuffer{}
	r := newReplica(t, func(o *Options) {
		o.Authenticator = downAuth{}
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	sampler := r.server.responder.authFailures
	sampler.every = time.Hour // set before any request: nothing reads it yet
	failures := func() []string {
		var out []string
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, "cannot authenticate") {
				out = append(out, line)
			}
		}
		return out
	}
	fail := func() {
		t.Helper()
		for range 3 {
			if status, _ := r.get("/graphql?query=%7B__typename%7D"); status != http.StatusServiceUnavailable {
				t.Fatalf("GET with the identity service down: %d, want 503", status)
			}
		}
		c := r.dial(wspTransport.name)
		c.init("alice")
		wspExpectClose(c, closeTryAgainLater, 5*time.Second)
	}
	fail()
	if lines := failures(); len(lines) != 1 || strings.Contains(lines[0], "suppressed") {
		t.Fatalf("after 4 failures within the interval, logged %d lines, want 1 without a count:\n%s", len(lines), logs)
	}
	sampler.mu.Lock()
	sampler.next = time.Time{} // the interval has passed
	sampler.mu.Unlock()
	fail()
	lines := failures()
	if len(lines) != 2 || !strings.Contains(lines[1], "suppressed=3") {
		t.Fatalf("after the interval, logged %d lines, want a second saying suppressed=3:\n%s", len(lines), logs)
	}
}
