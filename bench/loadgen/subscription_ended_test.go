package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestServerEndingSubscriptionsFailsTheRun: a server that ends
// subscriptions (complete) while keeping their sockets open fails the run,
// whatever RequireZeroLoss says. An idle run (S3, S5) would otherwise have
// measured sockets without subscriptions; a publish run's rate and costs
// are over fewer subscribers, even when the ended one missed nothing.
// (A server that closes the sockets fails it too:
// TestIdleRunFailsWhenTheServerClosesEverySocket.)
func TestServerEndingSubscriptionsFailsTheRun(t *testing.T) {
	complete := func(s *fakeSub) { s.write(fmt.Appendf(nil, `{"id":%q,"type":"complete"}`, s.id)) }
	tests := []struct {
		name  string
		ended int
		// setUp returns the fake server and what to change in the run.
		setUp func(started string) (*fakeServer, func(*Config))
	}{
		{"idle, every subscription ended 200 ms in", 4, func(started string) (*fakeServer, func(*Config)) {
			f := &fakeServer{}
			onStarted(started, func() {
				f.mu.Lock()
				subs := append([]*fakeSub{}, f.subs...)
				f.mu.Unlock()
				for _, s := range subs {
					complete(s)
				}
			})
			return f, func(c *Config) { c.Events = 0; c.Idle = 1500 * time.Millisecond }
		}},
		{"publish, one subscription ended after the last event", 1, func(string) (*fakeServer, func(*Config)) {
			f := &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
				toAll(subs, text)
				if n == 10 {
					complete(subs[0])
				}
			}}
			return f, func(c *Config) { c.RequireZeroLoss = false }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := filepath.Join(t.TempDir(), "started")
			f, tweak := tt.setUp(started)
			rep := runAgainstFake(t, f, func(c *Config) { tweak(c); c.StartedFile = started })
			if rep.Errors["sub-complete"] != tt.ended || rep.Setup.ConnectionsOpenAtEnd != 4 {
				t.Fatalf("the fake should have completed %d subscriptions and kept every socket open: errors %v, %d open at end",
					tt.ended, rep.Errors, rep.Setup.ConnectionsOpenAtEnd)
			}
			wantFailure(t, rep, fmt.Sprintf("subscriptions: %d of 4 ended by the server", tt.ended))
			if rep.Setup.SubscriptionsEndedByServer != tt.ended {
				t.Errorf("subscriptions ended by the server %d, want %d", rep.Setup.SubscriptionsEndedByServer, tt.ended)
			}
		})
	}
}
