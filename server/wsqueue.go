package server

import (
	"sync"
	"time"
)

// frameKind says how the writer renders a queued item.
type frameKind uint8

const (
	frameRaw      frameKind = iota // raw: a whole frame without id
	frameNext                      // next (legacy: data) with a shared payload
	frameError                     // error with raw as payload
	frameComplete                  // complete
	framePingCtl                   // a WebSocket ping control frame
)

// payload is one encoded execution result, shared by every member of a
// shared execution: encoded once, written to each socket as is.
type payload struct {
	bytes    []byte
	appended time.Time // when the event entered the log; zero if unknown
	pos      uint64    // the event's position in its stream; zero if unknown
}

// outItem is one frame waiting to be written. Items reference shared
// bytes; queuing one allocates nothing.
type outItem struct {
	kind frameKind
	op   *operation // nil for connection-level frames
	raw  string
	data *payload
}

func (it *outItem) size() int {
	n := len(it.raw) + 48
	if it.op != nil {
		n += len(it.op.idJSON)
	}
	if it.data != nil {
		n += len(it.data.bytes)
	}
	return n
}

// outQueue is a socket's bounded outbound queue. It never blocks: push
// reports false when the queue is full, and the socket is then closed as a
// slow consumer.
type outQueue struct {
	mu       sync.Mutex
	items    []outItem
	spare    []outItem // reused by take so steady state allocates nothing
	bytes    int
	maxItems int
	maxBytes int
	wake     chan struct{} // capacity 1
}

func newOutQueue(maxItems, maxBytes int) *outQueue {
	return &outQueue{maxItems: maxItems, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

func (q *outQueue) push(it outItem) bool {
	n := it.size()
	q.mu.Lock()
	if len(q.items) >= q.maxItems || q.bytes+n > q.maxBytes {
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, it)
	q.bytes += n
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

// take returns everything queued, oldest first. The slice is valid until
// the next call.
func (q *outQueue) take() []outItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.items
	clear(q.spare)
	q.items = q.spare[:0]
	q.spare = batch
	q.bytes = 0
	return batch
}
