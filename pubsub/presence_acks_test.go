package pubsub

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPresenceAbandonedPutsAreReleased: Presence.write sends its puts
// with PublishAsync and gives up on those whose acknowledgement has not come
// within WriteTimeout (awaitPresenceAcks), retrying them at the next round.
// Puts go unanswered whenever the bucket's stream leader received them and
// never answers: a leader that lost its quorum or died mid-proposal, or one
// behind a silent network partition while its route still counts as up.
// Here a plain subscriber that never answers stands for it: interest
// exists, so NATS does not answer "no responders", and nothing acknowledges.
//
// The Log's JetStream client, which the puts went through, kept every
// future given up on pending for good (only a reconnect cleared it). Once
// 4000 (nats.go's default PublishAsyncMaxPending) were stuck, every later
// PublishAsync stalled 200 ms and failed with ErrTooManyStalledMsgs: the
// replica wrote no presence any more, though NATS and the bucket were
// healthy again. Presence's own client lets a put go after WriteTimeout,
// and once the bucket answers again the next round stores the key.
func TestPresenceAbandonedPutsAreReleased(t *testing.T) {
	p, kv, ctx := presenceWithoutWriter(t)
	url := p.nc.ConnectedUrl()

	// The bucket's stream stops answering: it is gone, and a silent
	// subscriber keeps interest on its subjects.
	js := rawJS(t, url)
	unsilence := silenceBucket(ctx, t, js, url, p.opts.Bucket)

	const topics = 4000
	for i := range topics {
		p.Enter(fmt.Sprintf("t%d", i), "alice")
	}
	p.opts.WriteTimeout = 300 * time.Millisecond
	p.write() // every put goes unanswered; the round gives up on all
	// The client lets them go WriteTimeout (the default 2s) after each put;
	// the puts of the round went out over a while, longer on a loaded
	// machine, so the wait allows for that: a put never let go stays
	// pending however long one waits.
	const letGo = 10 * time.Second
	for deadline := time.Now().Add(letGo); p.js.PublishAsyncPending() != 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := p.js.PublishAsyncPending(); n != 0 {
		t.Errorf("%s after the round gave up on its puts, %d are still pending in the JetStream client, want 0", letGo, n)
	}

	// The bucket answers again.
	if _, _, err := createPresenceBuckets(ctx, js, p.opts); err != nil {
		t.Fatal(err)
	}
	unsilence()
	// The members leave (deleting their keys), and one enters elsewhere.
	for i := range topics {
		p.Leave(fmt.Sprintf("t%d", i), "alice")
	}
	p.opts.WriteTimeout = 20 * time.Second
	p.write()
	p.Enter("room", "bob")
	p.opts.WriteTimeout = 2 * time.Second
	for round := 0; round < 3; round++ {
		p.write()
		if _, err := kv.Get(ctx, "room.a"); err == nil {
			return
		}
	}
	t.Fatalf("with the bucket healthy again, 3 rounds did not store room.a: %d puts given up on still pending (PublishAsync refuses more)",
		p.js.PublishAsyncPending())
}

// silenceBucket deletes the key-value bucket and keeps interest on its
// subjects with a subscriber that never answers: the bucket's puts and
// deletes go unanswered (as with a leader that lost its quorum) rather
// than failing with no responders. The function returned ends the silence,
// once the test has created the bucket again.
func silenceBucket(ctx context.Context, t *testing.T, js jetstream.JetStream, url, bucket string) (unsilence func()) {
	t.Helper()
	if err := js.DeleteKeyValue(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	silent, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(silent.Close)
	sub, err := silent.Subscribe("$KV."+bucket+".>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := silent.Flush(); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := sub.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
		if err := silent.Flush(); err != nil {
			t.Fatal(err)
		}
	}
}
