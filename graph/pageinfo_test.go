package graph

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// TestPageInfoWithinCursors: when a page is asked for with first and
// before (or last and after), hasNextPage (hasPreviousPage) must say
// whether more edges lie between the cursors than the count returned, not
// whether anything lies beyond the cursor.
//
// The Relay cursor connections spec (https://relay.dev/graphql/connections.htm,
// 4.3 Pagination algorithm) is exact here:
//
//	HasNextPage: if first is set, let edges be ApplyCursorsToEdges(allEdges,
//	before, after); if edges contains more than first elements return true,
//	otherwise false.
//	HasPreviousPage: if last is set, let edges be ApplyCursorsToEdges(...);
//	if edges contains more than last elements return true, otherwise false.
//
// (graphql-relay-js's connectionFromArray does the same.) The "may return
// true if elements exist beyond the cursor" latitude applies only to
// before with last and after with first, which is not what is asked here.
// Herald used to answer whether anything lay beyond the cursor.
func TestPageInfoWithinCursors(t *testing.T) {
	svc := startChat(t)
	ctx := context.Background()
	alice := chat.Actor{ID: "alice"}
	do := executor(t, svc)
	r := &Resolver{chat: svc, epoch: 1} // executor's epoch (time.Unix(0, 1))

	room, err := svc.CreateRoom(ctx, alice, "paging")
	if err != nil {
		t.Fatal(err)
	}
	var msgs []chat.Message
	for i := 1; i <= 5; i++ {
		m, err := svc.PostMessage(ctx, alice, room.ID, fmt.Sprint("m", i), "")
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	m3 := r.encodeCursor(roomScope(room.ID), msgs[2].Seq)

	type page struct {
		Nodes    []struct{ Text string }
		PageInfo struct{ HasNextPage, HasPreviousPage bool }
	}
	query := func(args string) page {
		t.Helper()
		resp := do("", fmt.Sprintf(`{ room(id: %q) { messages(%s) { nodes { text } pageInfo { hasNextPage hasPreviousPage } } } }`, room.ID, args))
		if len(resp.Errors) > 0 {
			t.Fatalf("%s: %+v", args, resp.Errors)
		}
		var v struct{ Room struct{ Messages page } }
		if err := json.Unmarshal(resp.Data, &v); err != nil {
			t.Fatal(err)
		}
		return v.Room.Messages
	}

	// first: 10 before m3: the edges between the cursors are m1, m2, both
	// returned; none is left after them within the cursors.
	p := query(fmt.Sprintf("first: 10, before: %q", m3))
	if len(p.Nodes) != 2 {
		t.Fatalf("first: 10, before m3: %+v, want m1, m2", p.Nodes)
	}
	if p.PageInfo.HasNextPage {
		t.Errorf("first: 10, before m3 (m1, m2 returned, nothing more before m3): hasNextPage = true, want false (Relay spec HasNextPage, first is set)")
	}

	// last: 10 after m3: the edges between the cursors are m4, m5, both
	// returned; none is left before them within the cursors.
	p = query(fmt.Sprintf("last: 10, after: %q", m3))
	if len(p.Nodes) != 2 {
		t.Fatalf("last: 10, after m3: %+v, want m4, m5", p.Nodes)
	}
	if p.PageInfo.HasPreviousPage {
		t.Errorf("last: 10, after m3 (m4, m5 returned, nothing more after m3): hasPreviousPage = true, want false (Relay spec HasPreviousPage, last is set)")
	}

	// Either way, what lies beyond the other cursor may be told.
	if p := query(fmt.Sprintf("first: 1, after: %q", m3)); !p.PageInfo.HasPreviousPage || !p.PageInfo.HasNextPage {
		t.Errorf("first: 1, after m3 (m4 returned): %+v, want both pages", p.PageInfo)
	}

	// A cursor at the list's start (an empty room's resumeCursor, position
	// 0) as before: nothing lies between the cursors, so with first nothing
	// is next; with last, what lies beyond it may be told.
	start := r.encodeCursor(roomScope(room.ID), 0)
	if p := query(fmt.Sprintf("first: 10, before: %q", start)); len(p.Nodes) != 0 || p.PageInfo.HasNextPage || p.PageInfo.HasPreviousPage {
		t.Errorf("first: 10, before the start: %+v, want nothing and no pages", p)
	}
	if p := query(fmt.Sprintf("last: 10, before: %q", start)); len(p.Nodes) != 0 || !p.PageInfo.HasNextPage || p.PageInfo.HasPreviousPage {
		t.Errorf("last: 10, before the start: %+v, want nothing and a next page", p)
	}
}
