package graph

import (
	"context"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
)

// Mutation returns the resolvers of the Mutation type.
func (r *Resolver) Mutation() MutationResolver { return mutationResolver{r} }

type mutationResolver struct{ *Resolver }

// actor is who the request acts as; mutations need someone.
func actor(ctx context.Context) (chat.Actor, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return chat.Actor{}, &chat.Error{Code: chat.CodeUnauthenticated,
			Message: "this operation needs an identity; sign in and retry"}
	}
	return chat.Actor{ID: id.UserID, Name: id.Name}, nil
}

func (r mutationResolver) CreateRoom(ctx context.Context, name string, private *bool) (*chat.Room, error) {
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	create := r.chat.CreateRoom
	if private != nil && *private {
		create = r.chat.CreatePrivateRoom
	}
	return room(create(ctx, who, name))
}

func (r mutationResolver) AddMember(ctx context.Context, roomID string, userID string) (*chat.Room, error) {
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	return room(r.chat.AddMember(ctx, who, roomID, userID))
}

func (r mutationResolver) RemoveMember(ctx context.Context, roomID string, userID string) (*chat.Room, error) {
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	return room(r.chat.RemoveMember(ctx, who, roomID, userID))
}

func room(r chat.Room, err error) (*chat.Room, error) {
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (r mutationResolver) PostMessage(ctx context.Context, roomID string, text string, idempotencyKey *string) (*chat.Message, error) {
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	key := ""
	if idempotencyKey != nil {
		if *idempotencyKey == "" {
			// chat reads "" as no key: a client sending one means a key.
			return nil, badInput("idempotencyKey must not be empty; leave it out (or null) to post without one")
		}
		key = *idempotencyKey
	}
	return message(r.chat.PostMessage(ctx, who, roomID, text, key))
}

func (r mutationResolver) EditMessage(ctx context.Context, id string, version int, text string) (*chat.Message, error) {
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	return message(r.chat.EditMessage(ctx, who, id, version, text))
}

func (r mutationResolver) DeleteMessage(ctx context.Context, id string, version int) (*chat.Message, error) {
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	return message(r.chat.DeleteMessage(ctx, who, id, version))
}

func (r mutationResolver) React(ctx context.Context, messageID string, emoji string) (*chat.Message, error) {
	who, err := actor(ctx)
	if err != nil {
		return nil, err
	}
	return message(r.chat.React(ctx, who, messageID, emoji))
}

func message(m chat.Message, err error) (*chat.Message, error) {
	if err != nil {
		return nil, err
	}
	return &m, nil
}
