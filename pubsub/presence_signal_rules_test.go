package pubsub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// newLagProxy is a natsProxy that holds everything a client sends for lag
// before the server gets it, as on a slow uplink: a client that does not
// wait for the server's answer runs ahead of what the server knows.
func newLagProxy(t *testing.T, natsURL string, lag time.Duration) *natsProxy {
	t.Helper()
	return newNATSProxy(t, natsURL, func() { time.Sleep(lag) }, nil)
}

// TestPresenceSignalWatchReadyOnReturn: WatchSignals returns only once
// the NATS server knows of the watch: a signal sent through another
// connection right after it returns always arrives, even when the
// replica's own link to NATS is slower than the sender's.
func TestPresenceSignalWatchReadyOnReturn(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{newLagProxy(t, url, 50*time.Millisecond).url()}})
	p := openPresence(t, l, PresenceOptions{Replica: "a"})
	other, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	for i := range 5 {
		topic := fmt.Sprintf("room%d", i)
		got := make(chan string, 1)
		sw, err := p.WatchSignals(topic, func(m string) {
			select {
			case got <- m:
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Publish(signalPrefix+topic, []byte("alice")); err != nil {
			t.Fatal(err)
		}
		if err := other.FlushTimeout(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("watch %d: a signal sent right after WatchSignals returned never arrived", i)
		}
		sw.Close()
	}
}

// TestPresenceSignalConfirmedByServer: Signal returns nil only once the
// NATS server has the signal, within ctx: while the server's answers do
// not come through, it fails when ctx ends rather than return nil for a
// signal still in the client's buffer; once they do, it succeeds.
func TestPresenceSignalConfirmedByServer(t *testing.T) {
	url := startNATS(t, true)
	proxy := newHoldProxy(t, url)
	l := openLog(t, Options{URLs: []string{proxy.url()}})
	p := openPresence(t, l, PresenceOptions{Replica: "a"})
	proxy.hold()
	err := p.Signal(testCtx(t, time.Second), "room", "alice")
	proxy.release()
	if err == nil {
		t.Fatal("Signal returned nil though the server's answer never came: it must wait for it within ctx")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Signal with the server's answers held: %v, want its ctx's deadline", err)
	}
	if err := p.Signal(testCtx(t, 5*time.Second), "room", "alice"); err != nil {
		t.Fatalf("Signal: %v", err)
	}
}

// TestPresenceSignalRefusesLongMember: Signal refuses a member over 4096
// bytes (as Enter ignores one) and sends one of 4096.
func TestPresenceSignalRefusesLongMember(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a"})
	got := make(chan string, 4)
	sw, err := p.WatchSignals("room", func(m string) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Close)
	if err := p.Signal(testCtx(t, 5*time.Second), "room", strings.Repeat("n", 4097)); err == nil {
		t.Error("Signal sent a member of 4097 bytes; want it refused")
	}
	fits := strings.Repeat("m", 4096)
	if err := p.Signal(testCtx(t, 5*time.Second), "room", fits); err != nil {
		t.Fatalf("Signal with a member of 4096 bytes: %v", err)
	}
	select {
	case m := <-got:
		if m != fits {
			t.Fatalf("the first signal watched has a member of %d bytes; want the one of 4096 only", len(m))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no signal")
	}
}
