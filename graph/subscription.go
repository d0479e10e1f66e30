package graph

import (
	"context"
	"errors"
	"fmt"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/eventmeta"
	"github.com/heraldhq/herald/graph/model"
)

// Subscription returns the resolvers of the Subscription type.
func (r *Resolver) Subscription() SubscriptionResolver { return subscriptionResolver{r} }

// RoomEvent returns the resolvers of the RoomEvent type.
func (r *Resolver) RoomEvent() RoomEventResolver { return roomEventResolver{r} }

type (
	subscriptionResolver struct{ *Resolver }
	roomEventResolver    struct{ *Resolver }
)

// A subscription resolver runs once per shared execution, not once per
// subscriber: the server shares one execution among every identical
// subscription on this replica. It watches a chat topic and turns each
// change into an event whose context carries the change's cursor and log
// time. The pump goroutine ends when ctx is cancelled (the last subscriber
// left, or the server stops); the channel is closed then.

func (r subscriptionResolver) MessagePosted(ctx context.Context, roomID string, after *string) (<-chan graphql.Event[*chat.Message], error) {
	if err := r.roomExists(ctx, roomID, after != nil); err != nil {
		return nil, err
	}
	ch, err := watch(ctx, r.Resolver, chat.RoomTopic(roomID), roomScope(roomID), after, func(c *chat.Change) (*chat.Message, bool) {
		return c.Message, c.Type == chat.MessagePosted
	})
	if err == nil {
		auth.Announce(ctx, roomID) // its subscribers are in the room: roomPresence
	}
	return ch, err
}

func (r subscriptionResolver) RoomEvents(ctx context.Context, roomID string, after *string) (<-chan graphql.Event[*chat.Change], error) {
	if err := r.roomExists(ctx, roomID, after != nil); err != nil {
		return nil, err
	}
	ch, err := watch(ctx, r.Resolver, chat.RoomTopic(roomID), roomScope(roomID), after, func(c *chat.Change) (*chat.Change, bool) {
		return c, c.Message != nil // not member changes
	})
	if err == nil {
		auth.Announce(ctx, roomID) // its subscribers are in the room: roomPresence
	}
	return ch, err
}

// RoomCreated reports public rooms only: a private room's creation is
// nobody's business but its creator's, and the execution is shared by
// every identity.
func (r subscriptionResolver) RoomCreated(ctx context.Context, after *string) (<-chan graphql.Event[*chat.Room], error) {
	return watch(ctx, r.Resolver, chat.RoomsTopic, directoryScope(), after, func(c *chat.Change) (*chat.Room, bool) {
		return &c.Room, !c.Room.Private
	})
}

// roomExists refuses a subscription to a room that does not exist, and a
// resume of a private room by a non-member whatever its cursor:
// WatchAfterFor refuses it too, but only once the cursor has been read,
// and one of another incarnation of the log would be CURSOR_EXPIRED,
// which sends the client refetching instead of stopping. Membership is
// checked as WatchAfterFor checks it (Admits), looking again at the log
// for a member this replica does not know yet.
func (r subscriptionResolver) roomExists(ctx context.Context, roomID string, resuming bool) error {
	room, ok, err := r.chat.LookupRoom(ctx, roomID)
	switch {
	case err != nil:
		return err
	case !ok:
		return &chat.Error{Code: chat.CodeNotFound, Message: fmt.Sprintf("room %q does not exist", roomID)}
	case resuming && room.Private:
		admitted, err := r.chat.Admits(ctx, viewerID(ctx), roomID)
		if err != nil {
			return err
		}
		if !admitted {
			return &chat.Error{Code: chat.CodeForbidden, Message: "forbidden: you are not a member of room " + roomID}
		}
	}
	return nil
}

// watch starts a watcher of topic before returning, so no change applied
// after the subscription was accepted is missed — after a cursor, it first
// replays what followed the cursor — and pumps the changes that pick
// selects into the returned channel until ctx ends. scope is what the
// topic's positions index: after must be one of its cursors, and the
// events' cursors are.
func watch[T any](ctx context.Context, r *Resolver, topic string, scope cursorScope, after *string, pick func(*chat.Change) (T, bool)) (<-chan graphql.Event[T], error) {
	var (
		w   *chat.Watcher
		err error
	)
	if after == nil {
		w, err = r.chat.Watch(ctx, topic)
	} else {
		var pos uint64
		if pos, err = r.decodeCursor("after", scope, after); err != nil {
			return nil, err
		}
		// A resume runs in an execution of its own (the server never shares
		// one with a cursor), so the identity on ctx is its one subscriber.
		w, err = r.chat.WatchAfterFor(ctx, topic, pos, viewerID(ctx))
	}
	if err != nil {
		return nil, err
	}
	recheck, allowed, err := restrict(ctx, w)
	if err != nil {
		w.Close()
		return nil, err
	}
	if pos, gen, ok := w.CaughtUp(func(c *chat.Change) bool { _, ok := pick(c); return ok }); ok {
		eventmeta.CaughtUp(ctx, eventmeta.Meta{Position: pos, Generation: gen})
	}
	event := func(c *chat.Change, v T) graphql.Event[T] {
		meta := eventmeta.Meta{Cursor: r.encodeCursor(scope, c.Seq), Appended: c.At, Position: c.Seq, Generation: c.Generation}
		return graphql.Event[T]{Context: eventmeta.WithMeta(ctx, meta), Value: v}
	}
	// Changes go straight into the channel's buffer from the goroutine
	// that applies the log, sparing a goroutine hand-off per event; the
	// pump below only forwards what did not fit (and a resume's replay).
	out := make(chan graphql.Event[T], eventBuffer)
	w.SetOffer(func(c chat.Change) bool {
		if c.Type == chat.MemberRemoved || (allowed != nil && !allowed(c.Seq)) {
			return false // for the pump, which rechecks outside the room's lock
		}
		v, ok := pick(&c)
		if !ok {
			return true
		}
		select {
		case out <- event(&c, v):
			return true
		default:
			return false
		}
	})
	go func() {
		defer close(out)
		defer w.Close() // first: no offer reaches out once it is closed
		for {
			c, err := w.Next(ctx)
			var ended *chat.Error
			if errors.As(err, &ended) && ctx.Err() == nil {
				// The watcher can no longer give every change in order (the
				// log discarded some it missed): the subscription ends with
				// why (CURSOR_EXPIRED), which sends its client refetching.
				select {
				case out <- graphql.Event[T]{Context: eventmeta.WithMeta(ctx, eventmeta.Meta{End: ended})}:
				case <-ctx.Done():
				}
				return
			}
			if err != nil {
				return
			}
			if allowed != nil && !allowed(c.Seq) {
				return // the subscriber was removed from the room: no engine to end it with FORBIDDEN
			}
			if c.Type == chat.MemberRemoved {
				recheck()
				continue
			}
			v, ok := pick(&c)
			if !ok {
				continue
			}
			select {
			case out <- event(&c, v):
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// restrict hands a private room's gate to the engine sharing the
// subscription's execution (auth.Restrict), which admits each subscriber
// and each event by the room's membership. It returns what to call when a
// member is removed: the engine then ends that member's subscriptions with
// FORBIDDEN. Without such an engine, the identity on ctx is checked here,
// and allowed (nil with an engine) tells whether the change at a position
// may still reach them: once it says no, they were removed, and the
// subscription must end.
func restrict(ctx context.Context, w *chat.Watcher) (recheck func(), allowed func(seq uint64) bool, err error) {
	gate := w.Gate()
	if gate == nil {
		return func() {}, nil, nil
	}
	recheck, shared := auth.Restrict(ctx, gate)
	if shared {
		return recheck, nil, nil
	}
	viewer := viewerID(ctx)
	admitted, ok := gate.Access(viewer)
	if !ok {
		return nil, nil, &chat.Error{Code: chat.CodeForbidden, Message: "forbidden: you are not a member of this room"}
	}
	allowed = func(seq uint64) bool {
		since, ok := gate.Access(viewer)
		return ok && since == admitted && seq > since
	}
	return recheck, allowed, nil
}

// eventBuffer is how many events a subscription's channel holds before
// further changes wait in its watcher's unbounded mailbox.
const eventBuffer = 16

var roomEventKinds = map[chat.EventType]model.RoomEventKind{
	chat.MessagePosted:   model.RoomEventKindMessagePosted,
	chat.MessageEdited:   model.RoomEventKindMessageEdited,
	chat.MessageDeleted:  model.RoomEventKindMessageDeleted,
	chat.ReactionToggled: model.RoomEventKindReactionsChanged,
}

func (r roomEventResolver) Kind(_ context.Context, obj *chat.Change) (model.RoomEventKind, error) {
	kind, ok := roomEventKinds[obj.Type]
	if !ok {
		return "", fmt.Errorf("room event of unexpected type %q", obj.Type)
	}
	return kind, nil
}

// Room is the room's metadata; its counters are resolved at delivery time.
func (r roomEventResolver) Room(_ context.Context, obj *chat.Change) (*chat.Room, error) {
	return &obj.Room, nil
}

func (r roomEventResolver) Message(_ context.Context, obj *chat.Change) (*chat.Message, error) {
	if obj.Message == nil {
		return nil, fmt.Errorf("room event %d carries no message", obj.Seq)
	}
	return obj.Message, nil
}

func (r roomEventResolver) Cursor(_ context.Context, obj *chat.Change) (string, error) {
	return r.encodeCursor(roomScope(obj.Room.ID), obj.Seq), nil
}
