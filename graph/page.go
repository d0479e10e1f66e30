package graph

import (
	"fmt"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph/model"
)

// MaxPageSize bounds first and last.
const MaxPageSize = 100

// window turns Relay pagination arguments into a chat.Window. empty reports
// that the client asked for zero items.
// With neither first nor last, def supplies the count (and, given only
// after, pages forward from it).
// Cursors must be scope's (see cursorScope).
func (r *Resolver) window(scope cursorScope, first, last *int, after, before *string, def chat.Window) (w chat.Window, empty bool, err error) {
	if first != nil && last != nil {
		return w, false, badInput("pass first or last, not both")
	}
	for name, n := range map[string]*int{"first": first, "last": last} {
		if n != nil && (*n < 0 || *n > MaxPageSize) {
			return w, false, badInput(fmt.Sprintf("%s must be between 0 and %d, got %d", name, MaxPageSize, *n))
		}
	}
	if w.After, err = r.decodeCursor("after", scope, after); err != nil {
		return w, false, err
	}
	if w.Before, err = r.decodeCursor("before", scope, before); err != nil {
		return w, false, err
	}
	switch {
	case first != nil:
		w.First = *first
		empty = *first == 0
	case last != nil:
		w.Last = *last
		empty = *last == 0
	case after != nil && before == nil && def.Last > 0:
		// Only a cursor to page forward from: the page right after it,
		// not the latest ones, which would leave a gap behind the cursor.
		w.First = def.Last
	default:
		w.First, w.Last = def.First, def.Last
	}
	return w, empty, nil
}

// connection builds a Relay connection's edges, nodes and page info from a
// page; each item's cursor is its log sequence, in scope.
func connection[T, E any](r *Resolver, scope cursorScope, page chat.Page[T], seq func(*T) uint64, edge func(string, *T) *E) ([]*E, []*T, *model.PageInfo) {
	edges, nodes := make([]*E, len(page.Items)), make([]*T, len(page.Items))
	info := &model.PageInfo{HasNextPage: page.HasNextPage, HasPreviousPage: page.HasPreviousPage}
	for i := range page.Items {
		item := &page.Items[i]
		cursor := r.encodeCursor(scope, seq(item))
		nodes[i], edges[i] = item, edge(cursor, item)
		if i == 0 {
			info.StartCursor = &cursor
		}
		if i == len(page.Items)-1 {
			info.EndCursor = &cursor
		}
	}
	return edges, nodes, info
}

func badInput(msg string) error { return &chat.Error{Code: chat.CodeBadUserInput, Message: msg} }
