package server

import "sync"

// Presence receives who is present on which topic through this replica:
// a subscription resolver announces a topic (auth.Announce), and every
// identified subscriber of its execution is present on it while
// subscribed. Enter is called once for each such subscription admitted,
// Leave once when it ends, so a user with several sockets, streams or tabs
// is entered several times: Presence counts, and the user is present while
// the count is above zero. Both are called under a lock of the engine:
// they must not block (record and return; see pubsub.Presence).
type Presence interface {
	Enter(topic, userID string)
	Leave(topic, userID string)
}

// presenceTracker tells Presence of each operation entering and leaving
// its topic, once each, whatever order the engine's paths reach it in.
// Nil when the server has no Presence: then every method does nothing.
// It keeps no count of its own: the counting is Presence's, so a
// subscriber costs one map entry there and a string here.
type presenceTracker struct {
	to Presence
	mu sync.Mutex // guards every operation's presence field
}

func newPresenceTracker(p Presence) *presenceTracker {
	if p == nil {
		return nil
	}
	return &presenceTracker{to: p}
}

// enter has op present on topic, once, unless op is anonymous or present
// already.
func (c *presenceTracker) enter(op *operation, topic string) {
	if c == nil || topic == "" || op.viewer == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.presence != "" {
		return
	}
	op.presence = topic
	c.to.Enter(topic, op.viewer)
}

// leave undoes op's enter, if any; calling it again does nothing.
func (c *presenceTracker) leave(op *operation) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.presence == "" {
		return
	}
	topic := op.presence
	op.presence = ""
	c.to.Leave(topic, op.viewer)
}
