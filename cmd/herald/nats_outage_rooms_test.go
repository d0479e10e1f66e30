package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// TestNATSOutageRoomsNotHeld: while an external NATS server is away, a
// query of rooms the replica does not hold answers UNAVAILABLE at once
// (README: "a room it does not hold cannot be loaded"), not after the
// load timeout (30 s), and logs no warning for each room a client's query
// touches: NATS's absence is logged once already and shown by /readyz,
// and anyone may send such queries.
func TestNATSOutageRoomsNotHeld(t *testing.T) {
	const rooms = 5
	nats := newExternalNATS(t)
	cfg := testConfig(t, t.TempDir())
	cfg.NATSURLs = []string{nats.url()}
	cfg.ApplyTimeout = 2 * time.Second
	logs := &testrig.LogBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := startApp(ctx, cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("start herald: %v", err)
	}
	t.Cleanup(func() { stopTestApp(t, a) })
	waitReady(t, a)
	addr := a.Addr()
	// Creating a room touches only the directory: the replica holds none.
	var ids []string
	for i := range rooms {
		ids = append(ids, createRoom(t, addr, "alice", fmt.Sprintf("outage-%d", i)))
	}

	nats.stop()
	deadline := time.Now().Add(10 * time.Second)
	for body := ""; !strings.Contains(body, `"name":"nats","ok":false`); {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during the outage does not blame NATS after 10s: %s", body)
		}
		body = waitReadyz(t, addr, http.StatusServiceUnavailable, 5*time.Second)
	}

	queries := []struct {
		name, query string
		vars        map[string]any
	}{
		{"one room", `query($r: ID!) { room(id: $r) { messageCount } }`, map[string]any{"r": ids[0]}},
		{"every room", `{ rooms { nodes { messageCount } } }`, nil},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			start := time.Now()
			r, err := crashGQL(addr, "", q.query, q.vars)
			took := time.Since(start)
			switch {
			case err != nil:
				t.Fatalf("no answer after %s (--apply-timeout %s): %v", took.Round(time.Millisecond), cfg.ApplyTimeout, err)
			case r.code() != "UNAVAILABLE":
				t.Errorf("answered %+v, want UNAVAILABLE", r.Errors)
			case took > time.Second:
				t.Errorf("answered after %s, want at once (--apply-timeout %s)", took.Round(time.Millisecond), cfg.ApplyTimeout)
			}
		})
	}
	time.Sleep(2 * time.Second) // room loads, had any started, would go on failing
	var failed []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "loading a room") {
			failed = append(failed, l)
		}
	}
	if len(failed) > rooms {
		t.Errorf("queries of %d rooms during a NATS outage logged %d warnings about loading them, want at most one a room:\n%s",
			rooms, len(failed), strings.Join(failed, "\n"))
	}
}
