package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// TestClusterPresenceStopsEndWatches: the stop functions clusterPresence
// hands the roomPresence resolver end pubsub's watches: once a
// subscription's stop returned, its functions are not called again, and
// its signal subscription is released (the resolver's context is not what
// ends a signal watch, so a stop that did nothing would leave one NATS
// subscription and one goroutine behind per roomPresence subscription).
func TestClusterPresenceStopsEndWatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	log, err := pubsub.Open(ctx, pubsub.Options{DataDir: t.TempDir(), ListenAddr: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	p, err := log.Presence(ctx, pubsub.PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	c := clusterPresence{p}

	watch := func() (chan []string, chan string, func(), func()) {
		users, signals := make(chan []string, 64), make(chan string, 64)
		stopUsers, err := c.Watch(ctx, "room", func(u []string) { users <- u })
		if err != nil {
			t.Fatal(err)
		}
		stopSignals, err := c.WatchSignals("room", func(u string) { signals <- u })
		if err != nil {
			t.Fatal(err)
		}
		return users, signals, stopUsers, stopSignals
	}
	// await waits for users to report want and for a signal of want's
	// last member.
	await := func(users chan []string, signals chan string, want ...string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for sawUsers, sawSignal := false, false; !sawUsers || !sawSignal; {
			select {
			case u := <-users:
				sawUsers = sawUsers || slices.Equal(u, want)
			case s := <-signals:
				sawSignal = sawSignal || s == want[len(want)-1]
			case <-deadline:
				t.Fatalf("timed out waiting for %q present and a signal of %q", want, want[len(want)-1])
			}
		}
	}

	users, signals, stopUsers, stopSignals := watch()
	p.Enter("room", "alice")
	if err := c.Signal(ctx, "room", "alice"); err != nil {
		t.Fatal(err)
	}
	await(users, signals, "alice")
	stopUsers()
	stopSignals()

	// Watches opened after the stops are the fence: once they have bob's
	// entry and signal, the stopped ones would have had them too.
	fenceUsers, fenceSignals, stopFenceUsers, stopFenceSignals := watch()
	defer stopFenceUsers()
	defer stopFenceSignals()
	p.Enter("room", "bob")
	if err := c.Signal(ctx, "room", "bob"); err != nil {
		t.Fatal(err)
	}
	await(fenceUsers, fenceSignals, "alice", "bob")
	time.Sleep(200 * time.Millisecond)
	select {
	case u := <-users:
		t.Fatalf("a stopped presence watch was called with %q", u)
	case u := <-signals:
		t.Fatalf("a stopped signal watch was called with %q", u)
	default:
	}
}
