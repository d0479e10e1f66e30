package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/pubsub"
)

// TestResumeOnLaggingReplicaHoldsOnlyNewResults: a subscriber resumes
// on replica b from a cursor b's room has not applied yet (the posts came
// through replica a, and b's live feed lags). The replay has nothing after
// the cursor; the live results b's room applies up to the cursor (reach's
// re-read) are ones the cursor covers and must be dropped, not held: more
// of them than the hold limit must not close the socket as a slow consumer.
func TestResumeOnLaggingReplicaHoldsOnlyNewResults(t *testing.T) {
	const limit = 4
	tweak := func(o *Options) { o.QueueMessages = limit }
	a := newReplicaOver(t, pubsub.Options{ListenAddr: "127.0.0.1:0"}, chat.Options{}, tweak, nil)
	proxy := newNATSProxy(t, a.log.ClientURL())
	b := newReplicaOver(t, pubsub.Options{URLs: []string{proxy.url()}, Partitions: a.log.Partitions()}, chat.Options{}, tweak, nil)

	room := a.room("lagging")
	a.post(room, "poster", "m0")
	plain := b.dialTransport("plain")
	plain.subscribe("subscribe", "p", postedSub, map[string]any{"r": room})
	waitFor(t, "the plain subscription on b", func() bool { return b.members() == 1 })
	a.post(room, "poster", "warm")
	if got := readEvents(t, plain, "p", 1); got[0].text != "warm" {
		t.Fatalf("plain got %q, want warm", got[0].text)
	}
	time.Sleep(1500 * time.Millisecond) // past the check after b's load

	proxy.holdSubjects("herald-live.")
	var last chat.Message
	const behind = 3 * limit
	for i := range behind {
		last = a.post(room, "poster", fmt.Sprintf("behind %d", i))
	}
	cursor := graphCursor(t, a, last)

	resumer := b.dialTransport("resumer")
	resumer.subscribe("subscribe", "r", postedSub, map[string]any{"r": room, "after": cursor})
	readEvents(t, plain, "p", behind) // b's room reached the cursor (reach's re-read)
	proxy.releaseSubjects()
	a.post(room, "poster", "after")
	got, err := collectEvents(resumer, "r", 1)
	if err != nil {
		t.Fatalf("resumed at the newest cursor on a lagging replica, it got %v, not the next post: %v", got, err)
	}
	if got[0].text != "after" {
		t.Fatalf("resumed subscriber got %q, want %q (nothing at or before its cursor)", got[0].text, "after")
	}
}

// TestHandoffDropsLiveResultsBeforeTheReplayWrites: live results that
// reach a handoff before its replay has written anything (on a replica
// behind the cursor, those up to the cursor) do not make the subscriber a
// slow consumer, however many: the replay writes everything after the
// cursor itself, and hands over at the first live result it reaches.
func TestHandoffDropsLiveResultsBeforeTheReplayWrites(t *testing.T) {
	const limit = 3
	f := newResumed(t, limit)
	r, ctx, sub, replay, shared, op := f.r, f.ctx, f.sub, f.replay, f.shared, f.op
	for pos := uint64(1); pos <= 3*limit; pos++ { // at or before the cursor, 3*limit
		r.deliver(shared, op, &payload{pos: pos})
	}
	if _, slow := sub.got(); slow != 0 {
		t.Fatalf("too slow after %d live results, none of which the replay had to hand over", 3*limit)
	}
	r.deliver(shared, op, &payload{pos: 3*limit + 1}) // the first one after the cursor
	r.deliver(replay, op, &payload{pos: 3*limit + 1})
	r.catchUp(replay, ctx)
	r.deliver(shared, op, &payload{pos: 3*limit + 2})
	if written, slow := sub.got(); slow != 0 || !slices.Equal(written, []uint64{3*limit + 1, 3*limit + 2}) {
		t.Fatalf("written %v (too slow %d times), want [%d %d]", written, slow, 3*limit+1, 3*limit+2)
	}
	if !replay.retired.Load() {
		t.Fatal("the replay is not retired once it reached the live stream")
	}
}

// TestHandoffFullOfCoveredResultsAsTheReplayReachesThem: on a replica
// behind the cursor, the handoff holds as many live results as its limit,
// the oldest at or before the cursor (TestHandoffDropsLiveResultsBeforeTheReplayWrites).
// The replay writes its first result, which reaches the held ones
// (catching up), and the live execution's goroutine delivers the next live
// result before the replay's goroutine has come to catchUp (it does so only
// once it has let go of its execution's lock). The results the replay has
// covered are no reason to call the subscriber slow: catchUp is about to
// drop them.
func TestHandoffFullOfCoveredResultsAsTheReplayReachesThem(t *testing.T) {
	const limit = 3
	const cursor = 3 * limit
	f := newResumed(t, limit)
	r, ctx, sub, replay, shared, op := f.r, f.ctx, f.sub, f.replay, f.shared, f.op
	for pos := uint64(1); pos <= cursor; pos++ { // at or before the cursor: the replica catching up
		r.deliver(shared, op, &payload{pos: pos})
	}
	r.deliver(shared, op, &payload{pos: cursor + 1}) // the first after the cursor, held (the oldest dropped)
	r.deliver(replay, op, &payload{pos: cursor + 1}) // the replay's first result: it reaches the held ones
	r.deliver(shared, op, &payload{pos: cursor + 2}) // live, before the replay's goroutine calls catchUp
	if _, slow := sub.got(); slow != 0 {
		t.Fatalf("too slow (%d) when live result %d came as the replay reached the held results: %d of the %d held were at or before what the replay had written (catchUp drops them)",
			slow, cursor+2, limit, limit)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-sub.waiting:
			sub.release <- struct{}{}
		case <-ctx.Done():
		}
	}()
	r.catchUp(replay, ctx)
	f.cancel()
	<-done
	if written, slow := sub.got(); slow != 0 || !slices.Equal(written, []uint64{cursor + 1, cursor + 2}) {
		t.Fatalf("written %v (too slow %d times), want [%d %d]", written, slow, cursor+1, cursor+2)
	}
	if !replay.retired.Load() {
		t.Fatal("the replay is not retired once the held results were written")
	}
}
