package auth

import "context"

// Announce tells the engine running the subscription of ctx that each of
// its subscribers is present on topic while subscribed: the engine
// reports, per user, when their first subscription announcing topic
// starts and when their last one ends (server.Presence), however many
// sockets, streams or tabs they use. Anonymous subscribers are not
// counted. The topic is the resolver's to choose (a room ID, say); the
// engine only compares it.
//
// Like Restrict, it hands something to the engine through the Guard the
// engine put on ctx, and reports false when there is none (the
// subscription is then nobody's presence).
func Announce(ctx context.Context, topic string) bool {
	g, ok := ctx.Value(guardKey{}).(*Guard)
	if !ok {
		return false
	}
	g.mu.Lock()
	g.topic = topic
	g.mu.Unlock()
	return true
}

// Topic returns the presence topic a resolver announced, or "".
func (g *Guard) Topic() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.topic
}

// OnJoin asks the engine running the subscription of ctx to call fn each
// time a subscriber joins it after it started: the engine shares one
// execution among identical subscriptions, and a subscription whose first
// result is a state (a presence snapshot) uses it to send that state again
// for the newcomer, whose results the earlier subscribers share. fn must
// not block. It reports false when no engine put a Guard on ctx.
func OnJoin(ctx context.Context, fn func()) bool {
	g, ok := ctx.Value(guardKey{}).(*Guard)
	if !ok {
		return false
	}
	g.mu.Lock()
	g.onJoin = fn
	g.mu.Unlock()
	return true
}

// Joined returns the function a resolver set with OnJoin, or nil.
func (g *Guard) Joined() func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.onJoin
}
