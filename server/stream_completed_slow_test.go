package server

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCompletedStreamIsNotTooSlow: a resumed subscription's
// stream whose execution completed (streamEnded, its results and end
// queued) and which a live result then finds too slow (shared.go's
// handoff, its held results full) ends as it completed: nothing more is
// delivered to a completed stream (enqueue, denied), so it cannot have
// fallen behind, and its queued results are not dropped for a
// SLOW_CONSUMER error counted as a slow close.
func TestCompletedStreamIsNotTooSlow(t *testing.T) {
	r := newReplica(t, nil)
	st, rec := r.recordedStream(sseFormat{})
	m := r.server.sseSingle.httpStreams.metrics
	before := testutil.ToFloat64(m.slowCloses)
	st.enqueue(streamItem{p: &payload{bytes: []byte(`{"data":{"x":1}}`)}, event: true})
	st.streamEnded(nil)
	st.tooSlow(nil, slowConsumer)
	if more, _ := st.flush(); more {
		t.Fatal("the stream goes on")
	}
	body := rec.Body.String()
	if !strings.Contains(body, `"x":1`) || strings.Contains(body, codeSlowConsumer) {
		t.Fatalf("completed, then too slow: the stream ended with\n%q\nwant its result and a normal end", body)
	}
	if counted := testutil.ToFloat64(m.slowCloses) - before; counted != 0 {
		t.Fatalf("slow consumer closes counted: %v, want 0", counted)
	}
}
