package server

import (
	"slices"
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
	framePongCtl                   // a WebSocket pong control frame with raw as payload
	frameWire                      // the unwritten rest of a frame begun by writeNow: raw, then data's bytes from off and a closing brace if data is set
	frameSkipped                   // nothing: its operation finished before it was written (writeBatch)
)

// payload is one encoded execution result, shared by every member of a
// shared execution: encoded once, written to each socket as is.
type payload struct {
	bytes    []byte
	appended time.Time // when the event entered the log; zero if unknown
	pos      uint64    // the event's position in its stream; zero if unknown
	gen      uint64    // the generation pos is of (eventmeta.Meta.Generation)
	cursor   string    // the event's resume cursor (extensions.cursor); "" if none
	failed   bool      // the execution's last: its first result with errors and no data (its resolver failed), its end, or a panic's
	state    bool      // a whole state, not a change to one (eventmeta.Meta.State)
}

// outItem is one frame waiting to be written. Items reference shared
// bytes; queuing one allocates nothing.
type outItem struct {
	kind  frameKind
	event bool       // a subscription's event, counted as a delivery (not a query's answer)
	op    *operation // nil for connection-level frames
	raw   string
	data  *payload
	off   int // frameWire: where in data's bytes the rest begins
}

// size is what the item counts against the queue's maxBytes: for the rest
// of a frame, the bytes still to go, though most of them are shared.
func (it *outItem) size() int {
	n := len(it.raw) + 48
	if it.op != nil {
		n += len(it.op.idJSON)
	}
	if it.data != nil {
		n += len(it.data.bytes) - it.off
	}
	return n
}

// sharedPart is the part of it's frame that the writer writes from shared
// bytes rather than copy next to the frame's head: a large payload, or
// what a direct write left of one (see writeSharedClaimed). A closing brace
// follows it.
func (it *outItem) sharedPart() ([]byte, bool) {
	switch {
	case it.kind == frameNext && len(it.data.bytes) > largePayload:
		return it.data.bytes, true
	case it.kind == frameWire && it.data != nil:
		return it.data.bytes[it.off:], true
	}
	return nil, false
}

// outQueue is a socket's bounded outbound queue, and the switch of its
// writer: a writer goroutine runs only while there is something to write,
// so an idle socket costs no goroutine for writing. push never blocks: it
// reports false when the queue is full, and the socket is then closed as a
// slow consumer. Only a resumed subscription's replay waits, in awaitRoom,
// for the queue to drain before it queues more.
type outQueue struct {
	spawn func() // starts a writer; called with mu held, so it is ordered before close

	mu       sync.Mutex
	items    []outItem
	spare    []outItem // reused by take so steady state allocates nothing; the batch being written (see idleLocked)
	bytes    int
	maxItems int
	maxBytes int
	writing  bool       // a writer is running
	kicked   bool       // the running writer must look again (e.g. a close was chosen)
	sealed   bool       // a close was chosen: no more events are queued (see seal)
	closed   bool       // the socket is gone: nothing is queued or started any more
	room     roomSignal // wakes a replay waiting in awaitRoom when take empties the queue
}

func newOutQueue(maxItems, maxBytes int, spawn func()) *outQueue {
	return &outQueue{maxItems: maxItems, maxBytes: maxBytes, spawn: spawn}
}

// push queues it and starts a writer if none runs; false if the queue is
// full: maxItems items, or maxBytes bytes already. A complete, which ends
// an operation, is taken whatever the items and bytes: a query's answer is
// its result and its complete back to back, so with a queue of one item
// (--ws-queue 1) every query would otherwise close its socket. Below that
// it takes an item whatever its size, so the queue holds at most maxBytes
// plus one item and the completes: one result larger than maxBytes (a
// query of a long page), and its complete, are not a slow consumer's doing.
func (q *outQueue) push(it outItem) bool {
	n := it.size()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.sealed && it.event {
		return true // the socket is going; dropping is not a slow consumer
	}
	if it.kind != frameComplete && (len(q.items) >= q.maxItems || q.bytes >= q.maxBytes) {
		return false
	}
	q.items = append(q.items, it)
	q.bytes += n
	q.wakeLocked()
	return true
}

// seal stops queuing events: the socket's close was chosen. What was
// queued before goes out ahead of the close frame; an event that came
// after the decision (its credentials expired, an administrator
// disconnected its user, a drain) is not delivered on it: a resumed
// subscription gets it after reconnecting, if it still may.
func (q *outQueue) seal() {
	q.mu.Lock()
	q.sealed = true
	q.mu.Unlock()
}

// wake starts a writer if none runs, e.g. to send a close frame.
func (q *outQueue) wake() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.wakeLocked()
}

func (q *outQueue) wakeLocked() {
	switch {
	case q.closed:
	case q.writing:
		q.kicked = true
	default:
		q.writing = true
		q.spawn()
	}
}

// claim makes the caller the socket's writer, if no writer runs and
// nothing is queued, so that it may write without queuing; it must then
// call release.
func (q *outQueue) claim() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.writing || len(q.items) > 0 {
		return false
	}
	q.writing = true
	return true
}

// release ends a claim. rest, the part of a frame the claimant could not
// write (a small frame's: it is copied), is queued ahead of everything
// else. A writer starts if anything was queued or a wake came meanwhile.
func (q *outQueue) release(rest []byte) {
	if len(rest) == 0 {
		q.releaseRest(nil)
		return
	}
	q.releaseRest(&outItem{kind: frameWire, raw: string(rest)})
}

// releaseRest is release with the rest as a frameWire item (nil: none),
// which may refer to a shared payload rather than copy it. Like any item it
// counts against maxBytes, so a socket that has not taken it is a slow
// consumer as soon as anything else would be queued beyond the limit; it is
// queued whatever the bytes, as it must go out before anything else.
func (q *outQueue) releaseRest(rest *outItem) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	if rest != nil {
		q.items = slices.Insert(q.items, 0, *rest)
		q.bytes += rest.size()
	}
	if len(q.items) == 0 && !q.kicked {
		q.writing = false
		return
	}
	q.kicked = false
	q.spawn()
}

// take returns everything queued, oldest first, valid until the next
// call. more is false when the calling writer must exit: nothing is queued
// and nobody kicked it; the next push or wake starts another.
func (q *outQueue) take() (batch []outItem, more bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		if q.kicked {
			q.kicked = false
			return nil, true
		}
		q.writing = false
		q.idleLocked()
		return nil, false
	}
	batch = q.items
	clear(q.spare) // empty if the writer went idle since (idleLocked)
	q.items = q.spare[:0]
	q.spare = batch
	q.bytes = 0
	q.kicked = false
	q.room.wake()
	return batch, true
}

// keptQueueItems is the capacity, in items, up to which an idle queue
// keeps each of its two slices for the next batch: a socket's batches are
// mostly a few frames, and those then allocate nothing. A longer slice is
// what a backlog left (up to --ws-queue items, 48 bytes each, twice), and
// is let go: an idle socket should cost what it cost before its burst.
const keptQueueItems = 64

// idleLocked lets go of what the queue holds for its writer, which is
// exiting: spare is the batch just written, whose items reference their
// payloads (a query's answer is encoded for its socket alone) and
// operations, and would keep them for as long as the socket stays idle,
// since only the next take would clear it. Clearing it here rather than
// there costs the same; the next take then clears nothing. items is empty,
// and take left its elements cleared.
func (q *outQueue) idleLocked() {
	if cap(q.spare) > keptQueueItems {
		q.spare = nil
	} else {
		clear(q.spare)
		q.spare = q.spare[:0]
	}
	if cap(q.items) > keptQueueItems {
		q.items = nil
	}
}

// takeLast returns everything queued and closes the queue in one step, for
// the writer that sends the close frame: take would let the queue count
// no writer once it is empty, so a push or a direct write (claim) could
// start a second writer beside it.
func (q *outQueue) takeLast() []outItem {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.items
	q.items, q.spare = nil, nil
	q.closed = true
	q.room.wake()
	return batch
}

// close stops queuing and starting writers; a running writer finishes.
func (q *outQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.items, q.spare = nil, nil
	q.room.wake()
}

// awaitRoom waits until the queue is at or below its low-water mark
// (hasRoom), or closed, or until stop is closed. A resumed subscription's
// replay waits here before each result (see sharedExecutions.paceReplay),
// so that it goes out as fast as the socket takes it instead of
// overflowing the queue and closing the socket as a slow consumer.
//
// A sealed queue (a close was chosen) is not room: the replay waits for
// the writer's last take (takeLast) rather than execute results nobody
// will write. Nor is a socket whose connection was cut: its queue is
// closed at teardown, which then releases the replay's operation (stop);
// a replay let go on at once would find the queue still full, and close
// as a slow consumer a socket that is going anyway.
//
// Only take, which empties the queue, and the queue's end wake a waiter;
// push pays nothing for it.
func (q *outQueue) awaitRoom(stop <-chan struct{}) {
	for {
		q.mu.Lock()
		if q.closed || hasRoom(len(q.items), q.bytes, q.maxItems, q.maxBytes) {
			q.mu.Unlock()
			return
		}
		room := q.room.wait()
		q.mu.Unlock()
		select {
		case <-room:
		case <-stop:
			return
		}
	}
}

// hasRoom reports whether a queue holding items and bytes, bounded by
// maxItems and maxBytes, is at or below its low-water mark: half of each.
// A replay resumes there (awaitRoom), leaving the other half to the
// socket's other operations while its writer writes what was queued.
func hasRoom(items, bytes, maxItems, maxBytes int) bool {
	return items <= maxItems/2 && bytes <= maxBytes/2
}

// roomSignal lets a queue's producer wait until the queue's consumer has
// taken from it. Both hold the queue's lock. A channel is made only while
// someone waits, so a queue nobody waits on pays one nil check per take.
type roomSignal struct{ ch chan struct{} }

// wait returns a channel that the next wake closes.
func (s *roomSignal) wait() <-chan struct{} {
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

// wake releases those waiting, if any.
func (s *roomSignal) wake() {
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}
