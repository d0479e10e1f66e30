package server

import "sync"

// Presence receives who is present on which topic through this replica:
// a subscription resolver announces a topic (auth.Announce), and every
// identified subscriber of its execution is present on it while
// subscribed. Enter is called when a user's first such subscription on
// this replica is admitted, Leave when their last one ends, so a user with
// several sockets, streams or tabs is entered once. Both are called under
// a lock of the engine, one at a time and in order: they must not block
// (record and return; see pubsub.Presence).
type Presence interface {
	Enter(topic, userID string)
	Leave(topic, userID string)
}

// presenceCounts counts each user's subscriptions per announced topic and
// tells Presence of the transitions between none and some. Nil when the
// server has no Presence: then every method does nothing.
type presenceCounts struct {
	to Presence

	mu sync.Mutex
	n  map[presenceKey]int
}

type presenceKey struct{ topic, user string }

func newPresenceCounts(p Presence) *presenceCounts {
	if p == nil {
		return nil
	}
	return &presenceCounts{to: p, n: map[presenceKey]int{}}
}

// enter counts op as present on topic, once, unless op is anonymous or
// counted already.
func (c *presenceCounts) enter(op *operation, topic string) {
	if c == nil || topic == "" || op.viewer == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.presence != "" {
		return
	}
	op.presence = topic
	k := presenceKey{topic, op.viewer}
	c.n[k]++
	if c.n[k] == 1 {
		c.to.Enter(topic, op.viewer)
	}
}

// leave undoes op's enter, if any; calling it again does nothing.
func (c *presenceCounts) leave(op *operation) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if op.presence == "" {
		return
	}
	k := presenceKey{op.presence, op.viewer}
	op.presence = ""
	if c.n[k]--; c.n[k] == 0 {
		delete(c.n, k)
		c.to.Leave(k.topic, k.user)
	}
}
