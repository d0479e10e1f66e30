package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// openPresence starts a tracker for replica on l and closes it at cleanup.
func openPresence(t *testing.T, l *Log, opts PresenceOptions) *Presence {
	t.Helper()
	p, err := l.Presence(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Presence: %v", err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// presenceSeen records what a watch reports.
type presenceSeen struct {
	calls chan []string
}

func watchPresence(t *testing.T, p *Presence, topic string) *presenceSeen {
	t.Helper()
	s := &presenceSeen{calls: make(chan []string, 1024)}
	w, err := p.Watch(t.Context(), topic, func(m []string) { s.calls <- m })
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	t.Cleanup(w.Close)
	return s
}

// until waits for a report equal to want and returns how long it took;
// it fails the test after within.
func (s *presenceSeen) until(t *testing.T, within time.Duration, want ...string) time.Duration {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	start := time.Now()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	var last []string
	for {
		select {
		case m := <-s.calls:
			last = m
			if slices.Equal(m, want) {
				return time.Since(start)
			}
		case <-deadline.C:
			t.Fatalf("presence never became %q within %s (last %q)", want, within, last)
		}
	}
}

// TestPresenceAcrossReplicas: a watch starts with who is present now, a
// member present through two replicas counts once and stays until it left
// both, a member entered twice stays until it left twice (and leaving more
// does nothing), and a replica that closes takes its members out at once.
func TestPresenceAcrossReplicas(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, la, PresenceOptions{Replica: "a"})
	b := openPresence(t, lb, PresenceOptions{Replica: "b"})

	a.Enter("room1", "carol")
	a.Enter("room2", "dave") // another topic: never in room1's set
	first := watchPresence(t, b, "room1")
	first.until(t, 5*time.Second, "carol")

	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"alice on a", func() { a.Enter("room1", "alice") }, []string{"alice", "carol"}},
		{"alice on b too, once", func() { b.Enter("room1", "alice"); b.Enter("room1", "bob") }, []string{"alice", "bob", "carol"}},
		{"alice leaves a, still on b", func() { a.Leave("room1", "alice"); a.Leave("room1", "carol") }, []string{"alice", "bob"}},
		{"alice leaves b", func() { b.Leave("room1", "alice") }, []string{"bob"}},
		// zed on the same replica: b's key says bob and zed only if bob
		// stayed, whichever writes it went out in.
		{"bob entered twice stays after one leave", func() {
			b.Enter("room1", "bob")
			b.Leave("room1", "bob")
			b.Enter("room1", "zed")
		}, []string{"bob", "zed"}},
		{"bob's second leave", func() { b.Leave("room1", "bob"); b.Leave("room1", "bob") }, []string{"zed"}},
		{"zed leaves", func() { b.Leave("room1", "zed") }, []string{}},
		{"bob back", func() { b.Enter("room1", "bob") }, []string{"bob"}},
	}
	for _, st := range steps {
		st.do()
		first.until(t, 5*time.Second, st.want...)
	}
	// A late watcher on the other replica starts from the same set.
	late := watchPresence(t, a, "room1")
	late.until(t, 5*time.Second, "bob")

	// b's own watches end with its Close; a's sees b's members leave.
	if err := b.Close(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if d := late.until(t, 5*time.Second); d > 2*time.Second {
		t.Errorf("a closed replica's members left after %s; its keys should be deleted at once", d)
	}
}

// TestPresenceKilledReplica: a replica whose NATS connection breaks without
// any clean-up vanishes from another replica's presence within 10 s: its
// liveness key expires (the bucket's limit markers tell the follower),
// and its member keys, still in the bucket, no longer count, for a
// running watch as for a new one. A live replica's members, kept by its
// heartbeats, stay.
func TestPresenceKilledReplica(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, la, PresenceOptions{Replica: "a"})
	b := openPresence(t, lb, PresenceOptions{Replica: "b"})
	a.Enter("room", "alice")
	b.Enter("room", "bob")
	seen := watchPresence(t, b, "room")
	seen.until(t, 5*time.Second, "alice", "bob")

	la.nc.Close() // killed: no deletes, no more heartbeats
	d := seen.until(t, 10*time.Second, "bob")
	t.Logf("a killed replica's members left after %s", d)
	if _, err := b.members.Get(testCtx(t, 5*time.Second), "room.a"); err != nil {
		t.Fatalf("the dead replica's key is gone (%v): the test no longer shows it is ignored", err)
	}
	watchPresence(t, b, "room").until(t, 5*time.Second, "bob")
	// Nothing more changes over another TTL: b's heartbeats keep it alive.
	deadline := time.After(defaultPresenceTTL + time.Second)
	for {
		select {
		case m := <-seen.calls:
			t.Fatalf("presence changed to %q though b is alive", m)
		case <-deadline:
			return
		}
	}
}

// TestPresenceWithoutMarker: a replica whose liveness key never expires
// (as when it expired while the bucket's stream had no leader, so that no
// limit marker was placed) still leaves a follower's set once it has sent
// no heartbeat for TTL plus a heartbeat; the live replica's members stay.
func TestPresenceWithoutMarker(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	const ttl = time.Second
	p := openPresence(t, l, PresenceOptions{Replica: "b", TTL: ttl, Coalesce: 20 * time.Millisecond})
	p.Enter("room", "bob")

	// A ghost replica: one heartbeat that NATS never expires, and a member.
	ctx := testCtx(t, 5*time.Second)
	beat := nats.NewMsg("$KV." + p.opts.Bucket + "_REPLICAS.ghost")
	beat.Header.Set("Nats-TTL", "never")
	beat.Data = []byte("alive")
	if _, err := p.js.PublishMsg(ctx, beat); err != nil {
		t.Fatalf("write the ghost's heartbeat: %v", err)
	}
	if _, err := p.members.Put(ctx, "room.ghost", []byte(`["gus"]`)); err != nil {
		t.Fatalf("write the ghost's members: %v", err)
	}
	seen := watchPresence(t, p, "room")
	seen.until(t, 5*time.Second, "bob", "gus")
	// Without the sweep it never leaves. The wait allows for a loaded
	// machine (under -race, one run took 2.3 s where TTL plus two
	// heartbeats is 1.7 s).
	d := seen.until(t, 6*time.Second, "bob")
	t.Logf("the silent replica's member left after %s (TTL %s, heartbeat %s)", d, ttl, p.opts.Heartbeat)
	if _, err := p.replicas.Get(ctx, "ghost"); err != nil {
		t.Fatalf("the ghost's heartbeat is gone (%v): the test no longer shows a missing marker", err)
	}
}

// TestPresenceWritesNothingWhileNothingChanges: however many members are
// present, a replica writes only its heartbeat while its sets stay the
// same; its member keys are rewritten every KeyTTL/3 only, and outlive
// KeyTTL that way.
func TestPresenceWritesNothingWhileNothingChanges(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	const keyTTL = 3 * time.Second
	p := openPresence(t, l, PresenceOptions{Replica: "a", TTL: time.Second, KeyTTL: keyTTL, Coalesce: 20 * time.Millisecond})
	for i := range 1000 {
		p.Enter(fmt.Sprintf("room%d", i%50), fmt.Sprintf("u%d", i))
	}
	seen := watchPresence(t, p, "room7")
	want := []string{}
	for i := 7; i < 1000; i += 50 {
		want = append(want, fmt.Sprintf("u%d", i))
	}
	slices.Sort(want)
	seen.until(t, 5*time.Second, want...)

	js := rawJS(t, url)
	messages := func() uint64 { return membersLastSeq(t, js, p) }
	// Measure from just after a refresh (every KeyTTL/3 since the start),
	// so that a slow set-up (-race, a loaded machine) cannot put the next
	// one inside the span. A refresh written late (a loaded machine) can
	// still leave less than the span before the next one, on time: at
	// most that refresh's 50 keys, and the span is measured again.
	quiet := keyTTL/3 - 300*time.Millisecond // two heartbeats, no refresh
	var before uint64
	for try := 1; ; try++ {
		start := messages()
		waitFor(t, keyTTL, "a refresh of the member keys", func() bool { return messages() >= start+50 })
		before = messages()
		time.Sleep(quiet) // the span measured, not a synchronization
		after := messages()
		if after == before {
			break
		}
		if after-before > 50 || try == 3 {
			t.Fatalf("%d member keys written in %s while nothing changed", after-before, quiet)
		}
		t.Logf("%d member keys written in %s: the next refresh came early; measuring again", after-before, quiet)
	}
	// Past KeyTTL the keys are there still, rewritten by the refresh.
	time.Sleep(keyTTL + time.Second - quiet)
	if after := messages(); after < before+50 {
		t.Fatalf("%d member keys rewritten over %s; want the 50 refreshed", after-before, keyTTL+time.Second)
	}
	watchPresence(t, p, "room7").until(t, 5*time.Second, want...)
}

// TestPresenceCoalesces: a burst of changes on one replica becomes a
// bounded number of writes of its key, so watchers see a bounded number
// of changes, however many members came and went.
func TestPresenceCoalesces(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 250 * time.Millisecond})
	seen := watchPresence(t, p, "room")
	seen.until(t, 5*time.Second)

	const n = 10000
	want := make([]string, 0, n/2)
	start := time.Now()
	for i := range n {
		m := fmt.Sprintf("u%05d", i)
		p.Enter("room", m)
		if i%2 == 1 {
			p.Leave("room", m)
		} else {
			want = append(want, m)
		}
	}
	burst := time.Since(start)
	var calls int
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-seen.calls:
			calls++
			if !slices.Equal(m, want) {
				continue
			}
			// One write per Coalesce window while the burst lasted, plus one.
			if bound := int(burst/(250*time.Millisecond)) + 2; calls > bound {
				t.Fatalf("%d changes reached the watcher for a burst of %s; want at most %d", calls, burst, bound)
			}
			t.Logf("%d joins and %d leaves in %s reached the watcher as %d changes", n, n/2, burst, calls)
			return
		case <-deadline:
			t.Fatalf("the burst never arrived whole (after %d changes)", calls)
		}
	}
}

// TestPresenceRefusesBadNames: topics and replicas are single key tokens.
func TestPresenceRefusesBadNames(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	for _, bad := range []string{"", "a.b", "a*", "a b", ">"} {
		if _, err := l.Presence(testCtx(t, 5*time.Second), PresenceOptions{Replica: bad}); err == nil || !strings.Contains(err.Error(), "replica") {
			t.Errorf("replica %q: err = %v, want a refusal", bad, err)
		}
	}
	p := openPresence(t, l, PresenceOptions{Replica: "a"})
	if _, err := p.Watch(t.Context(), "a.b", func([]string) {}); err == nil {
		t.Error("a topic with a dot was watched")
	}
	p.Enter("a.b", "alice") // ignored, not written under another topic's key
	seen := watchPresence(t, p, "a")
	seen.until(t, 5*time.Second)
}

// TestPresenceSignals: a signal reaches every watcher of its topic, on
// either replica, and no watcher of another topic; a closed watch gets
// nothing more.
func TestPresenceSignals(t *testing.T) {
	url := startNATS(t, true)
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, la, PresenceOptions{Replica: "a"})
	b := openPresence(t, lb, PresenceOptions{Replica: "b"})
	watch := func(p *Presence, topic string) (chan string, *SignalWatch) {
		got := make(chan string, 8)
		sw, err := p.WatchSignals(topic, func(m string) { got <- m })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(sw.Close)
		return got, sw
	}
	gotA, swA := watch(a, "room")
	gotB, _ := watch(b, "room")
	gotOther, _ := watch(b, "other")
	if err := a.Signal(testCtx(t, 5*time.Second), "room", "alice"); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]chan string{"a": gotA, "b": gotB} {
		select {
		case m := <-got:
			if m != "alice" {
				t.Errorf("%s got %q", name, m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s got no signal", name)
		}
	}
	swA.Close()
	swA.Close()
	if err := b.Signal(testCtx(t, 5*time.Second), "room", "bob"); err != nil {
		t.Fatal(err)
	}
	select { // the fence: a's closed watch would have had it by now
	case m := <-gotB:
		if m != "bob" {
			t.Fatalf("b got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b got no second signal")
	}
	select {
	case m := <-gotA:
		t.Fatalf("a closed watch got %q", m)
	case m := <-gotOther:
		t.Fatalf("another topic's watch got %q", m)
	default:
	}
	if err := a.Signal(testCtx(t, time.Second), "a.b", "x"); err == nil {
		t.Fatal("a signal on a bad topic was sent")
	}
}

// TestPresenceRecreatesALostBucket: the bucket is kept in memory, so a
// NATS server's restart loses it; the writer creates it again on the next
// failed write and writes every key again.
func TestPresenceRecreatesALostBucket(t *testing.T) {
	url := startNATS(t, true)
	l, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	b := openPresence(t, lb, PresenceOptions{Replica: "b", Coalesce: 20 * time.Millisecond})
	p.Enter("room", "alice")
	watchPresence(t, p, "room").until(t, 5*time.Second, "alice")

	for _, bucket := range []string{p.opts.Bucket, p.opts.Bucket + "_REPLICAS"} {
		if err := rawJS(t, url).DeleteKeyValue(testCtx(t, 5*time.Second), bucket); err != nil {
			t.Fatal(err)
		}
	}
	p.Enter("room", "bob") // fails, re-creates the bucket, writes again
	js := rawJS(t, url)
	waitFor(t, 10*time.Second, "the writer to re-create the bucket", func() bool {
		_, err := js.KeyValue(testCtx(t, time.Second), p.opts.Bucket)
		return err == nil
	})
	watchPresence(t, p, "room").until(t, 10*time.Second, "alice", "bob")
	// b follows the new liveness bucket: a's members count for it, and
	// leave it when a dies.
	seen := watchPresence(t, b, "room")
	seen.until(t, 10*time.Second, "alice", "bob")
	l.nc.Close()
	seen.until(t, 15*time.Second)
}

// TestPresenceUnconfirmedPutIsDeleted: a put whose acknowledgement did not
// come within WriteTimeout may have been stored all the same. If its set
// then empties, the key must be deleted, not taken as never written: it
// would keep its members present for as long as this replica lives (the
// bucket's MaxAge, an hour, at best), and Close would not delete it either.
func TestPresenceUnconfirmedPutIsDeleted(t *testing.T) {
	// The test runs the rounds, so it may change their timeout between them.
	p, kv, ctx := presenceWithoutWriter(t)
	const n = 20
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("room%d", i)
		p.Enter(topics[i], "alice")
	}
	// Every acknowledgement wait ends at once: the puts go out and are
	// stored, but the round takes them as failed.
	p.opts.WriteTimeout = time.Nanosecond
	p.write()
	keys := func() []string {
		t.Helper()
		lister, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range lister.Keys() {
			out = append(out, k)
		}
		return out
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(keys()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the puts were not stored: keys %q", keys())
		}
		time.Sleep(5 * time.Millisecond)
	}

	for _, topic := range topics {
		p.Leave(topic, "alice")
	}
	p.opts.WriteTimeout = 2 * time.Second
	p.write()
	if left := keys(); len(left) != 0 {
		t.Fatalf("after every member left, keys %q remain", left)
	}
}

// deleteFails is a members bucket whose deletes fail with err: what a
// delete gets while the bucket's stream elects a leader.
type deleteFails struct {
	jetstream.KeyValue
	err error
}

func (d deleteFails) Delete(context.Context, string, ...jetstream.KVDeleteOpt) error { return d.err }

// TestPresenceDeleteFailedDuringElectionIsRetried: in a cluster, a delete
// made while the bucket's stream elects a leader fails with no responders,
// which looks like a lost bucket, though the bucket and the key are still
// there. After recreate the key must still be deleted at the next round:
// forgotten as never written, it would keep its member present for as
// long as this replica lives (KeyTTL at best), and Close would skip it.
func TestPresenceDeleteFailedDuringElectionIsRetried(t *testing.T) {
	p, kv, ctx := presenceWithoutWriter(t)
	p.Enter("room", "alice")
	p.write()
	if _, err := kv.Get(ctx, "room.a"); err != nil {
		t.Fatalf("the key was not put: %v", err)
	}

	p.Leave("room", "alice")
	p.mu.Lock()
	p.members = deleteFails{p.members, jetstream.ErrNoStreamResponse}
	p.mu.Unlock()
	p.write() // the delete fails; recreate finds the bucket and keeps it
	p.write() // the retry
	if e, err := kv.Get(ctx, "room.a"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("after the retry: key %v, %v; want it deleted", e, err)
	}
}

// presenceWithoutWriter is replica "a"'s Presence over a fresh server with
// its buckets made and nothing started: the test runs its write rounds
// (p.write) itself. kv reads the members bucket past p.
func presenceWithoutWriter(t *testing.T) (p *Presence, kv jetstream.KeyValue, ctx context.Context) {
	t.Helper()
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	ctx = testCtx(t, 10*time.Second)
	opts, err := PresenceOptions{Replica: "a"}.withDefaults(l.opts.Stream)
	if err != nil {
		t.Fatal(err)
	}
	if p, err = newPresence(l, opts); err != nil {
		t.Fatal(err)
	}
	if p.members, p.replicas, err = createPresenceBuckets(ctx, l.js, opts); err != nil {
		t.Fatal(err)
	}
	if kv, err = rawJS(t, url).KeyValue(ctx, opts.Bucket); err != nil {
		t.Fatal(err)
	}
	return p, kv, ctx
}

// watchUnanswered is a bucket whose watches JetStream never answers: the
// consumer-create request of a watch lost to a NATS server restarting, or
// made while a cluster elects the bucket's leader. Like nats.go's request,
// it returns once the context it was given ends.
type watchUnanswered struct{ jetstream.KeyValue }

func (watchUnanswered) Watch(ctx context.Context, _ string, _ ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (watchUnanswered) WatchAll(ctx context.Context, _ ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestPresenceWatchSetUpIsBounded: a watch outlives the context it is set
// up under (the follower's; a subscription's, which has no deadline), but
// its set-up must not: unanswered, it held the liveness follower for ever,
// and with it Presence.Close (and so a replica's stop), or a roomPresence
// subscription's resolver.
func TestPresenceWatchSetUpIsBounded(t *testing.T) {
	const writeTimeout = 200 * time.Millisecond
	tests := []struct {
		name string
		run  func(t *testing.T, p *Presence) error
	}{
		{"Close while the follower watches the replicas anew", func(t *testing.T, p *Presence) error {
			p.mu.Lock()
			p.replicas = watchUnanswered{p.replicas}
			p.mu.Unlock()
			wake(p.rewatch)              // as recreate does
			time.Sleep(2 * writeTimeout) // past a Heartbeat: the follower is watching anew
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			return p.Close(ctx)
		}},
		{"Watch with a context without deadline", func(t *testing.T, p *Presence) error {
			p.mu.Lock()
			p.members = watchUnanswered{p.members}
			p.mu.Unlock()
			w, err := p.Watch(context.Background(), "room", func([]string) {})
			if err == nil {
				w.Close()
				t.Error("Watch of a bucket that never answers: no error")
			} else if !strings.Contains(err.Error(), "watch the presence of room") {
				t.Errorf("Watch = %v; want it to say what it was doing", err)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATS(t, true)
			l := openLog(t, Options{URLs: []string{url}})
			p, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "a", TTL: time.Second,
				Heartbeat: 100 * time.Millisecond, WriteTimeout: writeTimeout})
			if err != nil {
				t.Fatalf("Presence: %v", err)
			}
			t.Cleanup(func() { // not for ever: Close is what may hang
				closed := make(chan struct{})
				go func() { _ = p.Close(context.Background()); close(closed) }()
				select {
				case <-closed:
				case <-time.After(5 * time.Second):
				}
			})
			done := make(chan error, 1)
			go func() { done <- tt.run(t, p) }()
			select {
			case err := <-done:
				if err != nil {
					t.Logf("returned: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still waiting after 5s for a watch JetStream never answers")
			}
		})
	}
}

// TestPresenceWatchOutlivesALostBucket: a watch started before the
// buckets were lost (a NATS server restarting loses them: they are in
// memory) and re-created goes on reporting, on this replica and on
// another.
func TestPresenceWatchOutlivesALostBucket(t *testing.T) {
	for _, watcher := range []string{"same replica", "other replica"} {
		t.Run(watcher, func(t *testing.T) {
			url := startNATS(t, true)
			la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
			opts := PresenceOptions{TTL: time.Second, Coalesce: 20 * time.Millisecond}
			opts.Replica = "a"
			a := openPresence(t, la, opts)
			opts.Replica = "b"
			b := openPresence(t, lb, opts)
			w := a
			if watcher == "other replica" {
				w = b
			}
			a.Enter("room", "alice")
			seen := watchPresence(t, w, "room")
			seen.until(t, 5*time.Second, "alice")

			for _, bucket := range []string{a.opts.Bucket, a.opts.Bucket + "_REPLICAS"} {
				if err := rawJS(t, url).DeleteKeyValue(testCtx(t, 5*time.Second), bucket); err != nil {
					t.Fatal(err)
				}
			}
			a.Enter("room", "bob")
			seen.until(t, 10*time.Second, "alice", "bob")
			a.Leave("room", "alice")
			seen.until(t, 5*time.Second, "bob")
		})
	}
}

// TestPresenceWatchStartsPromptlyOnACluster: a fresh watch, on any node
// of a 3-node cluster, reports the members present at once. A follow's
// first pull request could be answered "no responders" by a node not yet
// aware of its consumer, and went unanswered for two heartbeats (see
// TestFollowStartsPromptlyOnACluster); a key-value watch is a push
// consumer, whose deliveries wait for the watcher's interest, so it should
// not share that race. 450 watches measured 2–14 ms at most; one took
// 1.07 s once, in a CI run loaded with other test processes: such a race
// costs a watch heartbeats, seconds, so a watch is slow from 2 s on.
func TestPresenceWatchStartsPromptlyOnACluster(t *testing.T) {
	t.Parallel()
	var trackers []*Presence
	for i, l := range logOnEachNode(t, startNATSCluster(t, 3)) {
		trackers = append(trackers, openPresence(t, l, PresenceOptions{Replica: fmt.Sprintf("r%d", i), Replicas: 3}))
	}
	trackers[0].Enter("room1", "alice")
	watchPresence(t, trackers[1], "room1").until(t, 10*time.Second, "alice")

	const watches = 450
	var slow []time.Duration
	for n := range watches {
		start := time.Now()
		seen := make(chan []string, 4)
		w, err := trackers[n%3].Watch(testCtx(t, 10*time.Second), "room1", func(m []string) { seen <- m })
		if err != nil {
			t.Fatalf("watch %d from node %d: %v", n, n%3, err)
		}
		select {
		case m := <-seen:
			if !slices.Equal(m, []string{"alice"}) {
				t.Fatalf("watch %d from node %d first reported %q, want [alice]", n, n%3, m)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("watch %d from node %d reported nothing in 5s", n, n%3)
		}
		if took := time.Since(start); took >= 2*time.Second {
			slow = append(slow, took)
		}
		w.Close()
	}
	if len(slow) > 0 {
		t.Errorf("%d of %d watches took 2s or more to report the members present: %v", len(slow), watches, slow)
	}
}
