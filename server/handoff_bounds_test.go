package server

import "testing"

// TestHandoffHoldsExactlyItsLimit: while a replay is behind,
// the handoff holds up to limit live results, and the next one makes the
// subscriber too slow: not one more is held. Guards against `len(h.held) >=
// h.limit` loosened to `>` in sharedExecutions.deliver (shared.go).
func TestHandoffHoldsExactlyItsLimit(t *testing.T) {
	const limit = 3
	f := newResumed(t, limit)
	r, sub, replay, shared, op := f.r, f.sub, f.replay, f.shared, f.op
	r.deliver(replay, op, &payload{pos: 1}) // the replay is at 1
	for pos := uint64(10); pos < 10+limit; pos++ {
		r.deliver(shared, op, &payload{pos: pos})
	}
	if _, slow := sub.got(); slow != 0 {
		t.Fatalf("too slow after %d held live results, its limit", limit)
	}
	if held := len(op.handoff.held); held != limit {
		t.Fatalf("%d live results held, want %d", held, limit)
	}
	r.deliver(shared, op, &payload{pos: 10 + limit})
	if _, slow := sub.got(); slow != 1 {
		t.Fatalf("tooSlow called %d times once a live result beyond the limit of %d arrived, want 1 (held %d)", slow, limit, len(op.handoff.held))
	}
}

// TestHandoffWithoutPositionsKeepsTheReplay: when events
// carry no position, a live result cannot be placed against the replay's:
// it is not written, and the replay, which goes on live, keeps serving the
// subscriber (it is not retired). Guards against the `case p.pos == 0` of
// sharedExecutions.deliver (shared.go) dropped: the live result is held
// and the replay retired at once, and the subscriber loses the events it
// would have replayed.
func TestHandoffWithoutPositionsKeepsTheReplay(t *testing.T) {
	f := newResumed(t, 5)
	r, ctx, sub, replay, shared, op := f.r, f.ctx, f.sub, f.replay, f.shared, f.op
	r.deliver(replay, op, &payload{})
	r.deliver(shared, op, &payload{})
	r.deliver(replay, op, &payload{})
	if replay.retired.Load() || ctx.Err() != nil {
		t.Fatal("the replay was retired by a live result without a position")
	}
	if written, _ := sub.got(); len(written) != 2 {
		t.Fatalf("written %v, want the replay's two results only", written)
	}
}

// TestHandoffFailureIsWrittenOnce: a resolver that fails in
// both executions of a resumed subscriber (the replay's and the shared
// one) has its error written once, and nothing after it (deliver's
// h.failed). Guards against that check dropped: the client would get the error
// twice, or events after its subscription's error.
func TestHandoffFailureIsWrittenOnce(t *testing.T) {
	f := newResumed(t, 5)
	r, sub, replay, shared, op := f.r, f.sub, f.replay, f.shared, f.op
	r.deliver(replay, op, &payload{failed: true})
	r.deliver(shared, op, &payload{failed: true})
	r.deliver(replay, op, &payload{pos: 7})
	if written, _ := sub.got(); len(written) != 1 || written[0] != failedPos {
		t.Fatalf("written %v, want the failed result once and nothing after it", written)
	}
}
