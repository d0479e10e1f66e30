package server

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/chat"
)

// The engine's test subscribers never fill a queue: a replay need not wait
// for them.
func (s *recordingSub) awaitRoom(context.Context) {}
func (s *leavingSub) awaitRoom(context.Context)   {}

// A backlog that a resumed subscriber replays: many times the queue
// (backlogEvents × ~2 KB against 16 messages or 32 KiB) and the
// connection's small buffers.
const (
	backlogEvents = 200
	paceQueue     = 16
	paceBytes     = 32 << 10
)

// newPacedReplica starts a replica with a small queue and small send
// buffers, and a room holding backlogEvents messages of ~2 KB; it returns
// the room and the cursor of its first message.
func newPacedReplica(t *testing.T) (r *replica, room, first string) {
	t.Helper()
	r = newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.QueueMessages = paceQueue
		o.QueueBytes = paceBytes
	}, withSmallSendBuffers) // what the client does not read stays in the queue
	room = r.room("backlog")
	for i := range backlogEvents {
		m := r.post(room, "poster", backlogText(i))
		if i == 0 {
			first = graphCursor(t, r, m)
		}
	}
	return r, room, first
}

func backlogText(i int) string { return fmt.Sprintf("%04d %s", i, strings.Repeat("x", 2000)) }

// TestResumeReplayIsPacedToItsClient: a subscriber resuming after a
// backlog many times its queue, whose client stalls for a while and then
// reads at a modest pace, receives the whole backlog in order and is not
// closed as a slow consumer: nothing live is happening, so its replay waits
// for the client (sharedExecutions.paceReplay) rather than overflowing the
// queue. Over a WebSocket and an event stream.
func TestResumeReplayIsPacedToItsClient(t *testing.T) {
	r, room, first := newPacedReplica(t)
	vars := map[string]any{"r": room, "after": first}
	for _, tc := range []struct {
		name string
		// resume subscribes after first with a client that reads nothing
		// until read is called, which returns the texts of want events.
		resume func(t *testing.T, r *replica) (read func(want int) []string)
	}{
		{"websocket", func(t *testing.T, r *replica) func(int) []string {
			c := r.dialTinyWindow("resumer")
			c.subscribe("subscribe", "r", postedSub, vars)
			return func(want int) []string {
				var texts []string
				for len(texts) < want {
					f, err := c.read(5 * time.Second)
					if err != nil {
						t.Fatalf("after %d of %d events: %v", len(texts), want, err)
					}
					if f.keepalive() {
						continue
					}
					var got struct{ MessagePosted struct{ Text string } }
					f.data(t, &got)
					texts = append(texts, got.MessagePosted.Text)
					if len(texts)%10 == 0 {
						time.Sleep(time.Millisecond) // a modest client
					}
				}
				return texts
			}
		}},
		{"event stream", func(t *testing.T, r *replica) func(int) []string {
			c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: vars, dial: tinyReceiveBuffer, paused: true})
			if c == nil {
				t.Fatal(body)
			}
			return func(want int) []string {
				c.resume()
				var texts []string
				for len(texts) < want {
					texts = append(texts, c.next().postedText(t))
				}
				return texts
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r.forTest(t)
			slowBefore := testutil.ToFloat64(r.server.ws.metrics.slowCloses)
			read := tc.resume(t, r)
			waitFor(t, "the live execution and the replay", func() bool { return r.server.ws.execs.count() == 2 })
			time.Sleep(300 * time.Millisecond) // unpaced, the replay overflows the queue meanwhile
			for i, text := range read(backlogEvents - 1) {
				if want := backlogText(i + 1); text != want {
					t.Fatalf("event %d is %.10q, want %.10q", i, text, want)
				}
			}
			if n := testutil.ToFloat64(r.server.ws.metrics.slowCloses) - slowBefore; n != 0 {
				t.Fatalf("%v slow-consumer closes, want none", n)
			}
		})
	}
}

// TestWaitingReplayEndsWithItsSubscriber: a replay waiting for a client
// that reads nothing stops at once when its subscriber goes: the client
// completes the subscription or drops its connection (a socket's, an event
// stream's), or the replica drains (last, as it ends the replica). No
// execution is left running.
func TestWaitingReplayEndsWithItsSubscriber(t *testing.T) {
	r, room, first := newPacedReplica(t)
	vars := map[string]any{"r": room, "after": first}
	stalledSocket := func(r *replica) *wsClient {
		c := r.dialTinyWindow("stalled")
		c.subscribe("subscribe", "r", postedSub, vars)
		return c
	}
	for _, tc := range []struct {
		name string
		// start resumes with a client that reads nothing, and returns
		// how the subscriber goes.
		start  func(t *testing.T, r *replica) (end func())
		within time.Duration
	}{
		{"socket completes", func(_ *testing.T, r *replica) func() {
			c := stalledSocket(r)
			return func() { c.send(map[string]any{"id": "r", "type": "complete"}) }
		}, 2 * time.Second},
		{"socket dropped", func(_ *testing.T, r *replica) func() {
			c := stalledSocket(r)
			return func() { _ = c.conn.Close() }
		}, 2 * time.Second},
		{"event stream dropped", func(t *testing.T, r *replica) func() {
			c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: vars, dial: tinyReceiveBuffer, paused: true})
			if c == nil {
				t.Fatal(body)
			}
			return func() { _ = c.resp.Body.Close() }
		}, 2 * time.Second},
		{"drain", func(t *testing.T, r *replica) func() {
			stalledSocket(r)
			return func() {
				// The stalled client holds its socket until the drain
				// drops it, once ctx ends; the replay must not outlast
				// the drain.
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				if err := r.server.Drain(ctx, 0); err != nil && strings.Contains(err.Error(), "executions") {
					t.Errorf("Drain: %v", err)
				}
			}
		}, 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r.forTest(t)
			slowBefore := testutil.ToFloat64(r.server.ws.metrics.slowCloses)
			end := tc.start(t, r)
			waitFor(t, "the live execution and the replay", func() bool { return r.server.ws.execs.count() == 2 })
			time.Sleep(100 * time.Millisecond) // the replay fills the queue and waits
			if n := testutil.ToFloat64(r.server.ws.metrics.slowCloses) - slowBefore; n != 0 {
				t.Fatalf("%v slow-consumer closes while the replay should wait", n)
			}
			start := time.Now()
			end()
			waitFor(t, "every execution to stop", func() bool { return runningExecutions(r.server.ws.execs) == 0 })
			if took := time.Since(start); took > tc.within {
				t.Fatalf("the executions stopped %v after the subscriber went", took)
			}
			if n := testutil.ToFloat64(r.server.ws.metrics.slowCloses) - slowBefore; n != 0 {
				t.Fatalf("%v slow-consumer closes as the subscriber went", n)
			}
		})
	}
}

// runningExecutions counts the executions whose goroutine has not
// returned (sharedExecutions.count forgets a stopped one before it has).
func runningExecutions(r *sharedExecutions) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// tickingExec runs "subscription($after: String) { ticks(after: $after) }":
// the live form (no cursor) yields liveTicks results, the replay (with one)
// yields results until its execution is stopped; both end when it is.
type tickingExec struct {
	stubResumeExec
	liveTicks int
}

func (x tickingExec) DispatchOperation(ctx context.Context, rc *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	left := x.liveTicks
	replay := rc.Variables["after"] != nil
	return func(ctx context.Context) *graphql.Response {
		if !replay && left == 0 || ctx.Err() != nil {
			<-ctx.Done()
			return nil
		}
		left--
		return &graphql.Response{Data: json.RawMessage(`{"ticks":1}`)}
	}, ctx
}

// pacingSub counts deliveries and holds every awaitRoom until release
// yields or ctx ends.
type pacingSub struct {
	delivered atomic.Int32
	awaits    atomic.Int32
	waiting   chan struct{} // receives when an awaitRoom begins
	release   chan struct{}
}

func (s *pacingSub) deliver(*operation, *payload) { s.delivered.Add(1) }
func (s *pacingSub) awaitRoom(ctx context.Context) {
	s.awaits.Add(1)
	s.waiting <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
}
func (s *pacingSub) streamEnded(*operation)             {}
func (s *pacingSub) tooSlow(*operation, string)         {}
func (s *pacingSub) denied(*operation, *gqlerror.Error) {}

// TestReplayWaitsOutsideLocksAndSharedExecutionsNever: the engine asks
// only a replay to wait for its subscriber, before each result and under
// no lock of its execution; a shared execution delivers without asking.
// A replay stopped while it waits (its subscriber left) delivers nothing
// more and its goroutine returns.
func TestReplayWaitsOutsideLocksAndSharedExecutionsNever(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Name: "stub.graphql",
		Input: `type Query { x: Int } type Subscription { ticks(after: String): Int }`})
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := newSharedExecutions(m, slog.New(slog.DiscardHandler), 16, nil)
	defer r.close(context.Background(), time.Second)
	exec := tickingExec{stubResumeExec: stubResumeExec{schema: schema}, liveTicks: 50}
	join := func(sub subscriber, after any) *operation {
		t.Helper()
		raw := &graphql.RawParams{Query: stubResumeQuery, Variables: map[string]any{"after": after}}
		rc, errs := exec.CreateOperationContext(context.Background(), raw)
		if errs != nil {
			t.Fatal(errs)
		}
		op := &operation{id: "1", idJSON: `"1"`, sub: sub}
		r.join(op, context.Background(), exec, raw, rc, "", "after")
		return op
	}

	shared := &pacingSub{waiting: make(chan struct{}, 100), release: make(chan struct{})}
	live := join(shared, nil)
	waitFor(t, "the shared execution's results", func() bool { return shared.delivered.Load() == 50 })
	if n := shared.awaits.Load(); n != 0 {
		t.Fatalf("a shared execution waited for its subscriber %d times", n)
	}
	r.leave(live)

	exec.liveTicks = 0 // the live form yields nothing: only the replay delivers
	resumed := &pacingSub{waiting: make(chan struct{}), release: make(chan struct{})}
	op := join(resumed, "c1")
	receive(t, resumed.waiting, 5*time.Second, "the replay to wait before its first result")
	if n := resumed.delivered.Load(); n != 0 {
		t.Fatalf("%d results delivered before the wait", n)
	}
	locked := make(chan struct{})
	go func() {
		op.handoff.private.mu.Lock()
		//lint:ignore SA2001 taking the lock at all is what is tested
		op.handoff.private.mu.Unlock()
		close(locked)
	}()
	receive(t, locked, 5*time.Second, "the replay's lock while it waits")
	resumed.release <- struct{}{}
	receive(t, resumed.waiting, 5*time.Second, "the replay to wait before its second result")
	if n := resumed.delivered.Load(); n != 1 {
		t.Fatalf("%d results delivered after one wait, want 1", n)
	}
	r.leave(op)
	waitFor(t, "the replay to stop", func() bool { return runningExecutions(r) == 0 })
	if n := resumed.delivered.Load(); n != 1 {
		t.Fatalf("%d results delivered, want 1: the replay delivered after its subscriber left", n)
	}
}

// TestOutQueueAwaitRoom: a replay's wait for a socket's queue ends when the
// writer takes the queue, when the queue ends (teardown), or when the
// replay ends, and not before; a queue at or below half its items and half
// its bytes has room at once. A sealed queue (a close chosen) is not room:
// the writer's last take ends the wait.
func TestOutQueueAwaitRoom(t *testing.T) {
	item := outItem{kind: frameRaw, raw: strings.Repeat("x", 100)}
	for _, tc := range []struct {
		name   string
		fill   int  // items pushed first
		atOnce bool // the wait ends without anything else happening
		end    func(q *outQueue, stop chan struct{})
	}{
		{name: "empty", atOnce: true},
		{name: "half the items", fill: 4, atOnce: true},
		{name: "above half the items, taken", fill: 5, end: func(q *outQueue, _ chan struct{}) { q.take() }},
		{name: "sealed, then its last take", fill: 5, end: func(q *outQueue, _ chan struct{}) { q.seal(); q.takeLast() }},
		{name: "queue closed", fill: 8, end: func(q *outQueue, _ chan struct{}) { q.close() }},
		{name: "replay stopped", fill: 8, end: func(_ *outQueue, stop chan struct{}) { close(stop) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newOutQueue(8, 1<<20, func() {})
			for range tc.fill {
				if !q.push(item) {
					t.Fatal("push refused")
				}
			}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				q.awaitRoom(stop)
			}()
			if tc.atOnce {
				receive(t, done, 5*time.Second, "the wait to end at once")
				return
			}
			select {
			case <-done:
				t.Fatal("the wait ended with the queue above its low-water mark")
			case <-time.After(20 * time.Millisecond):
			}
			if tc.name == "sealed, then its last take" {
				q.seal()
				select {
				case <-done:
					t.Fatal("the wait ended at the seal, before the writer's last take")
				case <-time.After(20 * time.Millisecond):
				}
			}
			tc.end(q, stop)
			receive(t, done, 5*time.Second, "the wait to end")
		})
	}

	// Half the bytes is a mark of its own.
	q := newOutQueue(100, 1000, func() {})
	q.push(outItem{kind: frameRaw, raw: strings.Repeat("x", 600)})
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.awaitRoom(nil)
	}()
	select {
	case <-done:
		t.Fatal("the wait ended with the queue above half its bytes")
	case <-time.After(20 * time.Millisecond):
	}
	q.take()
	receive(t, done, 5*time.Second, "the wait to end once taken")
}

// TestOutQueuePushIsFreeWithoutWaiters: the queue's push and take, the
// path of every frame, allocate nothing in steady state for the pacing.
func TestOutQueuePushIsFreeWithoutWaiters(t *testing.T) {
	q := newOutQueue(1024, 1<<20, func() {})
	item := outItem{kind: frameRaw, raw: "x"}
	if n := testing.AllocsPerRun(1000, func() {
		q.push(item)
		q.push(item)
		q.take()
		q.take()
	}); n != 0 {
		t.Fatalf("push and take allocate %v times", n)
	}
}
