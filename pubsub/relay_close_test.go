package pubsub

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestRelayCloseAnswersRequestsOfAStoppedListener shows that requests on
// their way to a listener stopped just before Close are answered: stop
// drains its subscription, and requests the server routed here before it
// processed the unsubscription still arrive. Close flushed only when it
// still had subscriptions, so one landing in the relay's queue after
// Close's last look was never answered, and its sender waited out its
// deadline (20 s by default): about 10 in 700 requests over 30 rounds.
func TestRelayCloseAnswersRequestsOfAStoppedListener(t *testing.T) {
	url := startNATS(t, true)
	sender, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sender.Close)
	var replies atomic.Int64
	inbox := sender.NewInbox()
	if _, err := sender.Subscribe(inbox, func(*nats.Msg) { replies.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := sender.Flush(); err != nil {
		t.Fatal(err)
	}
	ok := func(context.Context, http.Header, []byte) (http.Header, []byte) { return nil, []byte("ok") }

	stuck := 0
	var sent int64
	for round := 0; round < 30 && stuck == 0; round++ {
		l := openLog(t, Options{URLs: []string{url}})
		r := l.Relay()
		stop, err := r.Listen("tok", ok)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		done := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := sender.PublishRequest(relayPrefix+"tok", inbox, nil); err == nil {
					atomic.AddInt64(&sent, 1)
				}
				time.Sleep(10 * time.Microsecond)
			}
		}()
		time.Sleep(20 * time.Millisecond)
		stop()
		r.Close()
		time.Sleep(50 * time.Millisecond)
		close(done)
		wg.Wait()
		stuck = len(r.in)
	}
	if err := sender.Flush(); err != nil {
		t.Fatal(err)
	}
	// An unanswered request is never answered, so waiting long costs
	// nothing when all is well and catches it all the same: under -race on
	// a loaded machine, the answers to some 30,000 requests took over 3 s.
	deadline := time.Now().Add(15 * time.Second)
	for replies.Load() < atomic.LoadInt64(&sent) && stuck == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	t.Logf("sent %d requests, %d answered (by the listener, 'no listener', or NATS's no responders)", sent, replies.Load())
	if stuck > 0 || replies.Load() < atomic.LoadInt64(&sent) {
		t.Errorf("%d requests left in a closed relay's queue, never answered (%d of %d requests unanswered)",
			stuck, atomic.LoadInt64(&sent)-replies.Load(), sent)
	}
}
