package pubsub

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// noLost asserts lv has no Lost signal pending and nothing to take.
func noLost(t *testing.T, lv *Live) {
	t.Helper()
	select {
	case <-lv.Lost():
		t.Error("unexpected Lost signal")
	default:
	}
	if all, keys := lv.TakeLost(); all || keys != nil {
		t.Errorf("TakeLost = %v, %v; want false, nil", all, keys)
	}
}

func newLive(t *testing.T, l *Log, opts LiveOptions, keys ...string) *Live {
	t.Helper()
	lv := l.NewLive(opts)
	t.Cleanup(lv.Close)
	for _, k := range keys {
		if err := lv.Add(k); err != nil {
			t.Fatalf("Add(%q): %v", k, err)
		}
	}
	return lv
}

func TestLiveDelivers(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	lv := newLive(t, l, LiveOptions{}, keyA, keyOther)
	if n := lv.Subscriptions(); n != 2 {
		t.Errorf("Subscriptions() = %d, want 2", n)
	}

	// keySameAsA is hot but not added: its entries, republished before a's
	// in the same partition, would arrive first if they arrived at all.
	publishBulk(t, l, "herald-p0."+keySameAsA+".msg", 200)
	resA := mustAppendKeyed(t, l, keyA, "posts", "to a", AppendOptions{})
	resO := mustAppendKeyed(t, l, keyOther, "msg.m_1", "to other", AppendOptions{})
	got := recvLive(t, lv, 2, 5*time.Second)
	slices.SortFunc(got, func(x, y Entry) int { return strings.Compare(x.Key, y.Key) })
	stored := func(key string) Entry {
		es, _ := mustReadKey(t, l, key, 0)
		return es[len(es)-1]
	}
	wants := []struct {
		res  AppendResult
		want Entry
	}{
		{resA, Entry{Subject: "herald-p0.a.posts", Key: keyA, Rest: "posts", Partition: 0, Data: []byte("to a")}},
		{resO, Entry{Subject: "herald-p1.general.msg.m_1", Key: keyOther, Rest: "msg.m_1", Partition: 1, Data: []byte("to other")}},
	}
	for i, w := range wants {
		e := got[i]
		if e.Seq != w.res.Seq || e.Subject != w.want.Subject || e.Key != w.want.Key || e.Rest != w.want.Rest ||
			e.Partition != w.want.Partition || string(e.Data) != string(w.want.Data) {
			t.Errorf("live entry = %+v, want %+v with seq %d", e, w.want, w.res.Seq)
		}
		if s := stored(e.Key); !e.Time.Equal(s.Time) {
			t.Errorf("live entry time %v, stored time %v", e.Time, s.Time)
		}
	}

	lastA := resA.Seq
	t.Run("add errors", func(t *testing.T) {
		for key, want := range map[string]string{
			keyA:  `live: add key "a": already added`,
			"A.b": `invalid key "A.b"`,
		} {
			if err := lv.Add(key); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Add(%q) = %v, want %q", key, err, want)
			}
		}
	})

	t.Run("remove stops them", func(t *testing.T) {
		lv.Remove(keyA)
		lv.Remove(keyA) // no-op
		lv.Remove("never_added")
		if n := lv.Subscriptions(); n != 1 {
			t.Errorf("Subscriptions() = %d, want 1", n)
		}
		flush(t, l)
		lastA = mustAppendKeyed(t, l, keyA, "posts", "unheard", AppendOptions{ExpectLast: lastA}).Seq
		marker := mustAppendKeyed(t, l, keyOther, "posts", "marker", AppendOptions{ExpectLast: resO.Seq})
		if e := recvLive(t, lv, 1, 5*time.Second)[0]; e.Key != keyOther || e.Seq != marker.Seq {
			t.Errorf("after Remove got %+v, want only the marker of %s", e, keyOther)
		}
	})

	t.Run("add again", func(t *testing.T) {
		if err := lv.Add(keyA); err != nil {
			t.Fatal(err)
		}
		res := mustAppendKeyed(t, l, keyA, "posts", "heard again", AppendOptions{ExpectLast: lastA})
		if e := recvLive(t, lv, 1, 5*time.Second)[0]; e.Key != keyA || e.Seq != res.Seq {
			t.Errorf("after re-Add got %+v, want %s seq %d", e, keyA, res.Seq)
		}
	})
	noLost(t, lv)

	t.Run("close", func(t *testing.T) {
		lv.Close()
		lv.Close()
		select {
		case e, ok := <-lv.Entries():
			if ok {
				t.Errorf("Entries after Close delivered %+v", e)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Entries not closed after Close")
		}
		if err := lv.Add("z"); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Errorf("Add after Close = %v, want closed", err)
		}
		if n := lv.Subscriptions(); n != 0 {
			t.Errorf("Subscriptions() after Close = %d", n)
		}
	})
}

func TestLiveLostOnReconnect(t *testing.T) {
	embedded := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0"})
	external := openLog(t, Options{URLs: []string{embedded.ClientURL()}})
	lv := newLive(t, external, LiveOptions{}, keyA)
	flush(t, external)

	res := mustAppendKeyed(t, embedded, keyA, "posts", "before", AppendOptions{})
	if e := recvLive(t, lv, 1, 5*time.Second)[0]; e.Seq != res.Seq {
		t.Fatalf("live entry %+v, want seq %d", e, res.Seq)
	}
	noLost(t, lv)

	if err := external.nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	if all, keys := waitLost(t, lv, 10*time.Second); !all || keys != nil {
		t.Errorf("TakeLost after reconnect = %v, %v; want true, nil", all, keys)
	}
	noLost(t, lv)

	// The subscription came back with the connection.
	waitFor(t, 10*time.Second, "reconnect", external.Connected)
	flush(t, external)
	res = mustAppendKeyed(t, embedded, keyA, "posts", "after", AppendOptions{ExpectLast: res.Seq})
	if e := recvLive(t, lv, 1, 5*time.Second)[0]; e.Seq != res.Seq || string(e.Data) != "after" {
		t.Fatalf("live entry after reconnect %+v, want seq %d", e, res.Seq)
	}
}

// TestLiveLostOnSlowConsumer overflows a small buffer: the key is reported,
// also for drops nats.go does not announce (the same slow-consumer episode
// going on after TakeLost), and a key that did not overflow is not.
func TestLiveLostOnSlowConsumer(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	lv := newLive(t, l, LiveOptions{Buffer: 4}, keyA, keyOther)
	mustAppendKeyed(t, l, keyOther, "posts", "calm", AppendOptions{})
	if e := recvLive(t, lv, 1, 5*time.Second)[0]; e.Key != keyOther {
		t.Fatalf("got %+v, want the entry of %s", e, keyOther)
	}

	// Nobody reads Entries now.
	publishBulk(t, l, "herald-p0."+keyA+".msg", 50)
	if all, keys := waitLost(t, lv, 5*time.Second); all || !slices.Equal(keys, []string{keyA}) {
		t.Fatalf("TakeLost after overflow = %v, %v; want false, [%s]", all, keys, keyA)
	}
	// Still nobody reads: these drops belong to the episode nats.go has
	// already announced.
	publishBulk(t, l, "herald-p0."+keyA+".msg_more", 20)
	if all, keys := waitLost(t, lv, 5*time.Second); all || !slices.Equal(keys, []string{keyA}) {
		t.Fatalf("TakeLost after more drops = %v, %v; want false, [%s]", all, keys, keyA)
	}

	// Drain what was queued: every message the subscription delivered.
	lv.mu.Lock()
	sub := lv.keys[keyA].sub
	lv.mu.Unlock()
	delivered, err := sub.Delivered()
	if err != nil {
		t.Fatal(err)
	}
	dropped, _ := sub.Dropped()
	t.Logf("%d delivered, %d dropped", delivered, dropped)
	if dropped == 0 || delivered+int64(dropped) != 70 {
		t.Errorf("delivered %d + dropped %d, want 70 with some dropped", delivered, dropped)
	}
	queued := recvLive(t, lv, int(delivered), 5*time.Second)
	if !slices.IsSortedFunc(queued, func(x, y Entry) int { return int(x.Seq) - int(y.Seq) }) {
		t.Errorf("queued entries out of order: %v", seqs(queued))
	}

	// A delivery ends the episode; then nothing more is lost.
	res := mustAppendKeyed(t, l, keyA, "posts", "caught up", AppendOptions{ExpectLast: 70})
	if e := recvLive(t, lv, 1, 5*time.Second)[0]; e.Seq != res.Seq {
		t.Errorf("got %+v, want seq %d", e, res.Seq)
	}
	waitFor(t, 5*time.Second, "the suspect to be cleared", func() bool {
		lv.mu.Lock()
		defer lv.mu.Unlock()
		return len(lv.suspects) == 0
	})
	noLost(t, lv)
}

func TestLiveMalformed(t *testing.T) {
	l := openEmbedded(t, Options{})
	lv := newLive(t, l, LiveOptions{}, keyA)
	good := func() nats.Header {
		return nats.Header{
			"Nats-Subject":    []string{"herald-p0.a.posts"},
			"Nats-Sequence":   []string{"7"},
			"Nats-Time-Stamp": []string{time.Now().UTC().Format(time.RFC3339Nano)},
		}
	}
	bad := []struct {
		name   string
		change func(nats.Header)
	}{
		{"no headers", func(h nats.Header) { clear(h) }},
		{"bad sequence", func(h nats.Header) { h["Nats-Sequence"] = []string{"x"} }},
		{"zero sequence", func(h nats.Header) { h["Nats-Sequence"] = []string{"0"} }},
		{"bad time", func(h nats.Header) { h["Nats-Time-Stamp"] = []string{"yesterday"} }},
		{"other key", func(h nats.Header) { h["Nats-Subject"] = []string{"herald-p0.b.posts"} }},
		{"no rest", func(h nats.Header) { h["Nats-Subject"] = []string{"herald-p0.a"} }},
		{"not a partition subject", func(h nats.Header) { h["Nats-Subject"] = []string{"herald.room.a.posts"} }},
	}
	for _, b := range bad {
		h := good()
		b.change(h)
		if err := l.nc.PublishMsg(&nats.Msg{Subject: "herald-live.p0.a.posts", Header: h, Data: []byte(b.name)}); err != nil {
			t.Fatal(err)
		}
	}
	res := mustAppendKeyed(t, l, keyA, "posts", "real", AppendOptions{})
	if e := recvLive(t, lv, 1, 5*time.Second)[0]; e.Seq != res.Seq || string(e.Data) != "real" {
		t.Errorf("got %+v, want only the real entry (seq %d)", e, res.Seq)
	}
}

func TestLiveClosedWithLog(t *testing.T) {
	l, err := Open(testCtx(t, 10*time.Second), Options{DataDir: t.TempDir(), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	lv := l.NewLive(LiveOptions{Buffer: 8})
	if err := lv.Add(keyA); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-lv.Entries():
		if ok {
			t.Error("Entries delivered after the Log closed")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Entries not closed after the Log closed")
	}
	lv.Close() // still fine

	late := l.NewLive(LiveOptions{})
	if err := late.Add(keyA); err == nil {
		t.Error("Add on a Live of a closed Log succeeded")
	}
	if _, ok := <-late.Entries(); ok {
		t.Error("Entries of a Live of a closed Log delivered")
	}
}

// TestLiveHandle hands entries to LiveOptions.Handle on the Live's own
// goroutine, in order: Entries carries nothing, Close waits for a Handle
// that is running, and a Handle that falls behind loses entries to Lost as
// a slow reader of Entries would.
func TestLiveHandle(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	got := make(chan Entry, 100)
	release := make(chan struct{})
	blocking := make(chan struct{}, 1)
	var block atomic.Bool
	lv := newLive(t, l, LiveOptions{Buffer: 4, Handle: func(e Entry) {
		if block.Load() {
			select {
			case blocking <- struct{}{}:
			default:
			}
			<-release
		}
		got <- e
	}}, keyA, keyOther)

	var want []uint64
	for i := range 3 {
		want = append(want, mustAppendKeyed(t, l, keyA, "posts", "m", AppendOptions{ExpectLast: uint64(i)}).Seq)
	}
	for i, seq := range want {
		select {
		case e := <-got:
			if e.Key != keyA || e.Seq != seq || string(e.Data) != "m" {
				t.Errorf("entry %d handled = %+v, want %s seq %d", i, e, keyA, seq)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("Handle got %d of %d entries", i, len(want))
		}
	}
	select {
	case e := <-lv.Entries():
		t.Errorf("Entries carried %+v with Handle set", e)
	default:
	}
	noLost(t, lv)

	// A Handle that blocks: entries past the buffer are lost, and reported.
	block.Store(true)
	mustAppendKeyed(t, l, keyOther, "posts", "first", AppendOptions{})
	select {
	case <-blocking:
	case <-time.After(5 * time.Second):
		t.Fatal("Handle was not called")
	}
	publishBulk(t, l, "herald-p0."+keyA+".msg", 50)
	if all, keys := waitLost(t, lv, 5*time.Second); all || !slices.Equal(keys, []string{keyA}) {
		t.Fatalf("TakeLost behind a blocked Handle = %v, %v; want false, [%s]", all, keys, keyA)
	}

	// Close waits for the Handle that is running.
	closed := make(chan struct{})
	go func() {
		lv.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while Handle was running")
	case <-time.After(100 * time.Millisecond):
	}
	block.Store(false)
	close(release)
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return once Handle did")
	}
	if _, ok := <-lv.Entries(); ok {
		t.Error("Entries open after Close")
	}
}
