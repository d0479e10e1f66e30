package server

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// recordingSub records the positions delivered to each operation and who
// delivered them.
type recordingSub struct {
	mu   sync.Mutex
	got  map[*operation][]uint64
	busy atomic.Int32 // deliveries under way at once, to see helpers work beside the execution
	most atomic.Int32
}

func (s *recordingSub) deliver(op *operation, p *payload) {
	n := s.busy.Add(1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	s.mu.Lock()
	s.got[op] = append(s.got[op], p.pos)
	s.mu.Unlock()
	if p.pos%7 == 0 {
		time.Sleep(10 * time.Microsecond) // uneven chunks, so that helpers overlap
	}
	s.busy.Add(-1)
}
func (s *recordingSub) streamEnded(*operation)             {}
func (s *recordingSub) tooSlow(*operation, string)         {}
func (s *recordingSub) denied(*operation, *gqlerror.Error) {}

func TestFanoutHelpersDeliverEveryMemberOnceInOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		helpers int
		members int
	}{
		{"no helpers", 0, 300},
		{"small fan-out, one chunk", 3, fanoutChunk},
		{"one more than a chunk", 1, fanoutChunk + 1},
		{"large fan-out", 3, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFanoutHelpers(tc.helpers)
			defer h.close()
			r := &sharedExecutions{helpers: h}
			sub := &recordingSub{got: map[*operation][]uint64{}}
			e := &execution{}
			for range tc.members {
				e.members = append(e.members, &operation{sub: sub})
			}
			const events = 50
			for pos := uint64(1); pos <= events; pos++ {
				e.mu.RLock()
				h.deliverAll(r, e, &payload{pos: pos})
				e.mu.RUnlock()
				// deliverAll returns only once every member has the event.
				sub.mu.Lock()
				for i, op := range e.members {
					if got := sub.got[op]; len(got) != int(pos) || got[pos-1] != pos {
						sub.mu.Unlock()
						t.Fatalf("after event %d, member %d has %v", pos, i, got)
					}
				}
				sub.mu.Unlock()
			}
			if tc.helpers > 0 && tc.members > 4*fanoutChunk && sub.most.Load() < 2 {
				t.Errorf("at most %d deliveries ran at once: the helpers never took a chunk", sub.most.Load())
			}
			if tc.members <= fanoutChunk && sub.most.Load() > 1 {
				t.Errorf("a one-chunk fan-out ran %d deliveries at once: it should not be shared out", sub.most.Load())
			}
		})
	}
}

// A fan-out never waits for a helper that does not come: with the helpers
// stopped (or all busy), the execution delivers every chunk itself.
func TestFanoutHelpersStoppedExecutionDeliversAlone(t *testing.T) {
	h := newFanoutHelpers(2)
	h.close()
	h.close() // a second close is harmless (the server's drain and shutdown both close)
	r := &sharedExecutions{helpers: h}
	sub := &recordingSub{got: map[*operation][]uint64{}}
	e := &execution{}
	for range 10 * fanoutChunk {
		e.members = append(e.members, &operation{sub: sub})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for pos := uint64(1); pos <= 5; pos++ { // more jobs than the helpers' queue holds
			h.deliverAll(r, e, &payload{pos: pos})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("deliverAll waited for stopped helpers")
	}
	for i, op := range e.members {
		if got := sub.got[op]; len(got) != 5 {
			t.Fatalf("member %d has %v, want 5 events", i, got)
		}
	}
}
