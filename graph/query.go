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

func (r queryResolver) Rooms(_ context.Context, first *int, after *string) (*model.RoomConnection, error) {
	w, empty, err := r.window(first, nil, after, nil, defaultRoomsPage)
	if err != nil {
		return nil, err
	}
	if empty {
		w.First = 1 // probe whether anything follows, then return nothing
	}
	page := r.chat.Rooms(w)
	if empty {
		page.HasNextPage, page.Items = len(page.Items) > 0 || page.HasNextPage, nil
	}
	conn := &model.RoomConnection{
		Edges:      []*model.RoomEdge{},
		Nodes:      []*chat.Room{},
		TotalCount: page.TotalCount,
	}
	for i := range page.Items {
		room := &page.Items[i]
		conn.Nodes = append(conn.Nodes, room)
		conn.Edges = append(conn.Edges, &model.RoomEdge{Cursor: r.encodeCursor(room.Seq), Node: room})
	}
	conn.PageInfo = r.pageInfo(page.HasNextPage, page.HasPreviousPage, len(page.Items),
		func(i int) uint64 { return page.Items[i].Seq })
	return conn, nil
}

func (r *Resolver) pageInfo(hasNext, hasPrev bool, n int, seqAt func(int) uint64) *model.PageInfo {
	info := &model.PageInfo{HasNextPage: hasNext, HasPreviousPage: hasPrev}
	if n > 0 {
		start, end := r.encodeCursor(seqAt(0)), r.encodeCursor(seqAt(n-1))
		info.StartCursor, info.EndCursor = &start, &end
	}
	return info
}

func (r queryResolver) Room(_ context.Context, id string) (*chat.Room, error) {
	room, ok := r.chat.Room(id)
	if !ok {
		return nil, nil
	}
	return &room, nil
}

func (r queryResolver) Message(_ context.Context, id string) (*chat.Message, error) {
	msg, ok := r.chat.Message(id)
	if !ok {
		return nil, nil
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
