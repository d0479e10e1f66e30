package server

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/heraldhq/herald/chat"
)

// queueHold is what a socket's outbound queue holds on to.
type queueHold struct {
	idle     bool // no writer runs and nothing is queued
	capItems int  // capacity of items, in outItems
	capSpare int  // capacity of spare, in outItems
	refs     int  // outItems, within either slice's capacity, that still reference an operation or a payload
	refBytes int  // bytes of the payloads they reference
}

// holdOf looks at what q holds, up to each slice's capacity: what is past
// a slice's length is as much kept from the collector as what is in it.
func holdOf(q *outQueue) queueHold {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := queueHold{idle: !q.writing && len(q.items) == 0, capItems: cap(q.items), capSpare: cap(q.spare)}
	for _, s := range [][]outItem{q.items, q.spare} {
		for _, it := range s[:cap(s)] {
			if it.op == nil && it.data == nil {
				continue
			}
			h.refs++
			if it.data != nil {
				h.refBytes += len(it.data.bytes)
			}
		}
	}
	return h
}

// check fails t if h, an idle queue's, still holds a batch written before
// it went idle, or slices grown beyond keptQueueItems.
func (h queueHold) check(t *testing.T, what string) {
	t.Helper()
	if h.refs > 0 {
		t.Errorf("%s: the idle queue still references %d items (%d bytes of payloads) of a batch it wrote", what, h.refs, h.refBytes)
	}
	if h.capItems > keptQueueItems || h.capSpare > keptQueueItems {
		t.Errorf("%s: the idle queue keeps items of capacity %d and spare of %d (%d bytes an item), want at most %d each",
			what, h.capItems, h.capSpare, unsafe.Sizeof(outItem{}), keptQueueItems)
	}
}

// TestOutQueueLetsGoOfItsBatchWhenIdle: once its writer finds nothing more
// to write and exits, the queue references nothing it wrote (a query's
// answer is encoded for one socket: ~300 KB kept per idle socket) and
// keeps no slice a backlog grew (48 bytes an item, up to --ws-queue items,
// twice), while a small batch's slices are kept for the next one.
func TestOutQueueLetsGoOfItsBatchWhenIdle(t *testing.T) {
	op := &operation{id: "q", idJSON: `"q"`}
	answer := &payload{bytes: bytes.Repeat([]byte("x"), 300<<10)}
	event := &payload{bytes: []byte(`{"data":{"messagePosted":{"text":"hi"}}}`)}
	for _, tc := range []struct {
		name    string
		batches [][]outItem // each pushed, then taken as one batch
		kept    bool        // the slices are small: kept for the next batch
	}{
		{
			name:    "a query's answer and its complete",
			batches: [][]outItem{{{kind: frameNext, op: op, data: answer}, {kind: frameComplete, op: op}}},
			kept:    true,
		},
		{
			name:    "the answer and its complete taken apart",
			batches: [][]outItem{{{kind: frameNext, op: op, data: answer}}, {{kind: frameComplete, op: op}}},
			kept:    true,
		},
		{
			name: "a backlog, then caught up",
			batches: [][]outItem{
				repeatItem(outItem{kind: frameNext, event: true, op: op, data: event}, 400),
				repeatItem(outItem{kind: frameNext, event: true, op: op, data: event}, 150),
				{{kind: frameNext, event: true, op: op, data: event}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spawned := 0
			q := newOutQueue(1024, 64<<20, func() { spawned++ })
			for _, b := range tc.batches {
				for _, it := range b {
					if !q.push(it) {
						t.Fatal("push refused")
					}
				}
				if got, more := q.take(); !more || len(got) != len(b) {
					t.Fatalf("take = %d items, more %v; want %d, true", len(got), more, len(b))
				}
			}
			if _, more := q.take(); more {
				t.Fatal("the writer was not told to exit on an empty queue")
			}
			h := holdOf(q)
			h.check(t, "after the writer exited")
			if tc.kept && h.capItems+h.capSpare == 0 {
				t.Errorf("a small batch's slice was let go: the next batch allocates it again")
			}

			// The queue works on as before: the next push starts a writer,
			// whose batch is what was pushed.
			if !q.push(outItem{kind: frameRaw, raw: "next"}) || spawned != 2 {
				t.Fatalf("push after idle: %d writers started, want 2", spawned)
			}
			if got, more := q.take(); !more || len(got) != 1 || got[0].raw != "next" {
				t.Fatalf("take after idle = %+v, %v; want the pushed frame", got, more)
			}
		})
	}

	// A kicked writer that finds nothing goes on, and lets go once it exits.
	q := newOutQueue(8, 1<<20, func() {})
	q.push(outItem{kind: frameNext, op: op, data: answer})
	q.take()
	q.wake()
	if b, more := q.take(); !more || len(b) != 0 {
		t.Fatalf("kicked take = %d items, more %v; want none, true", len(b), more)
	}
	if _, more := q.take(); more {
		t.Fatal("the writer was not told to exit on an empty queue")
	}
	holdOf(q).check(t, "after a kicked writer exited")
}

func repeatItem(it outItem, n int) []outItem {
	s := make([]outItem, n)
	for i := range s {
		s[i] = it
	}
	return s
}

// openWSConns returns r's open sockets.
func (r *replica) openWSConns() []*wsConn {
	r.server.sessions.mu.Lock()
	defer r.server.sessions.mu.Unlock()
	var out []*wsConn
	for s := range r.server.sessions.open {
		if c, ok := s.(*wsConn); ok {
			out = append(out, c)
		}
	}
	return out
}

// TestIdleSocketKeepsNoBurst: a socket that was busy for a moment, then
// idle, costs again what an idle socket costs: its outbound queue keeps
// neither the answer of its last large query (written in one batch with
// its complete) nor the capacity a backlog of events grew (its client
// stalled, then caught up), on either protocol.
func TestIdleSocketKeepsNoBurst(t *testing.T) {
	const sockets = 4
	for _, burst := range []struct {
		name string
		// run makes the burst on clients and returns once every client
		// has read all of it; heavy is the bytes per socket that a socket
		// keeping its burst would keep, and before the live heap before
		// the burst, once what it shares (a room's messages) was made
		// (heavy 0: not measured on the heap).
		run func(t *testing.T, r *replica, p wspProto, clients []*rawWS) (heavy int, before uint64)
	}{
		{name: "a large query's answer", run: queryAnswerBurst},
		{name: "a backlog of events", run: eventBacklogBurst},
	} {
		for _, p := range wspProtocols {
			t.Run(burst.name+"/"+p.name, func(t *testing.T) {
				r := newReplicaListening(t, chat.Options{}, nil, withSmallSendBuffers)
				clients := make([]*rawWS, 0, sockets)
				for range sockets {
					clients = append(clients, r.dialRaw(p.name, 4096))
				}
				heavy, before := burst.run(t, r, p, clients)
				conns := r.openWSConns()
				if len(conns) != sockets {
					t.Fatalf("%d sockets open, want %d", len(conns), sockets)
				}
				// The writer exits after the client has read the last frame.
				waitFor(t, "every socket's writer to exit", func() bool {
					for _, c := range conns {
						if !holdOf(c.queue).idle {
							return false
						}
					}
					return true
				})
				for i, c := range conns {
					holdOf(c.queue).check(t, fmt.Sprintf("socket %d", i))
				}
				if heavy == 0 {
					return
				}
				// And on the heap, with room for noise: half of what
				// keeping the burst would keep.
				grown := (int64(liveHeap()) - int64(before)) / sockets
				t.Logf("live heap %+d bytes per idle socket after a burst of %d bytes", grown, heavy)
				if grown > int64(heavy/2) {
					t.Errorf("an idle socket keeps %+d bytes of heap after a burst of %d bytes", grown, heavy)
				}
			})
		}
	}
}

// queryAnswerBurst answers each client a query of ~300 KB (20 messages of
// 15,600 bytes), and returns its size.
func queryAnswerBurst(t *testing.T, r *replica, p wspProto, clients []*rawWS) (int, uint64) {
	room := r.room("big")
	text := strings.Repeat("😀", 3900) // 15,600 bytes, within the 4,000 character limit
	for range 20 {
		r.post(room, "ann", text)
	}
	before := liveHeap()
	answer := 0
	for i, c := range clients {
		c.start(p, `query($r: ID!) { room(id: $r) { messages(last: 20) { nodes { text } } } }`, map[string]any{"r": room})
		for done := false; !done; {
			m, err := c.next(10 * time.Second)
			switch {
			case err != nil:
				t.Fatalf("client %d: %v", i, err)
			case m.op != rawText:
				t.Fatalf("client %d: frame %#x %q, want the answer", i, m.op, m.payload)
			case bytes.Contains(m.payload, []byte(`"type":"complete"`)):
				done = true
			default:
				answer = len(m.payload)
			}
		}
	}
	if answer < 300_000 {
		t.Fatalf("the answer is %d bytes, want a page of long messages", answer)
	}
	return answer, before
}

// eventBacklogBurst posts events while no client reads, until every
// socket's queue has grown beyond what an idle queue keeps, then has every
// client read them all.
func eventBacklogBurst(t *testing.T, r *replica, p wspProto, clients []*rawWS) (int, uint64) {
	room := r.room("burst")
	for _, c := range clients {
		c.start(p, wspMessagePosted, map[string]any{"r": room})
	}
	waitFor(t, "every subscription live", func() bool { return r.members() == len(clients) })
	text := strings.Repeat("x", 800)
	const events = 300
	for i := range events {
		r.post(room, "ann", fmt.Sprintf("%04d %s", i, text))
	}
	waitFor(t, "a backlog on every socket", func() bool {
		for _, c := range r.openWSConns() {
			if h := holdOf(c.queue); max(h.capItems, h.capSpare) <= keptQueueItems {
				return false
			}
		}
		return true
	})
	last := []byte(fmt.Sprintf("%04d ", events-1))
	for i, c := range clients {
		for {
			m, err := c.next(10 * time.Second)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if m.op == rawClose {
				t.Fatalf("client %d closed: %q", i, m.payload)
			}
			if bytes.Contains(m.payload, last) {
				break
			}
		}
	}
	return 0, 0 // the slices are what is checked: their bytes are lost among the events' own
}
