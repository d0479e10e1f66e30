package server

import (
	"context"
	"strings"
	"testing"

	"github.com/heraldhq/herald/auth"
)

// TestSingleStreamTooSlowForEndedOperation: on a single-connection
// stream, a resumed subscription's handoff may call tooSlow for its
// operation after the operation has ended on the stream (the client's
// DELETE: streamOps.take, then release's leave; or ended/denied: remove,
// then leave) but before it has left its live execution. That operation
// is no longer the stream's: the stream, and every other operation on it,
// must go on, and the ended operation's complete must still go out.
func TestSingleStreamTooSlowForEndedOperation(t *testing.T) {
	r := newReplica(t, nil)
	st, rec := newUnstartedSingleStream(t, r)
	base := auth.NewContext(context.Background(), auth.Identity{UserID: "ann"})
	ended, _, status := st.ops.add(base, "ended", st)
	if ended == nil {
		t.Fatalf("add: %d", status)
	}
	st.ops.busy.Done()
	other, _, status := st.ops.add(base, "other", st)
	if other == nil {
		t.Fatalf("add: %d", status)
	}
	st.ops.busy.Done()
	// What ended does for an execution that completed by itself, up to
	// its leave; the handoff's live side calls tooSlow meanwhile.
	if !st.ops.remove(ended) {
		t.Fatal("remove")
	}
	st.enqueue(streamItem{op: ended})
	st.tooSlow(ended, "slow consumer: the replay fell behind the live stream; reconnect and resume")
	st.enqueue(streamItem{op: other, p: &payload{bytes: []byte(`{"data":{"x":1}}`)}, event: true})
	st.flush()
	body := rec.Body.String()
	if strings.Contains(body, codeSlowConsumer) || !strings.Contains(body, `"x":1`) ||
		!strings.Contains(body, "event: complete\ndata: {\"id\":\"ended\"}") {
		t.Fatalf("tooSlow for an operation that had ended on the stream failed the stream; it wrote:\n%q", body)
	}
}
