package auth

import (
	"context"
	"sync"
)

// Gate decides who may receive the events of one subscription whose
// execution is shared by many subscribers (a private room's, say). The
// engine that runs the execution asks it for each subscriber when the
// subscriber joins, and again for each event it delivers, so Access must
// be cheap (a map look-up), must not block and must not allocate.
type Gate interface {
	// Access reports whether the user may receive the subscription's
	// events now, and since when: since is the stream position at which
	// the user's current access began, so events at or before it are not
	// theirs. A user whose access was withdrawn and granted again gets a
	// new since, by which the engine tells that their subscriptions began
	// under an access that ended.
	Access(userID string) (since uint64, ok bool)
}

// Confirmer is a Gate that may be behind its domain: Access may refuse a
// user granted access a moment ago through another replica (a member just
// added). Before refusing a subscriber, the engine calls Confirm, outside
// its locks and bounded by ctx; Confirm brings the gate up to date about
// userID (it may read the domain's store), and Access is asked again.
type Confirmer interface {
	Gate
	Confirm(ctx context.Context, userID string)
}

// Denier is a Gate that says why it refuses a user it never admitted
// (for a private room: "you are not a member of room <id>"). The engine
// ends such a subscriber's subscription with that message, and one whose
// access was withdrawn with a message of its own.
type Denier interface {
	Gate
	Denial() string
}

// Guard is where a subscription's resolver hands its Gate to the engine
// running the subscription (see Restrict). The engine puts one on the
// context of each execution it starts (WithGuard) and reads it once the
// resolver has run.
type Guard struct {
	mu      sync.Mutex
	gate    Gate
	recheck func()
	topic   string // see Announce
	onJoin  func() // see OnJoin
}

type guardKey struct{}

// WithGuard returns a context carrying a new Guard, for the engine: recheck
// is what the resolver's domain calls when access may have been withdrawn
// from someone, so that the engine ends those subscribers the gate no
// longer admits. recheck may be called from any goroutine, but not under a
// lock that the delivery of events takes.
func WithGuard(ctx context.Context, recheck func()) (context.Context, *Guard) {
	g := &Guard{recheck: recheck}
	return context.WithValue(ctx, guardKey{}, g), g
}

// Gate returns the gate a resolver set, or nil: every subscriber may
// receive the events.
func (g *Guard) Gate() Gate {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gate
}

// Restrict tells the engine running the subscription of ctx that only the
// users gate admits may receive its events. It returns the function to
// call whenever access may have been withdrawn from someone. ok is false
// when no engine put a Guard on ctx: then nobody checks the subscribers,
// and the resolver must check the identity on ctx itself (recheck is then
// a no-op).
func Restrict(ctx context.Context, gate Gate) (recheck func(), ok bool) {
	g, ok := ctx.Value(guardKey{}).(*Guard)
	if !ok {
		return func() {}, false
	}
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	if g.recheck == nil {
		return func() {}, true
	}
	return g.recheck, true
}
