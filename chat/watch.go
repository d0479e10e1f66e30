package chat

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Change is one accepted event as live subscribers see it: the event and
// snapshots of what it changed, taken right after it was applied.
type Change struct {
	// Seq is the event's log sequence (the subscription cursor).
	Seq uint64
	// At is when the log stored the event.
	At   time.Time
	Type EventType
	Room Room
	// Message is nil for RoomCreated.
	Message *Message
}

// RoomTopic names the changes of one room: its messages' posts, edits,
// deletions and reactions.
func RoomTopic(roomID string) string { return "room." + roomID }

// RoomsTopic names the creation of rooms.
const RoomsTopic = "rooms"

// ErrWatcherClosed is returned by Watcher.Next after Close.
var ErrWatcherClosed = errors.New("chat: watcher closed")

// Watcher receives the changes of one topic, in log order, from the moment
// it was created. Its mailbox is unbounded so the log follower never waits
// for a subscriber and never drops a change; it is drained by one shared
// execution per distinct subscription, which never blocks on a socket, so
// it only grows while that execution is starved of CPU.
type Watcher struct {
	hub   *hub
	topic string

	mu      sync.Mutex
	pending []Change
	wake    chan struct{} // capacity 1: a change may be pending
	closed  bool
}

// Next returns the next change, waiting for one until ctx is done.
func (w *Watcher) Next(ctx context.Context) (Change, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return Change{}, ErrWatcherClosed
		}
		if len(w.pending) > 0 {
			c := w.pending[0]
			w.pending[0] = Change{}
			w.pending = w.pending[1:]
			if len(w.pending) == 0 {
				w.pending = nil // let the backing array go
			}
			w.mu.Unlock()
			return c, nil
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
			return Change{}, ctx.Err()
		}
	}
}

// Close stops the watcher; Next returns ErrWatcherClosed from then on.
func (w *Watcher) Close() {
	w.hub.remove(w)
	w.mu.Lock()
	w.closed = true
	w.pending = nil
	w.mu.Unlock()
	w.signal()
}

func (w *Watcher) deliver(c Change) {
	w.mu.Lock()
	if !w.closed {
		w.pending = append(w.pending, c)
	}
	w.mu.Unlock()
	w.signal()
}

func (w *Watcher) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// hub maps topics to their watchers.
type hub struct {
	mu       sync.RWMutex
	watchers map[string]map[*Watcher]struct{}
}

func newHub() *hub { return &hub{watchers: make(map[string]map[*Watcher]struct{})} }

func (h *hub) add(topic string) *Watcher {
	w := &Watcher{hub: h, topic: topic, wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.watchers[topic]
	if set == nil {
		set = make(map[*Watcher]struct{})
		h.watchers[topic] = set
	}
	set[w] = struct{}{}
	return w
}

func (h *hub) remove(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if set := h.watchers[w.topic]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(h.watchers, w.topic)
		}
	}
}

func (h *hub) watched(topic string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.watchers[topic]) > 0
}

func (h *hub) publish(topic string, c Change) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for w := range h.watchers[topic] {
		w.deliver(c)
	}
}

// Watch returns a watcher of topic (RoomTopic or RoomsTopic) that receives
// every change applied after this call. Close it when done.
func (s *Service) Watch(topic string) *Watcher { return s.hub.add(topic) }

// changeOf builds the Change an accepted outcome produced, if anyone
// watches its topic. Callers hold s.mu.
func (s *Service) changeOf(out Outcome, at time.Time) (topic string, c Change, ok bool) {
	if out.Err != nil || out.Type == "" {
		return "", Change{}, false
	}
	topic = RoomTopic(out.RoomID)
	if out.Type == RoomCreated {
		topic = RoomsTopic
	}
	if !s.hub.watched(topic) {
		return "", Change{}, false
	}
	room, _ := s.proj.Room(out.RoomID)
	c = Change{Seq: out.Seq, At: at, Type: out.Type, Room: room}
	if out.Type != RoomCreated {
		m, ok := s.proj.Message(out.MessageID)
		if !ok {
			return "", Change{}, false // evicted at once by a tiny history limit
		}
		c.Message = &m
	}
	return topic, c, true
}
