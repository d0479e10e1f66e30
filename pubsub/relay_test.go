package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestRelay: two replicas on one NATS server; a request sent from either
// reaches the listener of its key, with headers and body both ways, while
// requests for a key no one listens for fail at once with ErrNoListener.
func TestRelay(t *testing.T) {
	url := startNATS(t, true)
	a, b := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	ra, rb := a.Relay(), b.Relay()
	t.Cleanup(ra.Close)
	t.Cleanup(rb.Close)

	stop, err := ra.Listen("tok1", func(_ context.Context, h http.Header, body []byte) (http.Header, []byte) {
		out := http.Header{}
		out.Set("Echo-Method", h.Get("Method"))
		return out, append([]byte("got "), body...)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []*Relay{ra, rb} {
		h, body, err := from.Send(testCtx(t, 5*time.Second), "tok1", http.Header{"Method": {"POST"}}, []byte("hello"))
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		if h.Get("Echo-Method") != "POST" || string(body) != "got hello" {
			t.Fatalf("answer %v %q", h, body)
		}
	}
	stop()
	stop() // idempotent
	start := time.Now()
	if _, _, err := rb.Send(testCtx(t, 5*time.Second), "tok1", nil, nil); !errors.Is(err, ErrNoListener) {
		t.Fatalf("after stop: %v, want ErrNoListener", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("no listener took %s to be told", d)
	}
	big := make([]byte, 2<<20) // over NATS's default max_payload
	if _, _, err := rb.Send(testCtx(t, 5*time.Second), "tok1", nil, big); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("a message over max_payload: %v, want nats.ErrMaxPayload", err)
	}
	for _, bad := range []string{"", "a.b", "a*", ">"} {
		if _, err := ra.Listen(bad, nil); err == nil {
			t.Errorf("Listen(%q) accepted a key that is no subject token", bad)
		}
	}
}

// TestRelayServesConcurrently: a request that takes long to serve holds
// up neither other keys' requests nor its own key's, and Close waits for
// it.
func TestRelayServesConcurrently(t *testing.T) {
	l := openEmbedded(t, Options{})
	r := l.Relay()
	release := make(chan struct{})
	var served sync.WaitGroup
	served.Add(1)
	blocked := func(ctx context.Context, _ http.Header, _ []byte) (http.Header, []byte) {
		defer served.Done()
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, []byte("late")
	}
	quick := func(context.Context, http.Header, []byte) (http.Header, []byte) { return nil, []byte("quick") }
	if _, err := r.Listen("slow", blocked); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Listen("fast", quick); err != nil {
		t.Fatal(err)
	}
	slowDone := make(chan error, 1)
	go func() {
		_, _, err := r.Send(testCtx(t, 10*time.Second), "slow", nil, nil)
		slowDone <- err
	}()
	if _, body, err := r.Send(testCtx(t, 5*time.Second), "fast", nil, nil); err != nil || string(body) != "quick" {
		t.Fatalf("while another request is being served: %q %v", body, err)
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatalf("the slow request: %v", err)
	}
	served.Wait()
	r.Close()
	if _, err := r.Listen("after", quick); err == nil {
		t.Fatal("Listen after Close succeeded")
	}
}

// TestRelayCloseStopsListening: once a relay is closed, a request for a
// key it listened for fails at once with ErrNoListener, rather than wait
// out its deadline for an answer nobody will send.
func TestRelayCloseStopsListening(t *testing.T) {
	url := startNATS(t, true)
	a, b := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	ra, rb := a.Relay(), b.Relay()
	t.Cleanup(rb.Close)
	if _, err := ra.Listen("tok1", func(context.Context, http.Header, []byte) (http.Header, []byte) { return nil, []byte("ok") }); err != nil {
		t.Fatal(err)
	}
	if _, body, err := rb.Send(testCtx(t, 5*time.Second), "tok1", nil, nil); err != nil || string(body) != "ok" {
		t.Fatalf("before Close: %q, %v", body, err)
	}
	ra.Close()
	start := time.Now()
	if _, _, err := rb.Send(testCtx(t, 3*time.Second), "tok1", nil, nil); !errors.Is(err, ErrNoListener) {
		t.Fatalf("after Close: %v, want ErrNoListener", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("no listener took %s to be told", d)
	}
	if _, err := ra.Listen("tok2", nil); err == nil {
		t.Error("Listen on a closed relay succeeded")
	}
}

// TestRelayRefusesASecondListener: a key has at most one listener per
// relay. A second Listen for a key already listened for is refused, and
// the first listener keeps serving; once it stops, the key may be listened
// for again.
func TestRelayRefusesASecondListener(t *testing.T) {
	l := openEmbedded(t, Options{})
	r := l.Relay()
	t.Cleanup(r.Close)
	answer := func(s string) RelayHandler {
		return func(context.Context, http.Header, []byte) (http.Header, []byte) { return nil, []byte(s) }
	}
	stop1, err := r.Listen("tok", answer("first"))
	if err != nil {
		t.Fatal(err)
	}
	if stop2, err := r.Listen("tok", answer("second")); err == nil {
		stop2()
		t.Fatal("a second Listen for a key already listened for succeeded")
	}
	if _, body, err := r.Send(testCtx(t, 5*time.Second), "tok", nil, nil); err != nil || string(body) != "first" {
		t.Fatalf("after the refused Listen: %q, %v; want the first listener's answer", body, err)
	}
	stop1()
	stop3, err := r.Listen("tok", answer("third"))
	if err != nil {
		t.Fatalf("Listen after the first listener stopped: %v", err)
	}
	defer stop3()
	if _, body, err := r.Send(testCtx(t, 5*time.Second), "tok", nil, nil); err != nil || string(body) != "third" {
		t.Fatalf("the new listener: %q, %v", body, err)
	}
}

// TestRelaySendWithoutDeadlineIsBounded: a Send whose context has no
// deadline, to a key whose subscriber never answers, ends with
// context.DeadlineExceeded instead of waiting for ever.
func TestRelaySendWithoutDeadlineIsBounded(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	r := l.Relay()
	t.Cleanup(r.Close)
	r.sendTimeout = 200 * time.Millisecond
	// A bare subscription on the key's subject takes the request and never
	// answers, as a listener whose answer is lost would.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync(relayPrefix + "silent")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	done := make(chan error, 1)
	go func() {
		_, _, err := r.Send(context.Background(), "silent", nil, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Send without a deadline did not end")
	}
}

// TestRelayAnswerTooLarge: a listener's answer larger than NATS carries
// fails the sender at once, saying so, rather than when its deadline ends;
// and it is not mistaken for a request too large.
func TestRelayAnswerTooLarge(t *testing.T) {
	url := startNATS(t, true)
	a, b := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	ra, rb := a.Relay(), b.Relay()
	t.Cleanup(ra.Close)
	t.Cleanup(rb.Close)
	tests := []struct {
		name   string
		header http.Header
		body   int
	}{
		{"body", nil, 2 << 20},
		{"header and body", http.Header{"Big": {strings.Repeat("h", 1<<19)}}, 1 << 19},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("big%d", i)
			stop, err := ra.Listen(key, func(context.Context, http.Header, []byte) (http.Header, []byte) {
				return tt.header, make([]byte, tt.body)
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(stop)
			start := time.Now()
			_, _, err = rb.Send(testCtx(t, 10*time.Second), key, nil, []byte("x"))
			if !errors.Is(err, ErrAnswerTooLarge) || errors.Is(err, nats.ErrMaxPayload) {
				t.Errorf("Send = %v, want ErrAnswerTooLarge (and not nats.ErrMaxPayload)", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Send took %s to fail, want at once", d)
			}
		})
	}
}

// TestRelayErrorsDoNotCarryTheKey: a key may be a credential (an event
// stream's token), so errors name it by a short hash, the same for the
// same key, never by the key itself.
func TestRelayErrorsDoNotCarryTheKey(t *testing.T) {
	l := openEmbedded(t, Options{})
	r := l.Relay()
	t.Cleanup(r.Close)
	const key = "secretStreamToken123"
	stop, err := r.Listen(key, func(context.Context, http.Header, []byte) (http.Header, []byte) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	_, second := r.Listen(key, nil)
	stop()
	_, _, unheard := r.Send(testCtx(t, 5*time.Second), key, nil, nil)
	for _, err := range []error{second, unheard} {
		if err == nil {
			t.Fatal("want an error")
		}
		if strings.Contains(err.Error(), key) {
			t.Errorf("error carries the key: %v", err)
		}
		if !strings.Contains(err.Error(), keyRef(key)) {
			t.Errorf("error %q does not name the key by %s", err, keyRef(key))
		}
	}
}
