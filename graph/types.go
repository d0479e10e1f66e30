package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph/model"
)

// Room returns the resolvers of the Room type.
func (r *Resolver) Room() RoomResolver { return roomResolver{r} }

// Message returns the resolvers of the Message type.
func (r *Resolver) Message() MessageResolver { return messageResolver{r} }

// User returns the resolvers of the User type.
func (r *Resolver) User() UserResolver { return userResolver{r} }

type (
	roomResolver    struct{ *Resolver }
	messageResolver struct{ *Resolver }
	userResolver    struct{ *Resolver }
)

// defaultMessagesPage applies when neither first nor last is given: the
// latest messages, as a chat client opens a room.
var defaultMessagesPage = chat.Window{Last: 50}

func (r roomResolver) CreatedBy(_ context.Context, obj *chat.Room) (*chat.Actor, error) {
	return &obj.CreatedBy, nil
}

// MessageCount and LastMessageAt need the room's messages: reading them
// loads the room on this replica (Room's other fields come from the
// directory alone).
func (r roomResolver) MessageCount(ctx context.Context, obj *chat.Room) (int, error) {
	if hidden, err := r.hidden(ctx, obj); hidden || err != nil {
		return 0, err
	}
	stats, err := r.chat.RoomStats(ctx, obj.ID)
	return stats.MessageCount, err
}

func (r roomResolver) LastMessageAt(ctx context.Context, obj *chat.Room) (*time.Time, error) {
	if hidden, err := r.hidden(ctx, obj); hidden || err != nil {
		return nil, err
	}
	stats, err := r.chat.RoomStats(ctx, obj.ID)
	if err != nil {
		return nil, err
	}
	return optionalTime(stats.LastMessageAt), nil
}

// hidden reports whether what a private room holds (its messages, members
// and counters) is to be kept from whoever reads the room's fields. A query
// or mutation may hold a room its viewer is no longer a member of when
// those fields are read: removeMember of themselves returns the room they
// left, and a member may be removed between a root field and its fields.
// Nothing is an error there (removeMember succeeded): the room simply
// shows nothing. A subscription's fields are left to the engine's gate,
// which admits each event to each subscriber by the room's membership:
// the identity on the execution's context is only one of the subscribers
// sharing it. A public room costs one comparison.
func (r roomResolver) hidden(ctx context.Context, obj *chat.Room) (bool, error) {
	if !obj.Private || inSubscription(ctx) {
		return false, nil
	}
	sees, err := r.chat.CanSee(ctx, viewerID(ctx), obj.ID)
	return !sees, err
}

// inSubscription reports whether ctx is a subscription's.
func inSubscription(ctx context.Context) bool {
	if !graphql.HasOperationContext(ctx) {
		return false
	}
	op := graphql.GetOperationContext(ctx).Operation
	return op != nil && op.Operation == ast.Subscription
}

func (r roomResolver) Messages(ctx context.Context, obj *chat.Room, last *int, before *string, first *int, after *string) (*model.MessageConnection, error) {
	scope := roomScope(obj.ID)
	w, empty, err := r.window(scope, first, last, after, before, defaultMessagesPage)
	if err != nil {
		return nil, err
	}
	if hidden, err := r.hidden(ctx, obj); err != nil {
		return nil, err
	} else if hidden {
		// Position 0 tells nothing of the room; a subscription is refused.
		return &model.MessageConnection{Edges: []*model.MessageEdge{}, Nodes: []*chat.Message{}, PageInfo: &model.PageInfo{},
			ResumeCursor: r.encodeCursor(scope, 0)}, nil
	}
	// A cursor at position 0 (an empty room's resumeCursor) is the list's
	// start: nothing lies before it, though Window.Before 0 is no bound.
	beforeStart := before != nil && w.Before == 0
	forward := first != nil
	if empty {
		// Probe whether anything lies in the asked direction, return nothing.
		if forward {
			w.First = 1
		} else {
			w.Last = 1
		}
	}
	page, err := r.chat.Messages(ctx, obj.ID, w)
	if err != nil {
		return nil, err
	}
	if empty {
		if forward {
			page.HasNextPage = len(page.Items) > 0 || page.HasNextPage
		} else {
			page.HasPreviousPage = len(page.Items) > 0 || page.HasPreviousPage
		}
		page.Items = nil
	}
	if beforeStart {
		// Nothing lies between the cursors: with first, nothing is next
		// either (see chat's bounds).
		page.Items, page.HasPreviousPage, page.HasNextPage = nil, false, !forward && page.TotalCount > 0
	}
	edges, nodes, info := connection(r.Resolver, scope, page, func(m *chat.Message) uint64 { return m.Seq },
		func(cursor string, m *chat.Message) *model.MessageEdge {
			return &model.MessageEdge{Cursor: cursor, Node: m}
		})
	return &model.MessageConnection{Edges: edges, Nodes: nodes, PageInfo: info, TotalCount: page.TotalCount,
		ResumeCursor: r.encodeCursor(scope, page.Last)}, nil
}

// defaultMembersPage applies when first is not given.
var defaultMembersPage = chat.Window{First: 50}

// Members, like the room's other content, is kept from a viewer who is not
// a member (see hidden).
func (r roomResolver) Members(ctx context.Context, obj *chat.Room, first *int, after *string) (*model.RoomMemberConnection, error) {
	scope := membersScope(obj.ID)
	w, empty, err := r.window(scope, first, nil, after, nil, defaultMembersPage)
	if err != nil {
		return nil, err
	}
	if hidden, err := r.hidden(ctx, obj); err != nil {
		return nil, err
	} else if hidden {
		return &model.RoomMemberConnection{Edges: []*model.RoomMemberEdge{}, Nodes: []*chat.Actor{}, PageInfo: &model.PageInfo{}}, nil
	}
	if empty {
		w.First = 1 // probe whether anything follows, then return nothing
	}
	page, err := r.chat.Members(ctx, obj.ID, w)
	if err != nil {
		return nil, err
	}
	if empty {
		page.HasNextPage, page.Items = len(page.Items) > 0 || page.HasNextPage, nil
	}
	// A member's cursor is its join position plus one: the creator's is 1.
	edges, members, info := connection(r.Resolver, scope, page, func(m *chat.Member) uint64 { return m.Since + 1 },
		func(cursor string, m *chat.Member) *model.RoomMemberEdge {
			return &model.RoomMemberEdge{Cursor: cursor, Node: &m.User, JoinedAt: m.JoinedAt}
		})
	nodes := make([]*chat.Actor, len(members))
	for i, m := range members {
		nodes[i] = &m.User
	}
	return &model.RoomMemberConnection{Edges: edges, Nodes: nodes, PageInfo: info, TotalCount: page.TotalCount}, nil
}

// Room resolves to the room's metadata; its counters are resolved against
// the room as it is when they are read, so they reflect the latest applied
// event.
func (r messageResolver) Room(ctx context.Context, obj *chat.Message) (*chat.Room, error) {
	room, ok, err := r.chat.LookupRoom(ctx, obj.RoomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &chat.Error{Code: chat.CodeNotFound, Message: "room " + obj.RoomID + " does not exist"}
	}
	return &room, nil
}

func (r messageResolver) Author(_ context.Context, obj *chat.Message) (*chat.Actor, error) {
	return &obj.Author, nil
}

func (r messageResolver) EditedAt(_ context.Context, obj *chat.Message) (*time.Time, error) {
	return optionalTime(obj.EditedAt), nil
}

func (r messageResolver) Reactions(ctx context.Context, obj *chat.Message) ([]*model.ReactionGroup, error) {
	viewer, signedIn := auth.FromContext(ctx)
	groups := make([]*model.ReactionGroup, len(obj.Reactions))
	for i, re := range obj.Reactions {
		groups[i] = &model.ReactionGroup{
			Emoji:            re.Emoji,
			Count:            len(re.UserIDs),
			ViewerHasReacted: signedIn && re.HasUser(viewer.UserID),
		}
	}
	return groups, nil
}

func (r messageResolver) Cursor(_ context.Context, obj *chat.Message) (string, error) {
	return r.encodeCursor(roomScope(obj.RoomID), obj.UpdatedSeq), nil
}

// Name falls back to the ID for identities that carry no display name.
func (r userResolver) Name(_ context.Context, obj *chat.Actor) (string, error) {
	if obj.Name == "" {
		return obj.ID, nil
	}
	return obj.Name, nil
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
