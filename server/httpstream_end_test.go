package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/auth"
)

// newUnstartedSingleStream makes a single-connection-mode stream of r's
// transport writing into a recorder, not started (no session counted).
func newUnstartedSingleStream(t *testing.T, r *replica) (*httpStream, *httptest.ResponseRecorder) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/graphql", nil)
	st := r.server.sseSingle.httpStreams.newStream(rec, req, sseSingleFormat{})
	st.ops = newStreamOps()
	return st, rec
}

// TestSingleStreamExpiryKeepsFinishedResult: in single connection
// mode, a query that finished (its result and its complete queued) just as
// the stream's credentials expire must still reach the client: README says
// expiry ends "every operation on it" with UNAUTHENTICATED, and an
// operation that already ended has its own result and complete. loop picks
// at random between its wake-up and the expiry when both are ready (the
// loop was busy writing, say), and on expiry calls fail, which writes an
// error only for the operations still running and drops the queue: the
// finished query gets neither its result nor its complete, and
// graphql-sse's client, which retries an operation it never saw complete,
// runs it (a mutation too) a second time on its next stream.
func TestSingleStreamExpiryKeepsFinishedResult(t *testing.T) {
	r := newReplica(t, nil)
	const rounds = 40
	expired := auth.Identity{UserID: "ann", ExpiresAt: time.Now().Add(-time.Millisecond)}
	if lost := finishedOperationSurvives(t, r, rounds, "q1", expired, func(*httpStream) {}); lost > 0 {
		t.Fatalf("in %d of %d rounds the query that finished before the expiry lost its result and its complete", lost, rounds)
	}
}

// finishedOperationSurvives runs a single-connection-mode stream's loop
// rounds times, each with an operation of id that has finished (its
// result and complete queued) as ending happens (the credentials of
// identity expired, or a drain), and counts the rounds in which the
// client did not get that result and complete.
func finishedOperationSurvives(t *testing.T, r *replica, rounds int, id string, identity auth.Identity, ending func(*httpStream)) (lost int) {
	t.Helper()
	for i := range rounds {
		st, rec := newUnstartedSingleStream(t, r)
		base := auth.NewContext(context.Background(), identity)
		op, _, status := st.ops.add(base, id, st)
		if op == nil {
			t.Fatalf("round %d: add: %d", i, status)
		}
		st.ops.busy.Done()
		// What runSingle does once the operation has its result.
		if !st.ops.remove(op) {
			t.Fatal("remove")
		}
		op.cancel()
		st.enqueue(streamItem{op: op, p: &payload{bytes: []byte(`{"data":{"x":1}}`)}})
		st.enqueue(streamItem{op: op})
		ending(st)

		ctx, cancel := context.WithTimeout(base, 5*time.Second)
		done := make(chan struct{})
		go func() { defer close(done); st.loop(ctx) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("loop did not return")
		}
		cancel()
		body := rec.Body.String()
		if !strings.Contains(body, `event: complete`+"\n"+`data: {"id":"`+id+`"}`) || !strings.Contains(body, `"x":1`) {
			lost++
			if lost == 1 {
				t.Logf("round %d: the stream ended with:\n%q", i, body)
			}
		}
	}
	return lost
}

// TestDisconnectKeepsSlowConsumerFailure: a stream already ended as
// a slow consumer (counted in herald_ws_slow_consumer_closes_total, its
// queue dropped) and then disconnected by an administrator before its
// goroutine wrote the end must end as counted, with SLOW_CONSUMER, as a
// WebSocket does (chooseClose keeps the first close chosen): disconnect
// overwrites the failure, and the client gets FORBIDDEN for a close the
// metrics count as a slow consumer.
func TestDisconnectKeepsSlowConsumerFailure(t *testing.T) {
	r := newReplica(t, nil)
	st, rec := r.recordedStream(sseFormat{})
	m := r.server.sseSingle.httpStreams.metrics
	before := testutil.ToFloat64(m.slowCloses)
	st.tooSlow(nil, slowConsumer)
	st.disconnect()
	if more, _ := st.flush(); more {
		t.Fatal("the stream goes on")
	}
	counted := testutil.ToFloat64(m.slowCloses) - before
	body := rec.Body.String()
	if counted != 1 {
		t.Fatalf("slow consumer closes counted: %v, want 1", counted)
	}
	if !strings.Contains(body, codeSlowConsumer) {
		t.Fatalf("counted as a slow consumer, but the stream ended with:\n%q", body)
	}
}

// TestSingleStreamDrainKeepsFinishedResult: a drain tells a
// single-connection-mode stream to go away. A query (or mutation) that had
// finished, its result and complete queued, must still reach the client:
// a WebSocket's goAway closes with 1001 only after what is queued
// (closeOrderly), and graphql-sse's client, which does not resume, sends
// any operation it never saw complete again on its next stream, so a lost
// mutation result makes it run twice. loop picks at random between its
// wake-up and st.away when both are ready, and on away writes the go-away
// (nothing, for SSE) and returns without flushing the queue.
func TestSingleStreamDrainKeepsFinishedResult(t *testing.T) {
	r := newReplica(t, nil)
	const rounds = 40
	if lost := finishedOperationSurvives(t, r, rounds, "m1", auth.Identity{UserID: "ann"}, (*httpStream).goAway); lost > 0 {
		t.Fatalf("in %d of %d rounds the operation that finished before the drain lost its result and its complete", lost, rounds)
	}
}
