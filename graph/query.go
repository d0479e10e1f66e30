package graph

import (
	"context"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph/model"
)

// Query returns the resolvers of the Query type.
func (r *Resolver) Query() QueryResolver { return queryResolver{r} }

type queryResolver struct{ *Resolver }

// defaultRoomsPage applies when neither first nor last is given.
var defaultRoomsPage = chat.Window{First: 50}

// viewerID is who asks, "" when anonymous.
func viewerID(ctx context.Context) string {
	id, _ := auth.FromContext(ctx)
	return id.UserID
}

func (r queryResolver) Rooms(ctx context.Context, first *int, after *string) (*model.RoomConnection, error) {
	w, empty, err := r.window(directoryScope(), first, nil, after, nil, defaultRoomsPage)
	if err != nil {
		return nil, err
	}
	if empty {
		w.First = 1 // probe whether anything follows, then return nothing
	}
	page, err := r.chat.Rooms(ctx, viewerID(ctx), w)
	if err != nil {
		return nil, err
	}
	if empty {
		page.HasNextPage, page.Items = len(page.Items) > 0 || page.HasNextPage, nil
	}
	edges, nodes, info := connection(r.Resolver, directoryScope(), page, func(room *chat.Room) uint64 { return room.Seq },
		func(cursor string, room *chat.Room) *model.RoomEdge {
			return &model.RoomEdge{Cursor: cursor, Node: room}
		})
	return &model.RoomConnection{Edges: edges, Nodes: nodes, PageInfo: info, TotalCount: page.TotalCount,
		ResumeCursor: r.encodeCursor(directoryScope(), page.Last)}, nil
}

func (r queryResolver) Room(ctx context.Context, id string) (*chat.Room, error) {
	room, ok, err := r.chat.VisibleRoom(ctx, viewerID(ctx), id)
	if !ok || err != nil {
		return nil, err
	}
	return &room, nil
}

func (r queryResolver) Message(ctx context.Context, id string) (*chat.Message, error) {
	msg, ok, err := r.chat.Message(ctx, viewerID(ctx), id)
	if !ok || err != nil {
		return nil, err
	}
	return &msg, nil
}

func (r queryResolver) Viewer(ctx context.Context) (*chat.Actor, error) {
	id, ok := auth.FromContext(ctx)
	if !ok {
		return nil, nil
	}
	return &chat.Actor{ID: id.UserID, Name: id.Name}, nil
}
