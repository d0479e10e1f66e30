package server

import (
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// TestViewerDirectiveOnATypeIsPerIdentity: a schema declares the
// ViewerDirective on OBJECT too, as New allows, and marks a whole type.
// Its fields depend on who asks; two users must not share.
func TestViewerDirectiveOnATypeIsPerIdentity(t *testing.T) {
	const sdl = `
directive @viewerDependent on FIELD_DEFINITION | OBJECT
type Query { x: Int }
type Me @viewerDependent { name: String! }
type Subscription { me: Me! }
`
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "typemark.graphql", Input: sdl})
	if err != nil {
		t.Fatal(err)
	}
	if n := executionsForAliceAndBob(t, s, `subscription { me { name } }`); n != 2 {
		t.Errorf("alice and bob share %d execution(s) of a type marked @viewerDependent, want 2 (or New should refuse the mark's OBJECT location)", n)
	}
}
