package pubsub

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

// closeTestGoroutines counts the goroutines whose stack mentions every one of
// the given substrings.
func closeTestGoroutines(subs ...string) (int, string) {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var kept []string
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, s := range subs {
			if !strings.Contains(g, s) {
				continue next
			}
		}
		n++
		kept = append(kept, g)
	}
	return n, strings.Join(kept, "\n\n")
}

// closeTestPublisherGoroutines counts the goroutines a JetStream client's
// async publishing starts: its reply subscription's delivery goroutine and
// its reconnect listener.
func closeTestPublisherGoroutines() (int, string) {
	a, da := closeTestGoroutines("(*Conn).waitForMsgs")
	b, db := closeTestGoroutines("jetstream.(*jetStream).resetPendingAcksOnReconnect")
	return a + b, da + "\n\n" + db
}

// TestPresenceCloseReleasesItsPublisher: the writer's first PublishAsync
// makes the Presence's JetStream client subscribe for acks and listen for
// reconnects; Close must end both, or every Presence ever opened on a Log
// leaves one subscription and two goroutines on its connection.
func TestPresenceCloseReleasesItsPublisher(t *testing.T) {
	l := openEmbedded(t, Options{})
	flush(t, l)
	baseSubs := l.nc.NumSubscriptions()
	baseG, _ := closeTestPublisherGoroutines()

	for round := range 3 {
		p, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "r" + string(rune('a'+round)), Coalesce: 10 * time.Millisecond})
		if err != nil {
			t.Fatalf("Presence: %v", err)
		}
		p.Enter("room1", "alice")
		// Wait for the writer to put the key (a PublishAsync).
		waitFor(t, 5*time.Second, "the presence key written", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.written["room1"] > 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		cancel()
	}
	flush(t, l)
	// The reply subscription's goroutine and the reconnect listener end
	// on their own once Close released them, nothing waiting for them:
	// on a loaded machine that can take a while. So can those of the
	// connections earlier tests closed, counted in baseG: fewer is fine.
	var (
		subs, g int
		dump    string
	)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		subs = l.nc.NumSubscriptions()
		g, dump = closeTestPublisherGoroutines()
		if (subs == baseSubs && g <= baseG) || time.Now().After(deadline) {
			break
		}
	}
	if subs != baseSubs || g > baseG {
		t.Fatalf("after 3 Presences opened and closed: %d NATS subscriptions (was %d), %d goroutines of JetStream async publishing (was %d): "+
			"Presence.Close left its JetStream client's async-publish reply subscription behind\n%s", subs, baseSubs, g, baseG, dump)
	}
}

// TestPresenceCloseIsBoundedByItsContext: a write round waiting on a bucket
// that does not answer is cut short by Close, which would otherwise wait
// out the round's WriteTimeout before its own ctx had any say.
func TestPresenceCloseIsBoundedByItsContext(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a", WriteTimeout: 5 * time.Second, Coalesce: time.Millisecond})
	ctx := testCtx(t, 30*time.Second)
	silenceBucket(ctx, t, rawJS(t, url), url, p.opts.Bucket)
	p.Enter("room", "alice")
	time.Sleep(200 * time.Millisecond) // the round's put is in flight, unanswered

	closeCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = p.Close(closeCtx) // the deletes cannot be answered either: an error is expected
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close with a 300ms context took %v: it waited for the writer's round", took.Round(time.Millisecond))
	}
}
