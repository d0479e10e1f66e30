package chat

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// TestWatcherOfferKeepsOrder drives a watcher whose offer refuses some
// changes: the consumer must see every change once, in log order, whether
// it was offered or queued, and nothing may be offered while an earlier
// change is still queued or being handed over.
func TestWatcherOfferKeepsOrder(t *testing.T) {
	tests := []struct {
		name    string
		replay  []uint64 // changes queued before the offer is set
		refuse  []uint64 // seqs the offer refuses
		deliver []uint64
		// offered: what the offer is asked to take, in order.
		offered []uint64
	}{
		{
			name:    "all offered",
			deliver: []uint64{1, 2, 3},
			offered: []uint64{1, 2, 3, 4, 5},
		},
		{
			name:    "refused change queues the rest until Next drains",
			refuse:  []uint64{2},
			deliver: []uint64{1, 2, 3, 4},
			offered: []uint64{1, 2, 5, 6},
		},
		{
			name:    "replay is drained before anything is offered",
			replay:  []uint64{1, 2},
			deliver: []uint64{3, 4},
			offered: []uint64{5, 6},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub()
			var replay []Change
			for _, s := range tt.replay {
				replay = append(replay, Change{Seq: s})
			}
			w := h.addAfter("t", 0, replay, nil)
			defer w.Close()
			var got, offered []uint64 // got: what the consumer holds, in order
			w.SetOffer(func(c Change) bool {
				offered = append(offered, c.Seq)
				if slices.Contains(tt.refuse, c.Seq) {
					return false
				}
				got = append(got, c.Seq)
				return true
			})
			for _, s := range tt.deliver {
				h.publish("t", Change{Seq: s})
			}
			// The consumer drains what was queued, handing over each
			// change before asking for the next; then two more arrive.
			// publish queues or offers before it returns, so Next with a
			// context already ended returns every queued change and then
			// the context's error: nothing is still on its way.
			drained, cancel := context.WithCancel(context.Background())
			cancel()
			for {
				c, err := w.Next(drained)
				if errors.Is(err, context.Canceled) {
					break
				}
				if err != nil {
					t.Fatalf("Next: %v", err)
				}
				got = append(got, c.Seq)
			}
			next := uint64(len(tt.replay) + len(tt.deliver))
			h.publish("t", Change{Seq: next + 1})
			h.publish("t", Change{Seq: next + 2})

			want := make([]uint64, 0, next+2)
			for s := uint64(1); s <= next+2; s++ {
				want = append(want, s)
			}
			if !slices.Equal(got, want) {
				t.Errorf("consumer saw %v, want %v", got, want)
			}
			if !slices.Equal(offered, tt.offered) {
				t.Errorf("offered %v, want %v", offered, tt.offered)
			}
		})
	}
}

// TestWatcherNoOfferAfterClose: a closed watcher never calls its offer,
// so the consumer may close what the offer sends into.
func TestWatcherNoOfferAfterClose(t *testing.T) {
	h := newHub()
	w := h.addAfter("t", 0, nil, nil)
	calls := 0
	w.SetOffer(func(Change) bool { calls++; return true })
	w.Close()
	w.deliver(Change{Seq: 1}) // as a publish racing with Close would
	if calls != 0 {
		t.Fatalf("offer called %d times after Close", calls)
	}
}
