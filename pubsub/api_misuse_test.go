package pubsub

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPartitionStreamWithZeroPartitions: Options.Partitions documents 0
// as "default 1"; an embedder that names a key's stream from its Options
// (PartitionStream(opts.Stream, opts.Partitions, key)) must not crash.
func TestPartitionStreamWithZeroPartitions(t *testing.T) {
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("PartitionStream(\"HERALD\", 0, \"room1\") panicked: %v (0 partitions is Options.Partitions' zero value, meaning 1)", r)
		}
	}()
	got := PartitionStream("HERALD", 0, "room1")
	if got != "HERALD_P0" {
		t.Errorf("PartitionStream(\"HERALD\", 0, \"room1\") = %q, want the default layout's %q", got, "HERALD_P0")
	}
}

// TestPresenceRefusesNegativeOptions: Log.Presence refuses a negative
// Heartbeat, Coalesce, Replicas or WriteTimeout with an error, as it does a
// TTL under 1s (a negative Heartbeat crashed the whole process from the
// writer's goroutine: a ticker of a non-positive interval).
func TestPresenceRefusesNegativeOptions(t *testing.T) {
	l := openEmbedded(t, Options{})
	for _, tc := range []struct {
		name string
		opts PresenceOptions
		want string
	}{
		{"heartbeat", PresenceOptions{Heartbeat: -time.Second}, "heartbeat"},
		{"coalesce", PresenceOptions{Coalesce: -time.Second}, "coalesce"},
		{"replicas", PresenceOptions{Replicas: -1}, "replicas"},
		{"write timeout", PresenceOptions{WriteTimeout: -time.Second}, "write timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Replica = "r1"
			p, err := l.Presence(testCtx(t, 10*time.Second), tc.opts)
			if err == nil {
				_ = p.Close(testCtx(t, 5*time.Second))
				t.Fatalf("Log.Presence(%+v) succeeded, want an error", tc.opts)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the %s", err, tc.want)
			}
		})
	}
}

// TestPresenceWatchEndsWithPresenceClose: a PresenceWatch started with a
// context that does not end stops with its Presence's Close (it ran on,
// retrying on the closed connection every Heartbeat or so with a warning
// each time), as a Live or a FollowDirectory does when the Log closes.
func TestPresenceWatchEndsWithPresenceClose(t *testing.T) {
	l := openEmbedded(t, Options{})
	p, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "r1", TTL: time.Second, Coalesce: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	calls := make(chan []string, 100)
	pw, err := p.Watch(context.Background(), "room1", func(m []string) { calls <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	<-calls
	if err := p.Close(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-pw.done:
	case <-time.After(3 * time.Second):
		t.Errorf("a PresenceWatch still runs 3s after Presence.Close and Log.Close: it retries watching on the closed connection forever (\"presence: topic not watched; retrying\" err=\"nats: connection closed\" every Heartbeat)")
	}
}

// TestPresenceWatchAfterCloseFails: like every other object of this
// package after Close (Live.Add, Relay.Listen: "closed"), Presence.Watch
// on a closed Presence fails (it succeeded, and, the liveness follower
// being stopped, reported a dead replica's members as present for ever).
func TestPresenceWatchAfterCloseFails(t *testing.T) {
	l := openEmbedded(t, Options{})
	opts := func(r string) PresenceOptions {
		return PresenceOptions{Replica: r, TTL: time.Second, Coalesce: 10 * time.Millisecond}
	}
	p1 := openPresence(t, l, opts("r1"))
	p2 := openPresence(t, l, opts("r2"))
	p3 := openPresence(t, l, opts("r3"))
	p2.Enter("room1", "alice")
	live := watchPresence(t, p3, "room1")
	live.until(t, 5*time.Second, "alice")

	if err := p1.Close(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	calls := make(chan []string, 100)
	w, err := p1.Watch(t.Context(), "room1", func(m []string) { calls <- m })
	if err != nil {
		return // refused: fine
	}
	t.Cleanup(w.Close)

	// r2 dies without deleting its keys (its process was killed): its
	// writer and follower stop, its liveness key expires after the TTL.
	p2.once.Do(func() {
		close(p2.stop)
		p2.endLife()
		p2.wg.Wait()
	})
	live.until(t, 5*time.Second) // a live replica's watch sees alice leave

	var last []string
	deadline := time.After(3 * time.Second)
	for {
		select {
		case m := <-calls:
			last = m
			if len(m) == 0 {
				return
			}
			continue
		case <-deadline:
		}
		break
	}
	t.Errorf("Watch on a closed Presence returned no error, and still reports %q present after their replica died (a live replica's watch reported [])", last)
}

// TestRelayCloseTwiceBothWait: Relay.Close waits for the requests being
// served, and so does a second Close called while the first waits (it
// returned at once, and its caller closed the Log under the request).
func TestRelayCloseTwiceBothWait(t *testing.T) {
	l := openEmbedded(t, Options{})
	r := l.Relay()
	started := make(chan struct{})
	release := make(chan struct{})
	serving := make(chan struct{})
	stop, err := r.Listen("k1", func(ctx context.Context, h http.Header, b []byte) (http.Header, []byte) {
		defer close(serving)
		close(started)
		<-release
		return nil, []byte("ok")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	go func() { _, _, _ = r.Send(testCtx(t, 5*time.Second), "k1", nil, nil) }()
	<-started
	first := make(chan struct{})
	go func() { r.Close(); close(first) }()
	time.Sleep(100 * time.Millisecond) // the first Close is waiting
	second := make(chan struct{})
	go func() { r.Close(); close(second) }()
	select {
	case <-second:
		select {
		case <-serving:
		default:
			t.Errorf("a second Relay.Close returned while a request was still being served; the doc says Close waits for them")
		}
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	<-first
	<-serving
}
