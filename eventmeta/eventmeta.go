// Package eventmeta carries the metadata of each subscription event (its
// cursor, when it entered the log, its position) from the resolvers that
// produce events to the transport that delivers them, without either
// knowing the other: resolvers attach it to each event's context (gqlgen's
// graphql.Event), the transport reads it back.
package eventmeta

import (
	"context"
	"time"
)

// Meta describes one subscription event.
type Meta struct {
	// Cursor is the opaque position of the event in the event log; clients
	// resume after it. The transport sends it as extensions.cursor.
	Cursor string
	// Appended is when the event entered the event log, for measuring
	// delivery latency.
	Appended time.Time
	// Position orders events of one stream (the log sequence): a replay
	// and the live stream of the same subscription agree on it, which lets
	// the transport hand a resumed subscriber over from one to the other
	// without a gap or a duplicate. Zero means unknown.
	Position uint64
	// Generation orders Positions: a source that goes back to an earlier
	// position (a replica that re-read a room from the log and goes on
	// from the log's order) raises it, and an event of a later generation
	// comes after every event of an earlier one, whatever its Position.
	Generation uint64
	// State marks an event that is a whole state (a presence snapshot),
	// not a change to one. A subscriber that joins a running shared
	// execution whose resolver resends its state on join (auth.OnJoin)
	// receives nothing before the next such event.
	State bool
	// End, when set, ends the subscription: the event carries no value,
	// and the transport sends End as its only error (presented as any
	// resolver error is, with its code), then completes. A resolver
	// sends such an event last, when its source can no longer go on (a
	// room whose history was discarded past what the subscriber saw:
	// CURSOR_EXPIRED).
	End error
}

type metaKey struct{}

// WithMeta returns a copy of ctx carrying m.
func WithMeta(ctx context.Context, m Meta) context.Context {
	return context.WithValue(ctx, metaKey{}, m)
}

// MetaFrom returns the metadata stored in ctx, if any.
func MetaFrom(ctx context.Context) (Meta, bool) {
	m, ok := ctx.Value(metaKey{}).(Meta)
	return m, ok
}

type caughtUpKey struct{}

// WithCaughtUp returns ctx, the context a resumed subscription's resolver
// runs with, carrying fn: CaughtUp calls it.
func WithCaughtUp(ctx context.Context, fn func(Meta)) context.Context {
	return context.WithValue(ctx, caughtUpKey{}, fn)
}

// CaughtUp tells the transport, from a resolver resuming after a cursor,
// that it has nothing to replay: its subscriber has every event up to
// m's Position (in m's Generation), and what it sends from now on is live.
// The transport may then serve the subscriber from the live subscription
// it shares with others at once. It does nothing without WithCaughtUp.
func CaughtUp(ctx context.Context, m Meta) {
	if fn, ok := ctx.Value(caughtUpKey{}).(func(Meta)); ok {
		fn(m)
	}
}
