// Package graph is Herald's executable GraphQL schema for the chat domain:
// the code gqlgen generates from schema.graphqls (generated.go, model/) and
// the thin resolvers (query.go, mutation.go, subscription.go, types.go) that turn GraphQL arguments into calls
// on chat.Service.
package graph

//go:generate go tool gqlgen generate --config ../gqlgen.yml

import (
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/chat"
)

// Resolver is the root of the resolvers; it holds what they share.
type Resolver struct {
	chat     *chat.Service
	epoch    int64
	sessions Disconnector // nil: disconnectUser is unavailable
	presence Presence     // nil: roomPresence and setTyping are unavailable
	opts     Options
	typing   *typingThrottle
}

// Options configures NewSchemaWith; zero fields take their defaults.
type Options struct {
	// Sessions carries out disconnectUser; nil leaves it unavailable.
	Sessions Disconnector
	// Presence is who is in which room across the replicas, for
	// roomPresence and setTyping; nil leaves them unavailable.
	Presence Presence
	// PresenceWindow is the shortest time between two batches of a
	// roomPresence subscription's events; default 250ms.
	PresenceWindow time.Duration
	// PresenceBurst is how many changes one batch may send as events of
	// their own; a window with more is sent as one SNAPSHOT. Default 20.
	PresenceBurst int
	// TypingFor is how long setTyping shows a user as typing; default 5s.
	TypingFor time.Duration
	// TypingEvery is the shortest time between two setTyping calls of one
	// user in one room that are passed on; default 1s.
	TypingEvery time.Duration
	// UntaggedCursors issues cursors in the first format (h1), which do not
	// say what they were issued for, instead of tagged ones (see
	// cursorScope). Replicas of a Herald from before tagged cursors refuse
	// tagged ones, so a rolling upgrade from such a Herald sets it until no
	// old replica is left. Cursors of both formats are accepted either way.
	UntaggedCursors bool
}

// NewSchema returns the executable schema over svc. epoch identifies the
// incarnation of the event log (pubsub.Log.Epoch), so that cursors from a
// recreated log are refused rather than misread. sessions carries out
// disconnectUser; nil leaves it unavailable. roomPresence and setTyping
// need NewSchemaWith.
func NewSchema(svc *chat.Service, epoch time.Time, sessions Disconnector) graphql.ExecutableSchema {
	return NewSchemaWith(svc, epoch, Options{Sessions: sessions})
}

// NewSchemaWith is NewSchema with options.
func NewSchemaWith(svc *chat.Service, epoch time.Time, opts Options) graphql.ExecutableSchema {
	if opts.PresenceWindow <= 0 {
		opts.PresenceWindow = 250 * time.Millisecond
	}
	if opts.PresenceBurst <= 0 {
		opts.PresenceBurst = 20
	}
	if opts.TypingFor <= 0 {
		opts.TypingFor = 5 * time.Second
	}
	if opts.TypingEvery <= 0 {
		opts.TypingEvery = time.Second
	}
	r := &Resolver{chat: svc, epoch: epoch.UnixNano(), sessions: opts.Sessions, presence: opts.Presence, opts: opts,
		typing: newTypingThrottle(opts.TypingEvery, typingKeep)}
	return NewExecutableSchema(Config{Resolvers: r, Complexity: complexity()})
}

// typingThrottle passes on at most one setTyping per user and room per
// interval. It keeps the keys it passed on in two generations: cur, since
// curStart, and prev, from before it. Once an interval has passed since
// curStart, everything in prev is older than an interval, so prev is
// dropped and cur becomes prev: each call costs O(1), and a key is
// forgotten at most two intervals after it was last passed on. A
// generation holds at most keep keys: a full cur also becomes prev, so
// the throttle never holds more than 2×keep keys; under a flood of more
// distinct keys than that per interval, the oldest may pass again early.
type typingThrottle struct {
	every time.Duration
	keep  int

	mu        sync.Mutex
	cur, prev map[typingKey]time.Time
	curStart  time.Time
}

type typingKey struct{ room, user string }

// typingKeep is how many keys a typingThrottle's generation holds.
const typingKeep = 1 << 14

func newTypingThrottle(every time.Duration, keep int) *typingThrottle {
	return &typingThrottle{every: every, keep: keep, cur: map[typingKey]time.Time{}, prev: map[typingKey]time.Time{}}
}

// allow reports whether a setTyping at now is passed on.
func (t *typingThrottle) allow(room, user string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := typingKey{room, user}
	last, ok := t.cur[k]
	if !ok {
		last, ok = t.prev[k]
	}
	if ok && now.Sub(last) < t.every {
		return false
	}
	if now.Sub(t.curStart) >= t.every || len(t.cur) >= t.keep {
		t.prev, t.cur, t.curStart = t.cur, map[typingKey]time.Time{}, now
	}
	t.cur[k] = now
	return true
}

// forget undoes what allow recorded at now for a call whose signal could
// not be sent, so that its retry is not taken for a repeat.
func (t *typingThrottle) forget(room, user string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := typingKey{room, user}
	for _, gen := range []map[typingKey]time.Time{t.cur, t.prev} {
		if at, ok := gen[k]; ok && at.Equal(now) {
			delete(gen, k)
		}
	}
}

// len is how many keys t holds.
func (t *typingThrottle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.cur) + len(t.prev)
}

// ViewerDirective is the schema directive marking fields whose value
// depends on who asks (see schema.graphqls): the server shares a
// subscription's execution across identities only when none is selected.
const ViewerDirective = "viewerDependent"

// ResumeArgument is the subscription argument that carries a resume cursor.
const ResumeArgument = "after"
