package server

import (
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// siblingSDL: Post implements two interfaces that both declare mine; the
// domain marked it on Owned, the interface that says what it means. A
// subscription selects it through Item, the other one: the resolver run
// is Post's all the same, and it reads who asks.
const siblingSDL = `
directive @viewerDependent on FIELD_DEFINITION
type Query { x: Int }
interface Item { id: ID! mine: Boolean! }
interface Owned { mine: Boolean! @viewerDependent }
type Post implements Item & Owned { id: ID! mine: Boolean! }
interface Node { id: ID! }
interface Entry implements Node { id: ID! own: Boolean! }
interface Mine { own: Boolean! @viewerDependent }
type Memo implements Node & Entry & Mine { id: ID! own: Boolean! }
type Subscription { itemAdded: Item! entryAdded: Entry! }
`

// TestViewerFieldThroughSiblingInterfaceIsPerIdentity: alice and bob
// subscribe alike, selecting through one interface a field that another
// interface of the same implementing type marks. They must not share an
// execution: bob would be sent alice's value.
func TestViewerFieldThroughSiblingInterfaceIsPerIdentity(t *testing.T) {
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "siblings.graphql", Input: siblingSDL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, query string }{
		{"control: selected on the type", `subscription { itemAdded { id ... on Post { mine } } }`},
		{"control: selected through the marking interface", `subscription { itemAdded { id ... on Owned { mine } } }`},
		{"selected through the other interface", `subscription { itemAdded { id mine } }`},
		{"selected through an interface implementing another", `subscription { entryAdded { id own } }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := executionsForAliceAndBob(t, s, tc.query); n != 2 {
				t.Errorf("%s: alice and bob share %d execution(s), want 2: bob would be sent alice's viewer-dependent values", tc.query, n)
			}
		})
	}
}
