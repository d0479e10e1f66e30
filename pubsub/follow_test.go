package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// fakeEnd is a status reply that ends the pull request whose reply subject
// is reply, unsent of its entries not sent.
func fakeEnd(reply, code, descr string, unsent int) *nats.Msg {
	m := fakeStatus(reply, code, descr)
	m.Header.Set(pendingMsgsHeader, strconv.Itoa(unsent))
	return m
}

// fakeEntries are n entries from stream sequence sseq and delivery dseq on.
func fakeEntries(reply string, sseq, dseq uint64, n int) []*nats.Msg {
	var ms []*nats.Msg
	for i := range uint64(n) {
		ms = append(ms, fakeEntry(reply, sseq+i, dseq+i, 0))
	}
	return ms
}

// TestFollowPullReplies: follow makes of the replies to its waiting pull
// requests what nats.go's ordered consumer did: it keeps requests waiting,
// hands out each entry once and in order, and gives its consumer up
// (errFollowAgain, so follow creates another after the last entry) when
// the consumer cannot go on, but fails outright on what no new consumer
// would mend.
func TestFollowPullReplies(t *testing.T) {
	t.Parallel()
	l := openEmbedded(t, Options{})
	errStop := errors.New("stop")
	tests := []struct {
		name   string
		last   uint64 // the tail's last sequence before
		answer func(i int, r []string) []*nats.Msg
		failAt uint64        // fn fails on this sequence
		within time.Duration // ctx; 1s when 0
		// reconnectIn, when set, fires the reconnect signal that long after
		// the start.
		reconnectIn time.Duration

		wantSeqs  []uint64
		wantSent  int   // pull requests sent
		wantAgain bool  // errFollowAgain
		wantIs    error // else context.DeadlineExceeded
		wantText  string
		minTook   time.Duration
	}{
		{
			name: "entries, then a heartbeat while none come",
			answer: func(i int, r []string) []*nats.Msg {
				return append(fakeEntries(r[0], 5, 1, 2), fakeStatus(r[0], "100", "Idle Heartbeat"))
			},
			wantSeqs: []uint64{5, 6}, wantSent: 1, wantIs: context.DeadlineExceeded,
		},
		{
			name: "what fn had already is skipped", last: 5,
			answer: func(i int, r []string) []*nats.Msg {
				return fakeEntries(r[0], 4, 1, 4)
			},
			wantSeqs: []uint64{6, 7}, wantSent: 1, wantIs: context.DeadlineExceeded,
		},
		{
			name: "an expired request is followed by another",
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return []*nats.Msg{fakeEnd(r[0], "408", "Request Timeout", followBatch)}
				}
				return fakeEntries(r[i-1], 1, 1, 1)
			},
			wantSeqs: []uint64{1}, wantSent: 2, wantIs: context.DeadlineExceeded,
		},
		{
			name: "the next request goes out once half the batch came",
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return fakeEntries(r[0], 1, 1, followBatch/2+1)
				}
				return nil
			},
			wantSeqs: seqRange(1, followBatch/2+1), wantSent: 2, wantIs: context.DeadlineExceeded,
		},
		{
			name: "a leadership change: the request is sent again",
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return []*nats.Msg{fakeStatus(r[0], "409", "Leadership Change")}
				}
				return fakeEntries(r[i-1], 1, 1, 1)
			},
			wantSeqs: []uint64{1}, wantSent: 2, wantIs: context.DeadlineExceeded,
		},
		{
			name: "a delivery missing: a new consumer",
			answer: func(i int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 1, 1, 0), fakeEntry(r[0], 3, 3, 0)}
			},
			wantSeqs: []uint64{1}, wantSent: 1, wantAgain: true,
			wantText: `follow stream "FAKE" after seq 1: delivery 3 arrived after 1: an entry was lost in transit`,
		},
		{
			name: "the consumer deleted: a new one",
			answer: func(i int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 1, 1, 0), fakeStatus(r[0], "409", "Consumer Deleted")}
			},
			wantSeqs: []uint64{1}, wantSent: 1, wantAgain: true, wantIs: jetstream.ErrConsumerDeleted,
		},
		{
			name: "no responders after an entry: a new consumer at once",
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return fakeEntries(r[0], 1, 1, followBatch/2+1)
				}
				return []*nats.Msg{fakeStatus(r[i-1], "503", "")}
			},
			wantSeqs: seqRange(1, followBatch/2+1), wantSent: 2, wantAgain: true, wantIs: nats.ErrNoResponders,
		},
		{
			name: "an unknown status: a new consumer",
			answer: func(i int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeStatus(r[0], "418", "Teapot")}
			},
			wantSent: 1, wantAgain: true, wantText: `follow stream "FAKE" after seq 0: pull request: status 418 Teapot`,
		},
		{
			name: "a bad request fails the follow",
			answer: func(i int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeStatus(r[0], "400", "Bad Request - invalid batch")}
			},
			wantSent: 1, wantIs: jetstream.ErrBadRequest,
		},
		{
			name: "fn's error fails the follow",
			answer: func(i int, r []string) []*nats.Msg {
				return fakeEntries(r[0], 1, 1, 3)
			},
			failAt:   2,
			wantSeqs: []uint64{1}, wantSent: 1, wantIs: errStop,
			wantText: `follow stream "FAKE": handle seq 2: stop`,
		},
		{
			name: "a malformed entry fails the follow",
			answer: func(i int, r []string) []*nats.Msg {
				return []*nats.Msg{{Subject: r[0], Reply: "$JS.ACK.S.fake.1.x.1.0.0", Data: []byte("e1")}}
			},
			wantSent: 1, wantText: `follow stream "FAKE" after seq 0: read message metadata: reply subject "$JS.ACK.S.fake.1.x.1.0.0": token 6: strconv.ParseUint: parsing "x": invalid syntax`,
		},
		{
			// Two heartbeats missed: the consumer is lost (a NATS node
			// went away with it).
			name: "silence: a new consumer",
			answer: func(i int, r []string) []*nats.Msg {
				return fakeEntries(r[0], 1, 1, 1)
			},
			within:   2*followHeartbeat + time.Second,
			wantSeqs: []uint64{1}, wantSent: 1, wantAgain: true,
			wantText: `follow stream "FAKE" after seq 1: no heartbeat for 2s`,
			minTook:  2 * followHeartbeat,
		},
		{
			name: "NATS reconnected: a new consumer",
			answer: func(i int, r []string) []*nats.Msg {
				return fakeEntries(r[0], 1, 1, 1)
			},
			reconnectIn: 100 * time.Millisecond,
			wantSeqs:    []uint64{1}, wantSent: 1, wantAgain: true,
			wantText: `follow stream "FAKE" after seq 1: NATS reconnected`,
			minTook:  100 * time.Millisecond,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := fmt.Sprintf("FAKE%d", i)
			p, err := newPuller(l.nc, name, fakeConsumerName, followBatch)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			fakeResponder(t, l, p, name, tt.answer)
			var seqs []uint64
			tl := &tail{l: l, name: "FAKE", toEntry: partitionEntry, last: tt.last, fn: func(e Entry) error {
				if e.Seq == tt.failAt {
					return errStop
				}
				seqs = append(seqs, e.Seq)
				return nil
			}}
			within := tt.within
			if within == 0 {
				within = time.Second
			}
			reconnected := make(chan struct{})
			if tt.reconnectIn > 0 {
				timer := time.AfterFunc(tt.reconnectIn, func() { close(reconnected) })
				defer timer.Stop()
			}
			start := time.Now()
			err = tl.pull(testCtx(t, within), p, reconnected)
			took := time.Since(start)
			t.Logf("pull = %v after %s, %d requests", err, took.Round(time.Millisecond), p.sent)

			if !slices.Equal(seqs, tt.wantSeqs) {
				t.Errorf("fn got %v, want %v", short(seqs), short(tt.wantSeqs))
			}
			if want := max(tt.last, last(tt.wantSeqs)); tl.last != want {
				t.Errorf("last = %d, want %d", tl.last, want)
			}
			if p.sent != tt.wantSent {
				t.Errorf("%d pull requests, want %d", p.sent, tt.wantSent)
			}
			var again errFollowAgain
			if errors.As(err, &again) != tt.wantAgain {
				t.Errorf("err = %v (%T); errFollowAgain: want %t", err, err, tt.wantAgain)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if tt.wantText != "" && (err == nil || err.Error() != tt.wantText) {
				t.Errorf("err = %v, want %q", err, tt.wantText)
			}
			if took < tt.minTook {
				t.Errorf("pull returned after %s, want at least %s", took, tt.minTook)
			}
		})
	}
}

// TestFollowWaitsForConsumerInterest: follow's first pull request, sent
// before the NATS node this process is connected to knows the new
// consumer, is answered "no responders"; follow sends it again until the
// consumer answers, within interestWait of its creation. nats.go's
// iterator passed over that answer and stayed silent for two heartbeats.
func TestFollowWaitsForConsumerInterest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		answerIn time.Duration // when the consumer starts answering; 0: never
	}{
		{"interest after 300ms", 300 * time.Millisecond},
		{"no interest ever", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := openEmbedded(t, Options{})
			p := lateConsumer(t, l, followBatch, tc.answerIn)
			got := make(chan uint64, 1)
			tl := &tail{l: l, name: "FAKE", toEntry: partitionEntry, fn: func(e Entry) error {
				got <- e.Seq
				return errStopFollow
			}}
			began := time.Now()
			err := tl.pull(testCtx(t, 2*followHeartbeat+2*time.Second), p, make(chan struct{}))
			took := time.Since(began)
			t.Logf("pull = %v after %s and %d pull requests", err, took.Round(time.Millisecond), p.sent)
			if tc.answerIn > 0 {
				if !errors.Is(err, errStopFollow) || len(got) != 1 {
					t.Fatalf("pull = %v with %d entries; want the entry", err, len(got))
				}
				// Without the retry the entry would wait for the heartbeats
				// to be missed (2s) and a new consumer.
				if took < tc.answerIn || took >= interestWait || p.sent < 2 {
					t.Errorf("entry after %s and %d requests; want the request sent again until %s", took, p.sent, tc.answerIn)
				}
				return
			}
			var again errFollowAgain
			if !errors.As(err, &again) || !errors.Is(err, nats.ErrNoResponders) {
				t.Fatalf("pull = %v, want no responders, for a new consumer", err)
			}
			if took < interestWait || took > interestWait+followHeartbeat {
				t.Errorf("gave up after %s, want about interestWait (%s)", took, interestWait)
			}
			if p.sent < 10 {
				t.Errorf("%d pull requests, want one every %s for %s", p.sent, interestRetry, interestWait)
			}
		})
	}
}

// errStopFollow ends a follow from its fn.
var errStopFollow = errors.New("stop following")

// TestFollowCreatesItsConsumerAgain: when the consumer a follow reads is
// deleted under it, the follow creates another after the last entry it
// delivered, at once: nothing is delivered twice or skipped.
func TestFollowCreatesItsConsumerAgain(t *testing.T) {
	t.Parallel()
	l := openEmbedded(t, Options{})
	mustAdd(t, l, "k1", "1")
	f := startFollow(t, l, 1)
	f.next(t, 1, 5*time.Second)

	ctx := testCtx(t, 10*time.Second)
	stream, err := l.js.Stream(ctx, l.lay.dirStream)
	if err != nil {
		t.Fatal(err)
	}
	before := consumerNames(ctx, t, stream)
	if len(before) != 1 {
		t.Fatalf("consumers of the directory: %v, want the follow's", before)
	}
	if err := stream.DeleteConsumer(ctx, before[0]); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	mustAdd(t, l, "k2", "2")
	mustAdd(t, l, "k3", "3")
	if got := seqs(f.next(t, 2, 5*time.Second)); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("after the deletion seqs = %v, want [2 3]", got)
	}
	// Not after missed heartbeats: the waiting request was told.
	if took := time.Since(deleted); took >= 2*followHeartbeat {
		t.Errorf("entries after the deletion came after %s, want them before the heartbeats are missed", took)
	}
	f.quiet(t, 200*time.Millisecond)
	if n := l.followsRenewed.Load(); n != 1 {
		t.Errorf("the follow created its consumer again %d times, want once", n)
	}
	after := consumerNames(ctx, t, stream)
	if len(after) != 1 || after[0] == before[0] {
		t.Errorf("consumers after the deletion: %v, want one other than %s", after, before[0])
	}
}

// TestFollowCancelWhileDisconnected: a follow whose NATS server is gone
// keeps trying to create its consumer, and returns promptly when its ctx
// ends.
func TestFollowCancelWhileDisconnected(t *testing.T) {
	t.Parallel()
	srv, err := Open(testCtx(t, 10*time.Second), Options{DataDir: t.TempDir(), ListenAddr: freeAddr(t), Logger: testLogger()})
	if err != nil {
		t.Fatalf("Open embedded: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	external := openLog(t, Options{URLs: []string{srv.ClientURL()}})
	f := startFollow(t, external, 1)
	mustAdd(t, srv, "k1", "1")
	f.next(t, 1, 5*time.Second)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "disconnect", func() bool { return !external.Connected() })
	// Past the missed heartbeats: the follow is creating its consumer again.
	time.Sleep(2*followHeartbeat + 500*time.Millisecond)
	start := time.Now()
	if err := f.stop(t, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("FollowDirectory after cancel = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > followRetryMax/2 {
		t.Errorf("FollowDirectory returned %s after cancel, want promptly", took)
	}
}

// consumerNames lists stream's consumers.
func consumerNames(ctx context.Context, t *testing.T, stream jetstream.Stream) []string {
	t.Helper()
	lister := stream.ConsumerNames(ctx)
	var names []string
	for n := range lister.Name() {
		names = append(names, n)
	}
	if err := lister.Err(); err != nil {
		t.Fatalf("list consumers: %v", err)
	}
	return names
}

func seqRange(from, n int) []uint64 {
	var s []uint64
	for i := range n {
		s = append(s, uint64(from+i))
	}
	return s
}

func last(s []uint64) uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

// short abbreviates a long list of sequences for an error message.
func short(s []uint64) string {
	if len(s) <= 8 {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%v ... %v (%d)", s[:4], s[len(s)-4:], len(s))
}

// TestFollowStartsPromptlyOnACluster: a fresh follow delivers its first
// entry promptly from any node of a 3-node cluster. Its consumer sits on
// the stream's leader; from another node, its first pull request can be
// answered "no responders" before that node learns of it. With nats.go's
// ordered consumer, which then waited for two missed heartbeats, about 1
// follow in 75 took 2s here. Each one starts with a consumer it keeps.
func TestFollowStartsPromptlyOnACluster(t *testing.T) {
	t.Parallel()
	logs := logOnEachNode(t, startNATSCluster(t, 3))
	mustAdd(t, logs[0], "k1", "1")
	const follows = 450
	// Under two heartbeats: the first entry did not wait for a new consumer.
	const prompt = 2*followHeartbeat - 250*time.Millisecond
	var slow []time.Duration
	for n := range follows {
		start := time.Now()
		err := logs[n%3].FollowDirectory(testCtx(t, 10*time.Second), 1, func(Entry) error { return errStopFollow })
		took := time.Since(start)
		if !errors.Is(err, errStopFollow) {
			t.Fatalf("follow %d from node %d = %v, want its first entry", n, n%3, err)
		}
		if took >= prompt {
			slow = append(slow, took)
		}
	}
	if len(slow) > 0 {
		t.Errorf("%d of %d follows took %s or more to deliver their first entry: %v", len(slow), follows, prompt, slow)
	}
	// Nor did any give its consumer up, as one answered "no responders"
	// without being sent again would have.
	for i, l := range logs {
		if n := l.followsRenewed.Load(); n != 0 {
			t.Errorf("follows from node %d created their consumer again %d times, want none", i, n)
		}
	}
}

// logOnEachNode opens a log of 3 replicas on each node of c, connected to
// that node alone, and closes them at cleanup.
func logOnEachNode(t *testing.T, c *natsCluster) []*Log {
	t.Helper()
	var logs []*Log
	for i := range c.clients {
		logs = append(logs, openLog(t, Options{URLs: []string{c.url(i)}, Replicas: 3, Partitions: 1,
			ConnectTimeout: 5 * time.Second, SetupTimeout: 60 * time.Second}))
	}
	return logs
}
