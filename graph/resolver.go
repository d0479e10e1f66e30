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
	typing   typingThrottle
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
		typing: typingThrottle{every: opts.TypingEvery, last: map[typingKey]time.Time{}}}
	return NewExecutableSchema(Config{Resolvers: r})
}

// typingThrottle passes on at most one setTyping per user and room per
// interval.
type typingThrottle struct {
	every time.Duration

	mu   sync.Mutex
	last map[typingKey]time.Time
}

type typingKey struct{ room, user string }

// typingForget is how many throttled keys are kept before old ones are
// dropped.
const typingForget = 4096

// allow reports whether a setTyping at now is passed on.
func (t *typingThrottle) allow(room, user string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := typingKey{room, user}
	if last, ok := t.last[k]; ok && now.Sub(last) < t.every {
		return false
	}
	if len(t.last) >= typingForget {
		for k, last := range t.last {
			if now.Sub(last) >= t.every {
				delete(t.last, k)
			}
		}
	}
	t.last[k] = now
	return true
}

// ViewerDirective is the schema directive marking fields whose value
// depends on who asks (see schema.graphqls): the server shares a
// subscription's execution across identities only when none is selected.
const ViewerDirective = "viewerDependent"

// ResumeArgument is the subscription argument that carries a resume cursor.
const ResumeArgument = "after"
