package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testLogger discards logs unless PUBSUB_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("PUBSUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testCtx is a context bounded by d and by the test's deadline.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// freeAddr returns a 127.0.0.1 "host:port" that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close probe listener: %v", err)
	}
	return addr
}

// openLog opens a Log with test defaults filled in and closes it at cleanup.
func openLog(t *testing.T, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger()
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	l, err := Open(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return l
}

// openEmbedded opens an embedded Log in a fresh temp dir.
func openEmbedded(t *testing.T, opts Options) *Log {
	t.Helper()
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	return openLog(t, opts)
}

// startNATS runs a plain nats-server on a random 127.0.0.1 port, with or
// without JetStream, and returns its client URL.
func startNATS(t *testing.T, jetStream bool) string {
	t.Helper()
	return startNATSWith(t, jetStream, nil)
}

// startNATSWith is startNATS with the server's options changed by change
// (if not nil) before it starts.
func startNATSWith(t *testing.T, jetStream bool, change func(*server.Options)) string {
	t.Helper()
	opts := &server.Options{
		ServerName: "test-" + strconv.FormatBool(jetStream),
		Host:       "127.0.0.1",
		Port:       server.RANDOM_PORT,
		JetStream:  jetStream,
		StoreDir:   t.TempDir(),
		NoSigs:     true,
		NoLog:      true,
	}
	if change != nil {
		change(opts)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("new nats server: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	return srv.ClientURL()
}

// rawJS is a plain JetStream client on url, for setting up and tampering
// with streams behind the Log's back. Closed at cleanup.
func rawJS(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// createStream creates a stream on the server at url with a throw-away connection.
func createStream(t *testing.T, url string, cfg jetstream.StreamConfig) {
	t.Helper()
	if _, err := rawJS(t, url).CreateStream(testCtx(t, 5*time.Second), cfg); err != nil {
		t.Fatalf("create stream %s: %v", cfg.Name, err)
	}
}

// follower runs FollowDirectory in a goroutine and exposes what it delivers.
type follower struct {
	entries chan Entry
	done    chan error
	cancel  context.CancelFunc
}

// startFollow starts FollowDirectory(ctx, from); the test's cleanup stops it
// and waits.
func startFollow(t *testing.T, l *Log, from uint64) *follower {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	f := &follower{entries: make(chan Entry, 1000), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- l.FollowDirectory(ctx, from, func(e Entry) error {
			f.entries <- e
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(25 * time.Second):
			t.Error("FollowDirectory did not return after cancel")
		}
	})
	return f
}

// next waits for n entries.
func (f *follower) next(t *testing.T, n int, within time.Duration) []Entry {
	t.Helper()
	var got []Entry
	timer := time.NewTimer(within)
	defer timer.Stop()
	for len(got) < n {
		select {
		case e := <-f.entries:
			got = append(got, e)
		case err := <-f.done:
			t.Fatalf("FollowDirectory returned early after %d of %d entries: %v", len(got), n, err)
		case <-timer.C:
			t.Fatalf("got %d of %d entries within %s: %+v", len(got), n, within, got)
		}
	}
	return got
}

// quiet asserts no further entry arrives for d.
func (f *follower) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case e := <-f.entries:
		t.Fatalf("unexpected extra entry: seq %d subject %q", e.Seq, e.Subject)
	case <-time.After(d):
	}
}

// stop cancels FollowDirectory and returns its result, failing if it takes over d.
func (f *follower) stop(t *testing.T, d time.Duration) error {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		f.done <- err // let the cleanup see it too
		return err
	case <-time.After(d):
		t.Fatalf("FollowDirectory did not return within %s of cancel", d)
		return nil
	}
}

func seqs(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func datas(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = string(e.Data)
	}
	return out
}

func mustAdd(t *testing.T, l *Log, key, data string) AppendResult {
	t.Helper()
	res, err := l.AddToDirectory(testCtx(t, 5*time.Second), key, []byte(data))
	if err != nil {
		t.Fatalf("AddToDirectory(%q, %q): %v", key, data, err)
	}
	return res
}

func mustAppendKeyed(t *testing.T, l *Log, key, rest, data string, o AppendOptions) AppendResult {
	t.Helper()
	res, err := l.AppendKeyed(testCtx(t, 5*time.Second), key, rest, []byte(data), o)
	if err != nil {
		t.Fatalf("AppendKeyed(%q, %q, %q, %+v): %v", key, rest, data, o, err)
	}
	return res
}

// appendChain appends data... to key under rest, each expecting the
// previous one's sequence, starting from expect; it returns the results.
func appendChain(t *testing.T, l *Log, key, rest string, expect uint64, data ...string) []AppendResult {
	t.Helper()
	out := make([]AppendResult, len(data))
	for i, d := range data {
		out[i] = mustAppendKeyed(t, l, key, rest, d, AppendOptions{ExpectLast: expect})
		expect = out[i].Seq
	}
	return out
}

func mustReadKey(t *testing.T, l *Log, key string, from uint64) ([]Entry, uint64) {
	t.Helper()
	var got []Entry
	last, err := l.ReadKey(testCtx(t, 10*time.Second), key, from, func(e Entry) error {
		got = append(got, e)
		return nil
	})
	if err != nil {
		t.Fatalf("ReadKey(%q, %d): %v", key, from, err)
	}
	return got, last
}

func mustDirectoryLastSeq(t *testing.T, l *Log) uint64 {
	t.Helper()
	seq, err := l.DirectoryLastSeq(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("DirectoryLastSeq: %v", err)
	}
	return seq
}

// flush makes sure the server has processed everything l sent so far (a
// Live's subscriptions, say) before another connection publishes.
func flush(t *testing.T, l *Log) {
	t.Helper()
	if err := l.nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// waitFor polls cond every 10ms until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recvLive waits for n entries from lv.
func recvLive(t *testing.T, lv *Live, n int, within time.Duration) []Entry {
	t.Helper()
	var got []Entry
	timer := time.NewTimer(within)
	defer timer.Stop()
	for len(got) < n {
		select {
		case e, ok := <-lv.Entries():
			if !ok {
				t.Fatalf("Entries closed after %d of %d entries", len(got), n)
			}
			got = append(got, e)
		case <-timer.C:
			t.Fatalf("got %d of %d live entries within %s: %+v", len(got), n, within, got)
		}
	}
	return got
}

// waitLost waits for lv's Lost signal and takes the report.
func waitLost(t *testing.T, lv *Live, within time.Duration) (all bool, keys []string) {
	t.Helper()
	select {
	case <-lv.Lost():
	case <-time.After(within):
		t.Fatalf("no Lost signal within %s", within)
	}
	return lv.TakeLost()
}

// publishBulk stores n entries on subject prefix+".<i>" with asynchronous
// publishes in windows of 1000, bypassing AppendKeyed's one round trip per
// entry.
func publishBulk(t *testing.T, l *Log, subjectPrefix string, n int) {
	t.Helper()
	const window = 1000
	var futures []jetstream.PubAckFuture
	for i := range n {
		f, err := l.js.PublishAsync(subjectPrefix+"."+strconv.Itoa(i), []byte(fmt.Sprint(i)))
		if err != nil {
			t.Fatalf("publish async #%d: %v", i, err)
		}
		futures = append(futures, f)
		if len(futures) < window && i < n-1 {
			continue
		}
		select {
		case <-l.js.PublishAsyncComplete():
		case <-time.After(30 * time.Second):
			t.Fatalf("%d async publishes not acknowledged within 30s", l.js.PublishAsyncPending())
		}
		for _, f := range futures {
			select {
			case err := <-f.Err():
				t.Fatalf("async publish to %s: %v", f.Msg().Subject, err)
			default:
			}
		}
		futures = futures[:0]
	}
}

var errStop = errors.New("stop here")
