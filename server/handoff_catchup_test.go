package server

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// handoverSub records what the engine writes for its operation, and holds
// every awaitRoom until release yields or ctx ends.
type handoverSub struct {
	mu      sync.Mutex
	written []uint64 // positions of the results delivered; failedPos for a failed one
	slow    int      // tooSlow calls

	waiting chan struct{} // receives when an awaitRoom begins
	release chan struct{}
}

const failedPos = ^uint64(0)

func (s *handoverSub) deliver(_ *operation, p *payload) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.failed {
		s.written = append(s.written, failedPos)
		return
	}
	s.written = append(s.written, p.pos)
}

func (s *handoverSub) awaitRoom(ctx context.Context) {
	s.waiting <- struct{}{}
	select {
	case <-s.release:
	case <-ctx.Done():
	}
}

// resumed is a resumed subscriber's operation between its private replay
// and the shared execution, for the handoff's unit tests: ctx ends when
// the replay is cancelled (retired), and at the end of the test.
type resumed struct {
	r      *sharedExecutions
	ctx    context.Context
	cancel context.CancelFunc // the replay's: retiring it calls this
	sub    *handoverSub
	replay *execution
	shared *execution
	op     *operation
}

func newResumed(t *testing.T, limit int) resumed {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sub := &handoverSub{waiting: make(chan struct{}), release: make(chan struct{})}
	replay := &execution{replay: true, cancel: cancel}
	op := &operation{id: "1", idJSON: `"1"`, sub: sub, handoff: &handoff{limit: limit, private: replay}}
	replay.members = []*operation{op}
	return resumed{r: &sharedExecutions{}, ctx: ctx, cancel: cancel, sub: sub, replay: replay, shared: &execution{}, op: op}
}

func (s *handoverSub) tooSlow(*operation, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slow++
}

func (s *handoverSub) streamEnded(*operation)             {}
func (s *handoverSub) denied(*operation, *gqlerror.Error) {}

func (s *handoverSub) got() (written []uint64, slow int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.written), s.slow
}

// TestHandoffCatchesUpAtItsSubscribersPace: a replay that reaches the live
// results its handoff holds writes those it has not covered one at a time,
// each after its subscriber has room (sharedExecutions.catchUp), under no
// lock of its execution or its handoff, with the live results that arrive
// meanwhile held behind them; then the shared execution takes over and the
// replay is retired. The catch-up stops, writing nothing more, when the
// replay's context ends (its subscriber left), after a failed result
// (written at once), and the subscriber is too slow when the live stream
// outruns it meanwhile (more than the handoff's limit held).
func TestHandoffCatchesUpAtItsSubscribersPace(t *testing.T) {
	const limit = 5
	for _, tc := range []struct {
		name string
		// during runs while the catch-up waits for room before its first
		// result (position 4), with live delivering a live result.
		during      func(live func(p *payload), stop context.CancelFunc)
		wantWritten []uint64
		wantLive    bool // the shared execution took over
		wantSlow    bool
	}{
		{
			name:        "hands over",
			during:      func(live func(*payload), _ context.CancelFunc) { live(&payload{pos: 6}) },
			wantWritten: []uint64{1, 2, 3, 4, 5, 6},
			wantLive:    true,
		},
		{
			name:        "left meanwhile",
			during:      func(_ func(*payload), stop context.CancelFunc) { stop() },
			wantWritten: []uint64{1, 2, 3},
		},
		{
			name:        "failed meanwhile",
			during:      func(live func(*payload), _ context.CancelFunc) { live(&payload{failed: true}) },
			wantWritten: []uint64{1, 2, 3, failedPos},
		},
		{
			name: "the live stream outruns it",
			during: func(live func(*payload), stop context.CancelFunc) {
				for pos := uint64(6); pos <= 6+limit; pos++ {
					live(&payload{pos: pos})
				}
				stop() // as the transport's close does
			},
			wantWritten: []uint64{1, 2, 3},
			wantSlow:    true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newResumed(t, limit)
			r, ctx, cancel, sub, replay, shared, op := f.r, f.ctx, f.cancel, f.sub, f.replay, f.shared, f.op
			h := op.handoff
			fromReplay := func(pos uint64) { r.deliver(replay, op, &payload{pos: pos}) }
			fromLive := func(p *payload) { r.deliver(shared, op, p) }

			fromReplay(1)
			fromLive(&payload{pos: 3}) // the live stream starts at 3, held
			fromLive(&payload{pos: 4})
			fromReplay(2)
			fromLive(&payload{pos: 5})
			fromReplay(3) // reaches the held results
			if written, _ := sub.got(); !slices.Equal(written, []uint64{1, 2, 3}) {
				t.Fatalf("written %v before the catch-up, want [1 2 3]: the held results are written by the catch-up", written)
			}

			caughtUp := make(chan struct{})
			go func() {
				defer close(caughtUp)
				r.catchUp(replay, ctx)
			}()
			receive(t, sub.waiting, 5*time.Second, "the catch-up to wait before its first result")
			if !replay.mu.TryLock() {
				t.Fatal("the catch-up waits holding its execution's lock")
			}
			replay.mu.Unlock()
			if !h.mu.TryLock() {
				t.Fatal("the catch-up waits holding its handoff's lock")
			}
			h.mu.Unlock()
			tc.during(fromLive, cancel)
			// Release every wait until the catch-up returns.
			for done := false; !done; {
				select {
				case sub.release <- struct{}{}:
				case <-sub.waiting:
				case <-caughtUp:
					done = true
				case <-time.After(5 * time.Second):
					t.Fatal("the catch-up did not return")
				}
			}

			h.mu.Lock()
			live := h.live
			h.mu.Unlock()
			if live != tc.wantLive || replay.retired.Load() != tc.wantLive {
				t.Fatalf("switched to the shared execution: %v, replay retired: %v; want %v", live, replay.retired.Load(), tc.wantLive)
			}
			if tc.wantLive && ctx.Err() == nil {
				t.Fatal("the retired replay's context is not cancelled")
			}
			// What comes next: from the shared execution once it took
			// over; from the replay (retired, or stopped) never.
			fromLive(&payload{pos: 7})
			fromReplay(8)
			want := tc.wantWritten
			if tc.wantLive {
				want = append(slices.Clone(want), 7)
			}
			written, slow := sub.got()
			if !slices.Equal(written, want) {
				t.Fatalf("written %v, want %v", written, want)
			}
			if slow > 0 != tc.wantSlow {
				t.Fatalf("too slow %d times, want %v", slow, tc.wantSlow)
			}
		})
	}
}

// TestHandoffGoesLiveAtOnceWhenTheReplayIsAhead: a replay already past the
// first live result hands over at once, writing nothing held (it wrote it
// all), and without waiting for its subscriber; the live results after
// what it wrote follow, and its own no more.
func TestHandoffGoesLiveAtOnceWhenTheReplayIsAhead(t *testing.T) {
	f := newResumed(t, 5)
	r, ctx, sub, replay, op := f.r, f.ctx, f.sub, f.replay, f.op
	for pos := range uint64(4) {
		r.deliver(replay, op, &payload{pos: pos + 1})
	}
	shared := &execution{}
	r.deliver(shared, op, &payload{pos: 3}) // the shared execution lags behind
	if !replay.retired.Load() || ctx.Err() == nil {
		t.Fatal("the replay is not retired when the live stream's first result is one it wrote")
	}
	r.catchUp(replay, ctx) // nothing to catch up: returns without waiting
	r.deliver(shared, op, &payload{pos: 4})
	r.deliver(shared, op, &payload{pos: 5})
	r.deliver(replay, op, &payload{pos: 5})
	if written, _ := sub.got(); !slices.Equal(written, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("written %v, want [1 2 3 4 5]", written)
	}
}
