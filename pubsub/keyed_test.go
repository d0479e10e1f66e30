package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Keys used with Partitions: 2. FNV-1a puts "a" and "room_1" in partition 0
// and "general" in partition 1 (TestPartitionOf pins the hash).
const (
	keyA       = "a"
	keySameAsA = "room_1"
	keyOther   = "general"
)

func openTwoPartitions(t *testing.T, opts Options) *Log {
	t.Helper()
	opts.Partitions = 2
	l := openEmbedded(t, opts)
	if l.PartitionOf(keyA) != 0 || l.PartitionOf(keySameAsA) != 0 || l.PartitionOf(keyOther) != 1 {
		t.Fatalf("partitions of %s, %s, %s = %d, %d, %d; want 0, 0, 1", keyA, keySameAsA, keyOther,
			l.PartitionOf(keyA), l.PartitionOf(keySameAsA), l.PartitionOf(keyOther))
	}
	return l
}

// consumersOf is the number of consumers on partition k's stream.
func consumersOf(t *testing.T, l *Log, k int) int {
	t.Helper()
	info, err := l.parts[k].Info(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	return info.State.Consumers
}

func TestAppendKeyedExpectLast(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	steps := []struct {
		name     string
		key      string
		rest     string
		expect   uint64
		wantSeq  uint64 // when no conflict
		wantLast uint64 // ConflictError.Last when a conflict is expected
		conflict bool
	}{
		{name: "first entry of a", key: keyA, rest: "posts", expect: 0, wantSeq: 1},
		{name: "another key of the same partition is independent", key: keySameAsA, rest: "posts", expect: 0, wantSeq: 2},
		{name: "a again, other subject, expecting its last", key: keyA, rest: "msg.m1", expect: 1, wantSeq: 3},
		{name: "stale expectation", key: keyA, rest: "posts", expect: 1, conflict: true, wantLast: 3},
		{name: "expecting no entries", key: keyA, rest: "posts", expect: 0, conflict: true, wantLast: 3},
		{name: "expecting the partition's last, another key's", key: keyA, rest: "posts", expect: 2, conflict: true, wantLast: 3},
		{name: "the other key moves on meanwhile", key: keySameAsA, rest: "msg.x_1", expect: 2, wantSeq: 4},
		{name: "a with the right expectation", key: keyA, rest: "posts", expect: 3, wantSeq: 5},
		{name: "other partition has its own sequences", key: keyOther, rest: "posts", expect: 0, wantSeq: 1},
		{name: "other partition, stale", key: keyOther, rest: "posts", expect: 0, conflict: true, wantLast: 1},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := l.AppendKeyed(testCtx(t, 5*time.Second), st.key, st.rest, []byte(st.name), AppendOptions{ExpectLast: st.expect})
			if !st.conflict {
				if err != nil || res.Seq != st.wantSeq || res.Duplicate {
					t.Fatalf("AppendKeyed = %+v, %v; want seq %d", res, err, st.wantSeq)
				}
				return
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, ErrConflict) {
				t.Fatalf("AppendKeyed = %+v, %v; want a *ConflictError wrapping ErrConflict", res, err)
			}
			if ce.Key != st.key || ce.Expected != st.expect || ce.Last != st.wantLast {
				t.Errorf("ConflictError = %+v, want Key %s Expected %d Last %d", ce, st.key, st.expect, st.wantLast)
			}
			want := fmt.Sprintf("append to key %q: conflict: expected its last sequence to be %d, but it is %d", st.key, st.expect, st.wantLast)
			if err.Error() != want {
				t.Errorf("error text = %q, want %q", err, want)
			}
		})
	}
	got, _ := mustReadKey(t, l, keyA, 0)
	if s := seqs(got); !slices.Equal(s, []uint64{1, 3, 5}) {
		t.Errorf("entries of %s = %v, want [1 3 5] (conflicts store nothing)", keyA, s)
	}
}

// TestAppendKeyedDedup pins how de-duplication and the expected-sequence
// check interact on a single server: the check comes first.
func TestAppendKeyedDedup(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	first := mustAppendKeyed(t, l, keyA, "posts", "one", AppendOptions{DedupID: "id-1"})
	if first.Seq != 1 || first.Duplicate {
		t.Fatalf("first append = %+v, want seq 1, not duplicate", first)
	}
	steps := []struct {
		name     string
		key      string
		o        AppendOptions
		conflict bool
		wantSeq  uint64
		wantDup  bool
	}{
		{name: "retry with the stale expectation conflicts", key: keyA, o: AppendOptions{DedupID: "id-1", ExpectLast: 0}, conflict: true},
		{name: "retry expecting the key's last is a duplicate", key: keyA, o: AppendOptions{DedupID: "id-1", ExpectLast: 1}, wantSeq: 1, wantDup: true},
		{name: "same id on another key of the partition is a duplicate of a's entry", key: keySameAsA, o: AppendOptions{DedupID: "id-1"}, wantSeq: 1, wantDup: true},
		{name: "same id in another partition is stored", key: keyOther, o: AppendOptions{DedupID: "id-1"}, wantSeq: 1},
		{name: "new id is stored", key: keyA, o: AppendOptions{DedupID: "id-2", ExpectLast: 1}, wantSeq: 2},
		{name: "no id is stored", key: keyA, o: AppendOptions{ExpectLast: 2}, wantSeq: 3},
		{name: "no id again is stored again", key: keyA, o: AppendOptions{ExpectLast: 3}, wantSeq: 4},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			res, err := l.AppendKeyed(testCtx(t, 5*time.Second), st.key, "posts", []byte("again"), st.o)
			if st.conflict {
				var ce *ConflictError
				if !errors.As(err, &ce) || ce.Last != 1 {
					t.Fatalf("AppendKeyed = %+v, %v; want a conflict with Last 1", res, err)
				}
				return
			}
			if err != nil || res.Seq != st.wantSeq || res.Duplicate != st.wantDup {
				t.Fatalf("AppendKeyed = %+v, %v; want {Seq:%d Duplicate:%v}", res, err, st.wantSeq, st.wantDup)
			}
		})
	}
}

func TestAppendKeyedInvalid(t *testing.T) {
	l := openEmbedded(t, Options{})
	tests := []struct {
		key, rest, want string
	}{
		{"", "posts", `invalid key ""`},
		{"Room", "posts", `invalid key "Room"`},
		{"a.b", "posts", `invalid key "a.b"`},
		{"a>", "posts", `invalid key "a>"`},
		{"a", "", `append to key "a": invalid rest ""`},
		{"a", "msg..x", `invalid rest "msg..x"`},
		{"a", "msg.", `invalid rest "msg."`},
		{"a", ".msg", `invalid rest ".msg"`},
		{"a", "msg.*", `invalid rest "msg.*"`},
		{"a", "Posts", `invalid rest "Posts"`},
		{"a", "posts.>", `invalid rest "posts.>"`},
	}
	for _, tt := range tests {
		t.Run(tt.key+"/"+tt.rest, func(t *testing.T) {
			_, err := l.AppendKeyed(testCtx(t, 5*time.Second), tt.key, tt.rest, []byte("x"), AppendOptions{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("AppendKeyed(%q, %q) = %v, want error containing %q", tt.key, tt.rest, err, tt.want)
			}
		})
	}
	if got, _ := mustReadKey(t, l, "a", 0); len(got) != 0 {
		t.Errorf("refused appends stored %d entries", len(got))
	}
}

func TestReadKey(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	type in struct{ key, rest, data string }
	ins := []in{
		{keyA, "posts", "a1"},
		{keySameAsA, "posts", "r1"},
		{keyA, "msg.m1", "a2"},
		{keyOther, "posts", "g1"},
		{keyA, "posts", "a3"},
		{keySameAsA, "msg.m_2", "r2"},
	}
	last := map[string]uint64{}
	seqOf := map[string]uint64{} // data -> seq
	for _, e := range ins {
		res := mustAppendKeyed(t, l, e.key, e.rest, e.data, AppendOptions{ExpectLast: last[e.key]})
		last[e.key] = res.Seq
		seqOf[e.data] = res.Seq
	}

	tests := []struct {
		name     string
		key      string
		from     uint64
		want     []string // data, in order
		wantLast uint64
	}{
		{name: "key without entries", key: "nobody", want: nil, wantLast: 0},
		{name: "all of a from 0", key: keyA, from: 0, want: []string{"a1", "a2", "a3"}, wantLast: seqOf["a3"]},
		{name: "all of a from 1", key: keyA, from: 1, want: []string{"a1", "a2", "a3"}, wantLast: seqOf["a3"]},
		{name: "a from the middle", key: keyA, from: seqOf["a2"], want: []string{"a2", "a3"}, wantLast: seqOf["a3"]},
		{name: "a from between its entries", key: keyA, from: seqOf["a2"] + 1, want: []string{"a3"}, wantLast: seqOf["a3"]},
		{name: "a beyond its last", key: keyA, from: seqOf["a3"] + 1, want: nil, wantLast: 0},
		{name: "only the other key of the partition", key: keySameAsA, want: []string{"r1", "r2"}, wantLast: seqOf["r2"]},
		{name: "other partition", key: keyOther, want: []string{"g1"}, wantLast: seqOf["g1"]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			got, gotLast := mustReadKey(t, l, tt.key, tt.from)
			took := time.Since(start)
			t.Logf("ReadKey took %s", took)
			if len(tt.want) == 0 && took > time.Second {
				t.Errorf("ReadKey with nothing to read took %s, want prompt", took)
			}
			if d := datas(got); !slices.Equal(d, tt.want) && (len(d) > 0 || len(tt.want) > 0) {
				t.Errorf("entries = %v, want %v", d, tt.want)
			}
			if gotLast != tt.wantLast {
				t.Errorf("last = %d, want %d", gotLast, tt.wantLast)
			}
			for _, e := range got {
				k := l.PartitionOf(tt.key)
				if e.Key != tt.key || e.Partition != k || e.Seq != seqOf[string(e.Data)] ||
					e.Subject != fmt.Sprintf("herald-p%d.%s.%s", k, tt.key, e.Rest) || time.Since(e.Time) > time.Minute {
					t.Errorf("entry = %+v, want key %s partition %d seq %d", e, tt.key, k, seqOf[string(e.Data)])
				}
			}
		})
	}
	if got, _ := mustReadKey(t, l, keyA, 0); got[1].Rest != "msg.m1" || got[0].Rest != "posts" {
		t.Errorf("rests = %q, %q; want posts, msg.m1", got[0].Rest, got[1].Rest)
	}

	t.Run("handler error", func(t *testing.T) {
		var seen []string
		gotLast, err := l.ReadKey(testCtx(t, 5*time.Second), keyA, 0, func(e Entry) error {
			if string(e.Data) == "a2" {
				return errStop
			}
			seen = append(seen, string(e.Data))
			return nil
		})
		if !errors.Is(err, errStop) || !strings.Contains(err.Error(), fmt.Sprintf("handle seq %d", seqOf["a2"])) {
			t.Errorf("ReadKey = %v, want errStop wrapped with seq %d", err, seqOf["a2"])
		}
		if gotLast != seqOf["a1"] || !slices.Equal(seen, []string{"a1"}) {
			t.Errorf("last = %d, seen %v; want %d, [a1]", gotLast, seen, seqOf["a1"])
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		if _, err := l.ReadKey(testCtx(t, 5*time.Second), "A", 0, func(Entry) error { return nil }); err == nil || !strings.Contains(err.Error(), `invalid key "A"`) {
			t.Errorf("ReadKey(A) = %v, want invalid key", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := l.ReadKey(ctx, keyA, 0, func(Entry) error { return nil }); err == nil {
			t.Error("ReadKey with a cancelled ctx = nil")
		}
	})
	for k := range 2 {
		if n := consumersOf(t, l, k); n != 0 {
			t.Errorf("partition %d has %d consumers after the reads, want 0", k, n)
		}
	}
}

func TestReadKeyAfterRetention(t *testing.T) {
	l := openTwoPartitions(t, Options{MaxMsgsPerSubject: 2})
	appendChain(t, l, keyA, "posts", 0, "p1", "p2", "p3", "p4", "p5") // seqs 1-5; 1-3 discarded
	mustAppendKeyed(t, l, keySameAsA, "posts", "other", AppendOptions{})
	mustAppendKeyed(t, l, keyA, "msg.m1", "m1", AppendOptions{ExpectLast: 5}) // seq 7

	for _, from := range []uint64{0, 1, 3, 4} {
		got, last := mustReadKey(t, l, keyA, from)
		if d := datas(got); !slices.Equal(d, []string{"p4", "p5", "m1"}) || last != 7 {
			t.Errorf("ReadKey from %d = %v (last %d), want [p4 p5 m1] (last 7)", from, d, last)
		}
	}
	// The key's last over all subjects is still what ExpectLast compares.
	mustAppendKeyed(t, l, keyA, "posts", "p6", AppendOptions{ExpectLast: 7})
}

// TestReadKeyLarge loads a key of 10,000 entries among another key's, and
// logs how long it takes.
func TestReadKeyLarge(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	const n = 10000
	publishBulk(t, l, "herald-p0."+keySameAsA+".msg", 500)
	publishBulk(t, l, "herald-p0."+keyA+".msg", n)
	publishBulk(t, l, "herald-p0."+keySameAsA+".msg", 500)

	for run := range 3 {
		start := time.Now()
		var count int
		var prev uint64
		last, err := l.ReadKey(testCtx(t, 20*time.Second), keyA, 0, func(e Entry) error {
			if e.Key != keyA || e.Seq <= prev {
				return fmt.Errorf("entry %+v after seq %d", e, prev)
			}
			prev = e.Seq
			count++
			return nil
		})
		took := time.Since(start)
		t.Logf("run %d: ReadKey of %d entries took %s (%.0f entries/s)", run, count, took, float64(count)/took.Seconds())
		if err != nil || count != n || last != 500+n {
			t.Fatalf("ReadKey = last %d, %v after %d entries; want last %d after %d", last, err, count, 500+n, n)
		}
		if took > 5*time.Second {
			t.Errorf("ReadKey of %d entries took %s", n, took)
		}
	}
	if c := consumersOf(t, l, 0); c != 0 {
		t.Errorf("%d consumers left after the reads, want 0", c)
	}
}

func TestWrongLastSeq(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		last      uint64
		lastKnown bool
		ok        bool
	}{
		{"with the last sequence", fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: 10071, Description: "wrong last sequence: 42"}), 42, true, true},
		{"last sequence 0", &jetstream.APIError{ErrorCode: 10071, Description: "wrong last sequence: 0"}, 0, true, true},
		{"clustered, in flight", fmt.Errorf("nats: %w", &jetstream.APIError{Code: 400, ErrorCode: 10164, Description: "wrong last sequence"}), 0, false, true},
		{"unexpected description", &jetstream.APIError{ErrorCode: 10071, Description: "wrong last sequence"}, 0, false, true},
		{"other API error", &jetstream.APIError{ErrorCode: 10158, Description: "duplicate message id is in process"}, 0, false, false},
		{"not an API error", errors.New("wrong last sequence: 3"), 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last, lastKnown, ok := wrongLastSeq(tt.err)
			if last != tt.last || lastKnown != tt.lastKnown || ok != tt.ok {
				t.Errorf("wrongLastSeq = %d, %v, %v; want %d, %v, %v", last, lastKnown, ok, tt.last, tt.lastKnown, tt.ok)
			}
		})
	}
	ce := &ConflictError{Key: "a", Expected: 3}
	if want := `append to key "a": conflict: expected its last sequence to be 3, but another write to the key was in flight`; ce.Error() != want {
		t.Errorf("Error() = %q, want %q", ce.Error(), want)
	}
	if !errors.Is(ce, ErrConflict) {
		t.Error("ConflictError does not wrap ErrConflict")
	}
}

// TestRestLastSeq: the last entry of a partition whose rest matches, over
// every key, whatever other rests follow it; 0 when none matches, also in
// a stream an operator allowed direct gets on (whose request subjects
// cannot carry the wildcard).
func TestRestLastSeq(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	ctx := testCtx(t, 10*time.Second)
	a := appendChain(t, l, keyA, "member.u1", 0, "a joins")                // p0 seq 1
	b := appendChain(t, l, keySameAsA, "member.u2", 0, "b joins")          // p0 seq 2
	appendChain(t, l, keyA, "posts", a[0].Seq, "a post", "another a post") // p0 seq 3, 4
	appendChain(t, l, keySameAsA, "msg.m1", b[0].Seq, "b edit")            // p0 seq 5
	appendChain(t, l, keyOther, "posts", 0, "only posts in the other one") // p1 seq 1
	check := func(what string) {
		t.Helper()
		for _, tc := range []struct {
			k    int
			rest string
			want uint64
		}{
			{0, "member.>", b[0].Seq},
			{0, "posts", 4},
			{0, "msg.>", 5},
			{0, "nothing.>", 0},
			{1, "member.>", 0},
			{1, "posts", 1},
		} {
			got, err := l.RestLastSeq(ctx, tc.k, tc.rest)
			if err != nil || got != tc.want {
				t.Errorf("%s: RestLastSeq(%d, %q) = %d, %v; want %d", what, tc.k, tc.rest, got, err, tc.want)
			}
		}
	}
	check("plain")
	for k := range 2 {
		cfg := l.parts[k].CachedInfo().Config
		cfg.AllowDirect = true
		if _, err := l.js.UpdateStream(ctx, cfg); err != nil {
			t.Fatalf("allow direct gets: %v", err)
		}
	}
	check("direct gets allowed")
	if _, err := l.RestLastSeq(ctx, 2, "member.>"); err == nil {
		t.Error("RestLastSeq of a partition that does not exist: no error")
	}
}

// TestRestFilterInvalid: FollowRest and RestLastSeq refuse, before asking
// NATS, a rest that is not tokens of a-z, 0-9 and _ optionally followed by
// the wildcard ">", and take those that are.
func TestRestFilterInvalid(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	const want = "invalid rest filter"
	tests := []struct {
		rest string
		ok   bool
	}{
		{"member.>", true},
		{"posts", true},
		{"msg.m1", true},
		{">", true},
		{strings.Repeat("r", maxTokenBytes-2) + ".>", true},
		{"", false},
		{".>", false},
		{"member.", false},
		{".member", false},
		{"member..>", false},
		{"member.*", false},
		{"*", false},
		{"member.>.x", false},
		{"member>", false},
		{"Member.>", false},
		{"member x", false},
		{strings.Repeat("r", maxTokenBytes-1) + ".>", false},
	}
	for _, tt := range tests {
		t.Run(tt.rest, func(t *testing.T) {
			if err := checkRestFilter(tt.rest); (err == nil) != tt.ok {
				t.Fatalf("checkRestFilter(%q) = %v, want ok %v", tt.rest, err, tt.ok)
			}
			if tt.ok {
				if _, err := l.RestLastSeq(testCtx(t, 5*time.Second), 0, tt.rest); err != nil {
					t.Errorf("RestLastSeq(0, %q) = %v", tt.rest, err)
				}
				return
			}
			_, err := l.RestLastSeq(testCtx(t, 5*time.Second), 0, tt.rest)
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "partition 0") {
				t.Errorf("RestLastSeq(0, %q) = %v, want an error saying %q of partition 0", tt.rest, err, want)
			}
			err = l.FollowRest(testCtx(t, 5*time.Second), 1, tt.rest, 0, func(Entry) error {
				t.Error("an entry delivered for a refused rest")
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "follow partition 1") {
				t.Errorf("FollowRest(1, %q) = %v, want an error saying %q of partition 1", tt.rest, err, want)
			}
		})
	}
}

// TestReadKeyEndedContextSaysWhat: a read cut short by its context says
// what it was reading, and still wraps the context's error.
func TestReadKeyEndedContextSaysWhat(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	appendChain(t, l, keyA, "posts", 0, "one", "two")
	for _, tc := range []struct {
		name string
		ctx  func() context.Context
		want error
	}{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
		{"past its deadline", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.ReadKey(tc.ctx(), keyA, 0, func(Entry) error { return nil })
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), l.lay.keyFilter(0, keyA)) {
				t.Fatalf("ReadKey = %v; want an error naming %s and wrapping %v", err, l.lay.keyFilter(0, keyA), tc.want)
			}
		})
	}
}

// inFlightJS answers every publish as a clustered stream answers an add
// of a key while another add of it is being proposed.
type inFlightJS struct{ jetstream.JetStream }

func (inFlightJS) Publish(context.Context, string, []byte, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return nil, &jetstream.APIError{ErrorCode: jsErrCodeWrongLastSeqConstant, Code: 400,
		Description: "wrong last sequence"}
}

// TestAddToDirectoryRetriesAreBounded: AddToDirectory with a ctx that has
// no deadline gives up on "another add in flight" after its default bound,
// as documented, rather than asking again for ever.
func TestAddToDirectoryRetriesAreBounded(t *testing.T) {
	l := openEmbedded(t, Options{})
	l.js = inFlightJS{l.js}
	l.addTimeout = 300 * time.Millisecond
	done := make(chan error, 1)
	go func() {
		_, err := l.AddToDirectory(context.Background(), "room", []byte("{}"))
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `add key "room" to the directory`) {
			t.Fatalf("err = %v, want the add named and context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AddToDirectory without a deadline was still retrying after 10s")
	}
}

// KeyLastSeq is the sequence of a key's last entry over all its subjects,
// whatever other keys of its partition stored after it, and 0 for a key
// without entries; an invalid key is refused.
func TestKeyLastSeq(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	ctx := testCtx(t, 10*time.Second)
	a1 := mustAppendKeyed(t, l, keyA, "posts", "a1", AppendOptions{})
	a2 := mustAppendKeyed(t, l, keyA, "msg.m1", "a2", AppendOptions{ExpectLast: a1.Seq})
	mustAppendKeyed(t, l, keySameAsA, "posts", "r1", AppendOptions{})
	for _, tt := range []struct {
		key  string
		want uint64
	}{{keyA, a2.Seq}, {keyOther, 0}, {"nobody", 0}} {
		got, err := l.KeyLastSeq(ctx, tt.key)
		if err != nil || got != tt.want {
			t.Errorf("KeyLastSeq(%q) = %d, %v; want %d", tt.key, got, err, tt.want)
		}
	}
	if _, err := l.KeyLastSeq(ctx, "not a key"); err == nil {
		t.Error("KeyLastSeq of an invalid key: no error")
	}
}
