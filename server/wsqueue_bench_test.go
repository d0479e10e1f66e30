package server

import "testing"

// BenchmarkOutQueue is the cost of a frame's way through a socket's queue,
// push then take, on the path of every delivery: with a writer that keeps
// finding more (a busy socket), and with one that exits after each batch
// (a socket that keeps up, as most do: the next push starts another).
func BenchmarkOutQueue(b *testing.B) {
	op := &operation{id: "s", idJSON: `"s"`}
	it := outItem{kind: frameNext, event: true, op: op, data: &payload{bytes: []byte(`{"data":{"messagePosted":{"text":"hi"}}}`)}}
	for _, bc := range []struct {
		name  string
		batch int  // frames pushed before each take
		idle  bool // the writer finds the queue empty after each batch and exits
	}{
		{name: "busy/1", batch: 1},
		{name: "busy/8", batch: 8},
		{name: "idle-after/1", batch: 1, idle: true},
		{name: "idle-after/8", batch: 8, idle: true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			q := newOutQueue(1024, 1<<20, func() {})
			b.ReportAllocs()
			for b.Loop() {
				for range bc.batch {
					q.push(it)
				}
				q.take()
				if bc.idle {
					q.take()
				}
			}
		})
	}
}
