package pubsub

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// openPresenceEach opens n replicas of presence on l, r0 to r(n-1), and
// has each enter one member of its own on topic, u0 to u(n-1); it returns
// them and the whole set, once a watch shows it.
func openPresenceEach(t *testing.T, l *Log, n int, topic string) ([]*Presence, []string) {
	t.Helper()
	var ps []*Presence
	var want []string
	for i := range n {
		p := openPresence(t, l, PresenceOptions{Replica: fmt.Sprintf("r%d", i), Coalesce: 20 * time.Millisecond})
		p.Enter(topic, fmt.Sprintf("u%d", i))
		want = append(want, fmt.Sprintf("u%d", i))
		ps = append(ps, p)
	}
	watchPresence(t, ps[0], topic).until(t, 5*time.Second, want...)
	return ps, want
}

// membersLastSeq is the last sequence of p's members bucket: how many
// writes (puts and deletes) it took.
func membersLastSeq(t *testing.T, js jetstream.JetStream, p *Presence) uint64 {
	t.Helper()
	s, err := js.Stream(testCtx(t, 5*time.Second), "KV_"+p.opts.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// firstReport waits for seen's first report.
func (s *presenceSeen) firstReport(t *testing.T, within time.Duration) []string {
	t.Helper()
	select {
	case first := <-s.calls:
		return first
	case <-time.After(within):
		t.Fatal("no first report")
		return nil
	}
}

// TestPresenceFirstReportIsWhole: a watch's first report is the whole set
// present now, across every replica's key, never a part of it while the
// initial values are still coming in (which would show members joining
// who were there all along).
func TestPresenceFirstReportIsWhole(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	ps, want := openPresenceEach(t, l, 5, "room")
	for range 3 {
		if first := watchPresence(t, ps[4], "room").firstReport(t, 5*time.Second); !slices.Equal(first, want) {
			t.Fatalf("first report %q, want the whole set %q", first, want)
		}
	}
}

// TestPresenceFirstReportIsWholeDuringChurn: a change of the replicas
// alive while a watch is still reading its initial values does not make
// it report before they are all in: its first report is still the whole
// set (a replica coming and going elsewhere wakes every watch).
func TestPresenceFirstReportIsWholeDuringChurn(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	ps, want := openPresenceEach(t, l, 4, "room")
	w := ps[0]
	ctx, cancel := context.WithCancel(t.Context())
	churned := make(chan struct{})
	go func() { // a ghost replica flapping: every flap wakes every watch
		defer close(churned)
		for i := 0; ctx.Err() == nil; i++ {
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			if i%2 == 0 {
				_, _ = w.replicas.Put(cctx, "ghost", []byte("alive"))
			} else {
				_ = w.replicas.Delete(cctx, "ghost")
			}
			ccancel()
		}
	}()
	defer func() { cancel(); <-churned }()
	for i := range 40 {
		if first := watchPresence(t, w, "room").firstReport(t, 5*time.Second); !slices.Equal(first, want) {
			t.Fatalf("watch %d: first report %q, want the whole set %q: a watch reported before its initial values were in", i, first, want)
		}
	}
}

// TestPresenceNoReportWithoutChange: a watch reports only changes of its
// set: a replica starting or stopping with nobody on the topic, or a member
// already present entering through another replica too, reports nothing.
func TestPresenceNoReportWithoutChange(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	a := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	b := openPresence(t, l, PresenceOptions{Replica: "b", Coalesce: 20 * time.Millisecond})
	a.Enter("room", "alice")
	seen := watchPresence(t, a, "room")
	seen.until(t, 5*time.Second, "alice")
	c, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "c"}) // the replicas alive change
	if err != nil {
		t.Fatal(err)
	}
	b.Enter("room", "alice") // b's key is written; the set is the same
	time.Sleep(500 * time.Millisecond)
	if err := c.Close(testCtx(t, 5*time.Second)); err != nil { // and again
		t.Fatal(err)
	}
	select {
	case m := <-seen.calls:
		t.Fatalf("reported %q though the set stayed [alice]: a watch reports changes only", m)
	case <-time.After(time.Second):
	}
}

// TestPresenceLeaveForgetsEmptyTopics: a topic whose last member left
// costs nothing once its keys are deleted: Presence keeps no entry for it
// (its memory would otherwise grow with every room ever visited).
func TestPresenceLeaveForgetsEmptyTopics(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	for i := range 200 {
		topic := fmt.Sprintf("room%d", i)
		p.Enter(topic, "alice")
		p.Enter(topic, "alice")
		p.Leave(topic, "alice")
		p.Leave(topic, "alice")
		p.Leave(topic, "alice") // one more than entered: nothing
	}
	waitFor(t, 10*time.Second, "the writer's round", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.dirty) == 0 && len(p.written) == 0
	})
	p.mu.Lock()
	n := len(p.local)
	p.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d topics kept after every member left them; want none", n)
	}
}

// TestPresenceEnterRefusesLongMember: Enter ignores a member over 4096
// bytes (as documented: it might not fit a key), and takes one of 4096;
// the topic's other members are written either way.
func TestPresenceEnterRefusesLongMember(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	fits, over := strings.Repeat("m", 4096), strings.Repeat("n", 4097)
	p.Enter("room", "alice")
	p.Enter("room", over)
	p.Enter("room", fits)
	want := []string{"alice", fits}
	seen := watchPresence(t, p, "room")
	seen.until(t, 5*time.Second, want...)
	time.Sleep(300 * time.Millisecond)
	select {
	case m := <-seen.calls:
		t.Fatalf("set became %d members after settling at %d; a member over 4096 bytes must be ignored", len(m), len(want))
	default:
	}
}

// TestPresenceEnterLeaveWithinWindowWritesNothing: a member who enters
// and leaves within one Coalesce window costs no write: the topic's key
// was never written, so there is nothing to delete either.
func TestPresenceEnterLeaveWithinWindowWritesNothing(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 3 * time.Second})
	js := rawJS(t, url)
	p.Enter("warm", "x") // a write now: the next waits for the window's end
	waitFor(t, 5*time.Second, "the first write", func() bool { return membersLastSeq(t, js, p) >= 1 })
	before := membersLastSeq(t, js, p)
	p.Enter("room", "alice")
	p.Leave("room", "alice")
	time.Sleep(3500 * time.Millisecond) // past the window's end
	if after := membersLastSeq(t, js, p); after != before {
		t.Fatalf("%d writes to the members bucket for a member who came and went within one window; want none", after-before)
	}
}

// TestPresenceCoalescesSpreadChanges: changes of a topic spread over time
// (a member every 10 ms for 1.5 s) are written at most once per Coalesce
// window, not once per change: the bucket takes about one write per
// 250 ms, however often the set changes.
func TestPresenceCoalescesSpreadChanges(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	const window = 250 * time.Millisecond
	p := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: window})
	js := rawJS(t, url)
	before := membersLastSeq(t, js, p)
	start := time.Now()
	for i := range 150 {
		p.Enter("room", fmt.Sprintf("u%03d", i))
		time.Sleep(10 * time.Millisecond)
	}
	spread := time.Since(start)
	time.Sleep(2 * window) // the last window's write
	if writes, bound := membersLastSeq(t, js, p)-before, uint64(spread/window)+3; writes > bound {
		t.Fatalf("%d writes of one topic's key for 150 changes over %s; want at most %d, one per %s window", writes, spread, bound, window)
	}
}

// TestPresenceRewatchJitterBounded: the delay before a watch watches anew
// is under half a Heartbeat, and never a second or more, whatever the
// Heartbeat (maxRewatchSpread): a long Heartbeat must not delay every
// watch's recovery after an outage by up to half of it.
func TestPresenceRewatchJitterBounded(t *testing.T) {
	for _, hb := range []time.Duration{0, 100 * time.Millisecond, 2 * time.Second, 10 * time.Second, time.Minute} {
		p := &Presence{opts: PresenceOptions{Heartbeat: hb}}
		bound := min(hb/2, maxRewatchSpread)
		for range 2000 {
			d := p.rewatchJitter()
			if d < 0 || (bound > 0 && d >= bound) || (bound <= 0 && d != 0) {
				t.Fatalf("Heartbeat %s: rewatch delay %s, want in [0, %s)", hb, d, bound)
			}
		}
	}
}
