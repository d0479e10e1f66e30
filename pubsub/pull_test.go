package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestParseAckReply(t *testing.T) {
	tests := []struct {
		name    string
		reply   string
		want    ackReply
		wantErr string
	}{
		{name: "short form", reply: "$JS.ACK.S.C.1.42.7.1700000000000000001.3",
			want: ackReply{streamSeq: 42, consumerSeq: 7, stored: 1700000000000000001, pending: 3}},
		{name: "long form", reply: "$JS.ACK._.ACCHASH.S.C.2.42.7.1700000000000000001.0.RaNd0m",
			want: ackReply{streamSeq: 42, consumerSeq: 7, stored: 1700000000000000001, pending: 0}},
		{name: "long form with a domain", reply: "$JS.ACK.hub.ACCHASH.S.C.1.1.1.5.9.x",
			want: ackReply{streamSeq: 1, consumerSeq: 1, stored: 5, pending: 9}},
		{name: "long form without the last token", reply: "$JS.ACK._.ACCHASH.S.C.1.42.7.5.3",
			want: ackReply{streamSeq: 42, consumerSeq: 7, stored: 5, pending: 3}},
		{name: "long form with more tokens", reply: "$JS.ACK._.ACCHASH.S.C.1.42.7.5.3.x.y",
			want: ackReply{streamSeq: 42, consumerSeq: 7, stored: 5, pending: 3}},
		{name: "largest numbers", reply: "$JS.ACK.S.C.1.18446744073709551615.18446744073709551615.9223372036854775807.18446744073709551615",
			want: ackReply{streamSeq: 1<<64 - 1, consumerSeq: 1<<64 - 1, stored: 1<<63 - 1, pending: 1<<64 - 1}},

		{name: "empty", reply: "", wantErr: "does not start with $JS.ACK."},
		{name: "not an ack", reply: "_INBOX.abc.1", wantErr: "does not start with $JS.ACK."},
		{name: "prefix in another case", reply: "$js.ack.S.C.1.42.7.5.3", wantErr: "does not start with $JS.ACK."},
		{name: "prefix only", reply: "$JS.ACK.", wantErr: "has 3 tokens"},
		{name: "8 tokens", reply: "$JS.ACK.S.C.1.42.7.5", wantErr: "has 8 tokens, want 9 or at least 11"},
		{name: "10 tokens", reply: "$JS.ACK.S.C.1.42.7.5.3.x", wantErr: "has 10 tokens"},
		{name: "empty token", reply: "$JS.ACK.S..1.42.7.5.3", wantErr: "empty token"},
		{name: "empty last token", reply: "$JS.ACK.S.C.1.42.7.5.", wantErr: "empty token"},
		{name: "empty domain", reply: "$JS.ACK..ACCHASH.S.C.1.42.7.5.3.x", wantErr: "empty token"},
		{name: "stream sequence not a number", reply: "$JS.ACK.S.C.1.4x2.7.5.3", wantErr: "token 6"},
		{name: "consumer sequence negative", reply: "$JS.ACK.S.C.1.42.-7.5.3", wantErr: "token 7"},
		{name: "delivered count not a number", reply: "$JS.ACK.S.C.one.42.7.5.3", wantErr: "token 5"},
		{name: "timestamp not a number", reply: "$JS.ACK._.H.S.C.1.42.7.5e9.3.x", wantErr: "token 10"},
		{name: "pending overflows", reply: "$JS.ACK.S.C.1.42.7.5.18446744073709551616", wantErr: "token 9"},
		{name: "hex", reply: "$JS.ACK.S.C.1.0x2a.7.5.3", wantErr: "token 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAckReply(tt.reply)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), fmt.Sprintf("%q", tt.reply)) {
					t.Fatalf("parseAckReply(%q) = %+v, %v; want an error naming the subject and saying %q", tt.reply, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseAckReply(%q) = %+v, %v; want %+v", tt.reply, got, err, tt.want)
			}
		})
	}
	t.Run("allocations", func(t *testing.T) {
		for _, reply := range []string{"$JS.ACK.S.C.1.42.7.1700000000000000001.3", "$JS.ACK._.ACCHASH.S.C.2.42.7.1700000000000000001.0.RaNd0m"} {
			if n := testing.AllocsPerRun(100, func() { _, _ = parseAckReply(reply) }); n != 0 {
				t.Errorf("parseAckReply(%q) allocates %.0f times, want 0", reply, n)
			}
		}
	})
}

func TestPullStatus(t *testing.T) {
	tests := []struct {
		code, descr string
		wantEnd     bool
		wantErr     error // nil: no error
		wantText    string
	}{
		{code: "404", descr: "No Messages", wantEnd: true},
		{code: "408", descr: "Request Timeout", wantEnd: true},
		{code: "100", descr: "Idle Heartbeat"},
		{code: "409", descr: "Message Size Exceeds MaxBytes", wantEnd: true},
		{code: "409", descr: "Consumer Deleted", wantEnd: true, wantErr: jetstream.ErrConsumerDeleted},
		{code: "409", descr: "Leadership Change", wantEnd: true, wantErr: jetstream.ErrConsumerLeadershipChanged},
		{code: "409", descr: "Server Shutdown", wantEnd: true, wantErr: jetstream.ErrServerShutdown},
		{code: "409", descr: "Batch Completed", wantEnd: true, wantErr: jetstream.ErrBatchCompleted},
		{code: "409", descr: "Exceeded MaxWaiting", wantEnd: true, wantText: "nats: status 409 Exceeded MaxWaiting"},
		{code: "400", descr: "Bad Request", wantEnd: true, wantErr: jetstream.ErrBadRequest},
		{code: "423", descr: "Nats-Pin-Id mismatch", wantEnd: true, wantErr: jetstream.ErrPinIDMismatch},
		{code: "503", wantEnd: true, wantErr: nats.ErrNoResponders},
		{code: "500", descr: "Whatever", wantEnd: true, wantText: "nats: status 500 Whatever"},
	}
	for _, tt := range tests {
		t.Run(tt.code+" "+tt.descr, func(t *testing.T) {
			end, err := pullStatus(tt.code, tt.descr)
			switch {
			case end != tt.wantEnd:
				t.Errorf("end = %t, want %t", end, tt.wantEnd)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			case tt.wantText != "" && (err == nil || err.Error() != tt.wantText):
				t.Errorf("err = %v, want %q", err, tt.wantText)
			case tt.wantErr == nil && tt.wantText == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			}
		})
	}
}

// fakeConsumer is a consumer that exists in name only: fakeResponder
// answers its pull requests.
type fakeConsumer struct {
	jetstream.Consumer
	pending uint64
}

// laggingConsumer is a fakeConsumer whose replica has stored nothing more
// than it delivered: its Info says none are pending.
func laggingConsumer() fakeConsumer { return fakeConsumer{} }

// fakeConsumerName names every fakeConsumer.
const fakeConsumerName = "fake"

func (c fakeConsumer) Info(context.Context) (*jetstream.ConsumerInfo, error) {
	return &jetstream.ConsumerInfo{Name: fakeConsumerName, NumPending: c.pending}, nil
}

// fakeEntry is an entry as a consumer of stream S delivers it: reply is the
// pull request's reply subject.
func fakeEntry(reply string, sseq, dseq, pending uint64) *nats.Msg {
	return &nats.Msg{
		Subject: reply,
		Reply:   fmt.Sprintf("$JS.ACK._.HASH.S.%s.1.%d.%d.%d.%d.rnd", fakeConsumerName, sseq, dseq, time.Now().UnixNano(), pending),
		Data:    fmt.Appendf(nil, "e%d", sseq),
	}
}

// fakeStatus is a status reply to the pull request whose reply subject is reply.
func fakeStatus(reply, code, descr string) *nats.Msg {
	return &nats.Msg{Subject: reply, Header: nats.Header{statusHeader: {code}, descrHeader: {descr}}}
}

// fakeResponder answers the pull requests p sends to fakeConsumerName of
// stream name: answer gets the request's number (from 1) and its reply
// subject and those of the earlier requests, and returns the replies,
// which go straight to p: the server refuses a client's message whose
// reply subject is an acknowledgement's.
func fakeResponder(t *testing.T, l *Log, p *puller, name string, answer func(i int, replies []string) []*nats.Msg) {
	t.Helper()
	var mu sync.Mutex
	var replies []string
	sub, err := l.nc.Subscribe(consumerNextPrefix+name+"."+fakeConsumerName, func(req *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		replies = append(replies, req.Reply)
		for _, m := range answer(len(replies), slices.Clone(replies)) {
			m.Sub = p.sub
			select {
			case p.msgs <- m:
			default:
				t.Errorf("fake reply to %s: the puller's channel is full", m.Subject)
			}
		}
	})
	if err != nil {
		t.Fatalf("subscribe fake responder: %v", err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	flush(t, l)
}

// TestReadPullReplies: a read makes of the replies to its pull requests
// what jetstream's Fetch did, and fails on what it cannot trust.
func TestReadPullReplies(t *testing.T) {
	l := openEmbedded(t, Options{})
	tests := []struct {
		name    string
		pending uint64
		until   uint64 // the leader's last entry when the read began (see Log.read)
		// lagging: the consumer's replica has stored no more than the
		// replies bring (its Info says none pending).
		lagging  bool
		answer   func(i int, replies []string) []*nats.Msg
		ctx      func(t *testing.T) context.Context
		wantSeqs []uint64
		wantLast uint64
		wantErr  string
		wantIs   error
		atLeast  time.Duration
		within   time.Duration
	}{
		{
			name: "all in one batch", pending: 3,
			answer: func(_ int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 10, 1, 2), fakeEntry(r[0], 11, 2, 1), fakeEntry(r[0], 13, 3, 0)}
			},
			wantSeqs: []uint64{10, 11, 13}, wantLast: 13,
		},
		{
			name: "an entry says none pending", pending: 5,
			answer: func(_ int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 10, 1, 1), fakeEntry(r[0], 11, 2, 0)}
			},
			wantSeqs: []uint64{10, 11}, wantLast: 11,
		},
		{
			name: "several batches, a late status of an earlier request ignored", pending: 3,
			answer: func(i int, r []string) []*nats.Msg {
				switch i {
				case 1:
					return []*nats.Msg{fakeEntry(r[0], 10, 1, 2), fakeStatus(r[0], "408", "Request Timeout")}
				case 2:
					return []*nats.Msg{fakeStatus(r[0], "404", "No Messages"), fakeStatus(r[1], "100", "Idle Heartbeat"),
						fakeEntry(r[1], 11, 2, 1), fakeEntry(r[1], 12, 3, 0)}
				}
				return nil
			},
			wantSeqs: []uint64{10, 11, 12}, wantLast: 12,
		},
		{
			name: "gap", pending: 3,
			answer: func(_ int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 10, 1, 2), fakeEntry(r[0], 12, 3, 0)}
			},
			wantSeqs: []uint64{10}, wantLast: 10,
			wantErr: `read herald-p0.k.> from stream "FAKE" after seq 10: delivery 3 arrived after 1: an entry was lost in transit; read again`,
		},
		{
			name: "gap across batches", pending: 3,
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return []*nats.Msg{fakeEntry(r[0], 10, 1, 2), fakeStatus(r[0], "404", "No Messages")}
				}
				return []*nats.Msg{fakeEntry(r[i-1], 12, 3, 0)}
			},
			wantSeqs: []uint64{10}, wantLast: 10, wantErr: "delivery 3 arrived after 1: an entry was lost in transit",
		},
		{
			name: "first delivery missing", pending: 2,
			answer: func(_ int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 11, 2, 0)}
			},
			wantErr: "after seq 0: delivery 2 arrived after 0: an entry was lost in transit",
		},
		{
			name: "malformed reply subject", pending: 2,
			answer: func(_ int, r []string) []*nats.Msg {
				bad := fakeEntry(r[0], 11, 2, 0)
				bad.Reply = "$JS.ACK.S.fake.1.11.two.5.0"
				return []*nats.Msg{fakeEntry(r[0], 10, 1, 1), bad}
			},
			wantSeqs: []uint64{10}, wantLast: 10,
			wantErr: `after seq 10: read message metadata: reply subject "$JS.ACK.S.fake.1.11.two.5.0": token 7`,
		},
		{
			name: "consumer deleted during a batch", pending: 4,
			answer: func(_ int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 10, 1, 3), fakeEntry(r[0], 11, 2, 2), fakeStatus(r[0], "409", "Consumer Deleted")}
			},
			wantSeqs: []uint64{10, 11}, wantLast: 11, wantIs: jetstream.ErrConsumerDeleted,
			wantErr: `read herald-p0.k.> from stream "FAKE" after seq 11: nats: consumer deleted`,
		},
		{
			name: "leadership change", pending: 4,
			answer: func(_ int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeEntry(r[0], 10, 1, 3), fakeStatus(r[0], "409", "Leadership Change")}
			},
			wantSeqs: []uint64{10}, wantLast: 10, wantIs: jetstream.ErrConsumerLeadershipChanged,
		},
		{
			name: "exceeded a limit", pending: 4,
			answer: func(_ int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeStatus(r[0], "409", "Exceeded MaxRequestBatch of 100")}
			},
			wantErr: "after seq 0: nats: status 409 Exceeded MaxRequestBatch of 100",
		},
		{
			// Before any entry, the consumer may not be known to this NATS
			// node yet (see interestWait): asked again until interestWait.
			name: "no responders", pending: 4,
			answer: func(i int, r []string) []*nats.Msg {
				return []*nats.Msg{fakeStatus(r[i-1], "503", "")}
			},
			wantIs: nats.ErrNoResponders,
			within: interestWait + readIdle/2,
		},
		{
			// After an entry, the consumer is gone: no asking again.
			name: "no responders after an entry", pending: 4,
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return []*nats.Msg{fakeEntry(r[0], 1, 1, 3), fakeStatus(r[0], "404", "No Messages")}
				}
				return []*nats.Msg{fakeStatus(r[i-1], "503", "")}
			},
			wantSeqs: []uint64{1}, wantLast: 1,
			wantIs: nats.ErrNoResponders,
		},
		{
			// The consumer's replica had stored one entry of three when the
			// read began; it stores the rest a moment later.
			name: "a replica that lags its leader", pending: 1, until: 12, lagging: true,
			answer: func(i int, r []string) []*nats.Msg {
				switch i {
				case 1:
					return []*nats.Msg{fakeEntry(r[0], 10, 1, 0), fakeStatus(r[0], "404", "No Messages")}
				case 2, 3:
					return []*nats.Msg{fakeStatus(r[i-1], "404", "No Messages")}
				}
				return []*nats.Msg{fakeEntry(r[i-1], 11, 2, 1), fakeEntry(r[i-1], 12, 3, 0)}
			},
			wantSeqs: []uint64{10, 11, 12}, wantLast: 12,
			atLeast: 2 * replicaLagRetry,
		},
		{
			// The replica had stored none of them; an entry says none
			// pending after it before the one the leader had.
			name: "a replica that had stored none", until: 11, lagging: true,
			answer: func(i int, r []string) []*nats.Msg {
				switch i {
				case 1:
					return []*nats.Msg{fakeStatus(r[0], "404", "No Messages")}
				case 2:
					return []*nats.Msg{fakeEntry(r[1], 10, 1, 0), fakeStatus(r[1], "404", "No Messages")}
				}
				return []*nats.Msg{fakeEntry(r[i-1], 11, 2, 0)}
			},
			wantSeqs: []uint64{10, 11}, wantLast: 11,
		},
		{
			// Once the consumer's count is spent, the read needs no more
			// than the leader's last, whatever the replica stored since.
			name: "the leader's last reached in a batch", pending: 1, until: 11, lagging: true,
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return []*nats.Msg{fakeEntry(r[0], 10, 1, 0), fakeStatus(r[0], "404", "No Messages")}
				}
				return []*nats.Msg{fakeEntry(r[i-1], 11, 2, 1), fakeEntry(r[i-1], 12, 3, 0)}
			},
			wantSeqs: []uint64{10, 11}, wantLast: 11,
		},
		{
			// The replica takes too long: read creates the consumer again,
			// on a replica chosen anew (see readOn).
			name: "a replica that lags too long", pending: 1, until: 12, lagging: true,
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return []*nats.Msg{fakeEntry(r[0], 10, 1, 0), fakeStatus(r[0], "404", "No Messages")}
				}
				return []*nats.Msg{fakeStatus(r[i-1], "404", "No Messages")}
			},
			wantSeqs: []uint64{10}, wantLast: 10, wantIs: errReplicaLags,
			wantErr: `read herald-p0.k.> from stream "FAKE" after seq 10: seq 12: the consumer's replica has not stored what the stream's leader holds`,
			atLeast: 300 * time.Millisecond, within: 300*time.Millisecond + readIdle/2,
		},
		{
			name: "ctx ends while the replica lags", pending: 1, until: 12, lagging: true,
			answer: func(i int, r []string) []*nats.Msg {
				if i == 1 {
					return []*nats.Msg{fakeEntry(r[0], 10, 1, 0), fakeStatus(r[0], "404", "No Messages")}
				}
				return []*nats.Msg{fakeStatus(r[i-1], "404", "No Messages")}
			},
			ctx: func(t *testing.T) context.Context {
				return testCtx(t, 150*time.Millisecond)
			},
			wantSeqs: []uint64{10}, wantLast: 10, wantIs: context.DeadlineExceeded,
			wantErr: `read herald-p0.k.> from stream "FAKE" after seq 10`,
			atLeast: 100 * time.Millisecond, within: readIdle / 2,
		},
		{
			name: "no answer at all, without a deadline", pending: 2,
			answer:  func(int, []string) []*nats.Msg { return nil },
			ctx:     func(*testing.T) context.Context { return context.Background() },
			wantErr: "2 entries pending but 3 pull requests in a row brought none",
			within:  3*readIdle + 2*time.Second,
		},
		{
			name: "no answer, ctx ends", pending: 2,
			answer: func(int, []string) []*nats.Msg { return nil },
			ctx: func(t *testing.T) context.Context {
				return testCtx(t, 200*time.Millisecond)
			},
			wantIs:  context.DeadlineExceeded,
			wantErr: `read herald-p0.k.> from stream "FAKE" after seq 0: context deadline exceeded`,
			within:  readIdle / 2,
		},
	}
	l.lagSwitch = 300 * time.Millisecond
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("FAKE%d", i)
			batch := min(tt.pending, readBatch)
			if tt.until != 0 {
				batch = min(max(batch, laggingReadBatch), readBatch) // as read does
			}
			p, err := newPuller(l.nc, name, fakeConsumerName, batch)
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			fakeResponder(t, l, p, name, tt.answer)
			ctx := testCtx(t, 10*time.Second)
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			var seqs []uint64
			d := &delivery{
				what:    fmt.Sprintf("read herald-p0.k.> from stream %q", name),
				pending: tt.pending,
				until:   tt.until,
				toEntry: partitionEntry,
				fn: func(e Entry) error {
					if want := fmt.Sprintf("e%d", e.Seq); string(e.Data) != want || time.Since(e.Time) > time.Minute {
						t.Errorf("entry %+v, want data %s and a recent time", e, want)
					}
					seqs = append(seqs, e.Seq)
					return nil
				},
			}
			start := time.Now()
			cons := fakeConsumer{pending: tt.pending}
			if tt.lagging {
				cons = laggingConsumer()
			}
			last, err := l.drain(ctx, cons, p, d)
			took := time.Since(start)
			wantErr := strings.ReplaceAll(tt.wantErr, `"FAKE"`, fmt.Sprintf("%q", name))
			switch {
			case tt.wantErr == "" && tt.wantIs == nil && err != nil:
				t.Errorf("read = %v, want no error", err)
			case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
				t.Errorf("read = %v, want an error saying %q", err, wantErr)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("read = %v, want it to wrap %v", err, tt.wantIs)
			}
			if !slices.Equal(seqs, tt.wantSeqs) || last != tt.wantLast {
				t.Errorf("read passed %v, returned last %d; want %v, %d", seqs, last, tt.wantSeqs, tt.wantLast)
			}
			if took < tt.atLeast {
				t.Errorf("read took %s, want at least %s", took, tt.atLeast)
			}
			within := tt.within
			if within == 0 {
				within = readIdle / 2 // a missed status would cost readIdle
			}
			if took > within {
				t.Errorf("read took %s, want at most %s", took, within)
			}
		})
	}
}

// TestReadKeyConsumerDeleted: a read whose consumer is deleted while it
// reads fails, promptly, instead of returning what it got as all there is.
func TestReadKeyConsumerDeleted(t *testing.T) {
	l := openTwoPartitions(t, Options{})
	const n = 3 * readBatch
	publishBulk(t, l, "herald-p0."+keyA+".msg", n)
	subs := l.nc.NumSubscriptions()

	ctx := testCtx(t, 20*time.Second)
	count := 0
	start := time.Now()
	last, err := l.ReadKey(ctx, keyA, 0, func(Entry) error {
		if count++; count == 1 {
			for name := range l.parts[0].ConsumerNames(ctx).Name() {
				if err := l.js.DeleteConsumer(ctx, l.lay.partStreams[0], name); err != nil {
					return fmt.Errorf("delete consumer %s: %w", name, err)
				}
			}
		}
		return nil
	})
	took := time.Since(start)
	t.Logf("ReadKey after %d entries, last %d, in %s: %v", count, last, took, err)
	if err == nil || count >= n {
		t.Fatalf("ReadKey = %v after %d of %d entries; want an error before the end", err, count, n)
	}
	// The next pull request finds no consumer; one already waiting would
	// be told it was deleted.
	if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, jetstream.ErrConsumerDeleted) ||
		!strings.Contains(err.Error(), fmt.Sprintf(`read herald-p0.a.> from stream "HERALD_P0" after seq %d`, last)) {
		t.Errorf("ReadKey = %v; want the read and its last seq named, and no responders or consumer deleted", err)
	}
	if last != uint64(count) {
		t.Errorf("last = %d after %d entries, want %d", last, count, count)
	}
	if took >= readIdle { // what a lost reply would cost
		t.Errorf("ReadKey took %s, want a prompt failure", took)
	}
	if got := l.nc.NumSubscriptions(); got != subs {
		t.Errorf("%d subscriptions after the read, %d before", got, subs)
	}
	if c := consumersOf(t, l, 0); c != 0 {
		t.Errorf("%d consumers left, want 0", c)
	}
}

// TestReadBatchWaitsForConsumerInterest: a consumer created on another NATS
// node is known to this one only once its interest crosses the route, and
// a pull request sent before then is answered "no responders". A read
// sends it again until the consumer answers, within interestWait of the
// consumer's creation; after that, or once entries came, "no responders"
// means the consumer is gone and the read fails.
func TestReadBatchWaitsForConsumerInterest(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		answerIn  time.Duration // when the consumer starts answering; 0: never
		wantEntry bool
	}{
		{"interest after 300ms", 300 * time.Millisecond, true},
		{"no interest ever", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := openEmbedded(t, Options{})
			p := lateConsumer(t, l, 1, tc.answerIn)
			var got []string
			d := &delivery{what: "read test", pending: 1, toEntry: partitionEntry, fn: func(e Entry) error {
				got = append(got, string(e.Data))
				return nil
			}}
			began := time.Now()
			n, done, err := l.readBatch(testCtx(t, 10*time.Second), p, d)
			took := time.Since(began)
			t.Logf("readBatch = %d, %v, %v after %s and %d pull requests", n, done, err, took.Round(time.Millisecond), p.sent)
			if tc.wantEntry {
				if err != nil || !done || !slices.Equal(got, []string{"e7"}) {
					t.Fatalf("readBatch = %d, %v, %v handing %q; want the entry", n, done, err, got)
				}
				if took < tc.answerIn || p.sent < 2 {
					t.Errorf("done after %s and %d requests; want the request sent again until %s", took, p.sent, tc.answerIn)
				}
				return
			}
			if !errors.Is(err, nats.ErrNoResponders) {
				t.Fatalf("readBatch err = %v, want no responders", err)
			}
			if took < interestWait || took > interestWait+readIdle {
				t.Errorf("failed after %s, want about interestWait (%s)", took, interestWait)
			}
			if p.sent < 10 {
				t.Errorf("%d pull requests, want one every %s for %s", p.sent, interestRetry, interestWait)
			}
		})
	}
}

// lateConsumer is a puller of a fake consumer of stream FAKE, asking for
// batch entries at a time, that NATS knows only from answerIn on (never
// when 0): then it answers every request with one entry, stream seq 7,
// handed straight to the puller as fakeResponder does.
func lateConsumer(t *testing.T, l *Log, batch uint64, answerIn time.Duration) *puller {
	t.Helper()
	p, err := newPuller(l.nc, "FAKE", fakeConsumerName, batch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	if answerIn > 0 {
		timer := time.AfterFunc(answerIn, func() {
			_, err := l.nc.Subscribe(consumerNextPrefix+"FAKE."+fakeConsumerName, func(req *nats.Msg) {
				m := fakeEntry(req.Reply, 7, 1, 0)
				m.Sub = p.sub
				p.msgs <- m
			})
			if err != nil {
				t.Errorf("subscribe as the consumer: %v", err)
			}
		})
		t.Cleanup(func() { timer.Stop() })
	}
	return p
}

// TestReadOnCreatesTheConsumerAgain: while a read's consumer sits on a
// replica that lags the stream's leader, the read creates another after
// the last entry it handed out, for up to lagWait; then the leader says
// whether the entries it lacks are still there.
func TestReadOnCreatesTheConsumerAgain(t *testing.T) {
	l := openEmbedded(t, Options{})
	lags := fmt.Errorf("read test after seq 11: seq 13: %w", errReplicaLags)
	tests := []struct {
		name string
		// attempts are what the consumers created one after the other
		// hand out before they end, with the error they end with; the
		// last one is repeated.
		attempts   []attempt
		leaderLast func() (uint64, error)
		wantFroms  []uint64 // the first few consumers' start sequences
		wantSeqs   []uint64
		wantErr    string
		wantIs     error
	}{
		{
			name:      "the second consumer's replica has it",
			attempts:  []attempt{{seqs: []uint64{10, 11}, err: lags}, {seqs: []uint64{12, 13}}},
			wantFroms: []uint64{5, 12}, wantSeqs: []uint64{10, 11, 12, 13},
		},
		{
			name:      "a lagging consumer that handed out nothing",
			attempts:  []attempt{{err: lags}, {err: lags}, {seqs: []uint64{10, 13}}},
			wantFroms: []uint64{5, 5, 5}, wantSeqs: []uint64{10, 13},
		},
		{
			name:       "the leader's last entry gone meanwhile",
			attempts:   []attempt{{seqs: []uint64{10, 11}, err: lags}, {err: lags}},
			leaderLast: func() (uint64, error) { return 11, nil },
			wantFroms:  []uint64{5, 12, 12}, wantSeqs: []uint64{10, 11},
		},
		{
			name:       "replicas that never catch up",
			attempts:   []attempt{{seqs: []uint64{10, 11}, err: lags}, {err: lags}},
			leaderLast: func() (uint64, error) { return 13, nil },
			wantFroms:  []uint64{5, 12, 12}, wantSeqs: []uint64{10, 11},
			wantErr: "read test after seq 11: the consumers' replicas of the stream have not stored seq 13, which the stream's leader holds, in 200ms; read again",
		},
		{
			name:       "the leader unanswering",
			attempts:   []attempt{{err: lags}},
			leaderLast: func() (uint64, error) { return 0, nats.ErrTimeout },
			wantFroms:  []uint64{5, 5},
			wantErr:    "read test after seq 0: ask the stream's leader for the last entry", wantIs: nats.ErrTimeout,
		},
		{
			name:      "another error ends the read at once",
			attempts:  []attempt{{seqs: []uint64{10}, err: jetstream.ErrConsumerDeleted}},
			wantFroms: []uint64{5}, wantSeqs: []uint64{10}, wantIs: jetstream.ErrConsumerDeleted,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seqs, froms []uint64
			d := &delivery{what: "read test", until: 13, fn: func(e Entry) error {
				seqs = append(seqs, e.Seq)
				return nil
			}}
			readFrom := func(from uint64) error {
				froms = append(froms, from)
				a := tt.attempts[min(len(froms), len(tt.attempts))-1]
				for _, seq := range a.seqs {
					if err := d.fn(Entry{Seq: seq}); err != nil {
						return err
					}
					d.last = seq
				}
				return a.err
			}
			leaderLast := func() (uint64, error) {
				if tt.leaderLast == nil {
					t.Error("the read asked the leader before lagWait")
					return d.until, nil
				}
				return tt.leaderLast()
			}
			if tt.leaderLast == nil {
				l.lagWait = time.Hour
			} else {
				l.lagWait = 200 * time.Millisecond
			}
			err := l.readOn(testCtx(t, 10*time.Second), d, 5, readFrom, leaderLast)
			switch {
			case tt.wantErr == "" && tt.wantIs == nil && err != nil:
				t.Errorf("readOn = %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("readOn = %v, want an error saying %q", err, tt.wantErr)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("readOn = %v, want it to wrap %v", err, tt.wantIs)
			}
			if !slices.Equal(seqs, tt.wantSeqs) {
				t.Errorf("readOn handed out %v, want %v", seqs, tt.wantSeqs)
			}
			if len(froms) < len(tt.wantFroms) || !slices.Equal(froms[:len(tt.wantFroms)], tt.wantFroms) {
				t.Errorf("consumers created from %v, want %v first", froms, tt.wantFroms)
			}
			if tt.leaderLast != nil && slices.ContainsFunc(froms[1:], func(f uint64) bool { return f != froms[1] }) {
				t.Errorf("consumers created from %v, want every one after the first from the same sequence", froms)
			}
		})
	}
}

// attempt is what one of TestReadOnCreatesTheConsumerAgain's consumers
// hands out, and the error it ends with.
type attempt struct {
	seqs []uint64
	err  error
}
