package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestStreamQueueBounds: an HTTP stream's queue takes
// QueueMessages events and no more, and events until it holds QueueBytes,
// then the stream is a slow consumer; an operation's end is taken whatever
// the bytes (httpStream.enqueue). Guards against `>=` loosened to `>` on either
// bound, and the `size > 0` exemption of an operation's end dropped.
func TestStreamQueueBounds(t *testing.T) {
	const items, bytes = 4, 100
	r := newReplica(t, func(o *Options) { o.QueueMessages, o.QueueBytes = items, bytes })
	newStream := func() *httpStream {
		st, _ := r.recordedStream(sseFormat{})
		return st
	}
	failed := func(st *httpStream) bool {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.failure != nil
	}
	op := &operation{id: "1", idJSON: `"1"`}
	small := &payload{bytes: []byte(`{"data":{}}`)} // 11 bytes

	t.Run("messages", func(t *testing.T) {
		st := newStream()
		for i := range items {
			st.enqueue(streamItem{op: op, p: small, event: true})
			if failed(st) {
				t.Fatalf("slow consumer at event %d of a queue of %d", i+1, items)
			}
		}
		st.enqueue(streamItem{op: op, p: small, event: true})
		if !failed(st) {
			t.Fatalf("event %d queued in a queue of %d messages", items+1, items)
		}
	})
	t.Run("bytes", func(t *testing.T) {
		st := newStream()
		big := &payload{bytes: make([]byte, bytes)} // fills the bytes at once
		st.enqueue(streamItem{op: op, p: big, event: true})
		if failed(st) {
			t.Fatal("slow consumer at the first event")
		}
		st.enqueue(streamItem{op: op}) // an operation's end: taken whatever the bytes
		if failed(st) {
			t.Fatal("an operation's end made a stream holding its bytes a slow consumer")
		}
		st.enqueue(streamItem{op: op, p: small, event: true})
		if !failed(st) {
			t.Fatalf("an event queued behind %d bytes, the limit", bytes)
		}
	})
}

// TestTooSlowKeepsTheFirstFailure: a stream its user was
// disconnected from (FORBIDDEN) and then found too slow ends with
// FORBIDDEN, and is not counted as a slow consumer: the first failure
// stands, as a socket's first close does. Guards against the `st.failure == nil`
// check of httpStream.tooSlow dropped.
func TestTooSlowKeepsTheFirstFailure(t *testing.T) {
	r := newReplica(t, nil)
	st, rec := r.recordedStream(sseFormat{})
	m := r.server.sseSingle.httpStreams.metrics
	before := testutil.ToFloat64(m.slowCloses)
	st.disconnect()
	st.tooSlow(nil, slowConsumer)
	if more, _ := st.flush(); more {
		t.Fatal("the stream goes on")
	}
	body := rec.Body.String()
	if !strings.Contains(body, codeForbidden) || strings.Contains(body, codeSlowConsumer) {
		t.Fatalf("disconnected, then too slow: the stream ended with\n%q\nwant FORBIDDEN", body)
	}
	if counted := testutil.ToFloat64(m.slowCloses) - before; counted != 0 {
		t.Fatalf("slow consumer closes counted: %v, want 0", counted)
	}
}

// recordedStream is an event stream of r's transports in format f, as a
// GET would open, whose output rec records.
func (r *replica) recordedStream(f streamFormat) (st *httpStream, rec *httptest.ResponseRecorder) {
	rec = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/graphql", nil)
	return r.server.sseSingle.httpStreams.newStream(rec, req, f), rec
}
