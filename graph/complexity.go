package graph

import "github.com/heraldhq/herald/chat"

// complexity counts a page's selections once for every item it may hold,
// for the server's complexity limit (server.Limits.MaxComplexity): the
// rooms, each room's messages, each message's room and its messages, …
// multiply, so a document of a hundred bytes could otherwise ask for
// millions of objects at a complexity of a dozen.
func complexity() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Rooms = func(children int, first *int, _ *string) int {
		return pageComplexity(children, first, nil, defaultRoomsPage)
	}
	c.Room.Members = func(children int, first *int, _ *string) int {
		return pageComplexity(children, first, nil, defaultMembersPage)
	}
	c.Room.Messages = func(children int, last *int, _ *string, first *int, _ *string) int {
		return pageComplexity(children, first, last, defaultMessagesPage)
	}
	// A message's reactions are a list, not a page, but may be as long: a
	// group per distinct emoji, up to chat.MaxReactionGroups. (A message
	// given more before the cap existed still lists them all; proposals
	// keep new ones within it.)
	c.Message.Reactions = func(children int) int { return 1 + children*chat.MaxReactionGroups }
	return c
}

// pageComplexity is 1 plus children once for each item the page may hold:
// first or last as given (within what a page may hold: beyond it the
// resolver refuses), or the default page's size.
func pageComplexity(children int, first, last *int, def chat.Window) int {
	n := max(def.First, def.Last)
	for _, given := range []*int{first, last} {
		if given != nil {
			n = min(max(*given, 0), MaxPageSize)
		}
	}
	return 1 + children*n
}
