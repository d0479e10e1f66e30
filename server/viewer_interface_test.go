package server

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// interfaceSDL: a domain whose events are behind interfaces, as a
// Node-style schema has them. Post.mine and Entry.own depend on who asks;
// each is marked on one side only: GraphQL carries a field's directives
// neither from an interface to its implementations nor back.
const interfaceSDL = `
directive @viewerDependent on FIELD_DEFINITION
type Query { x: Int }
interface Item { id: ID! mine: Boolean! }
type Post implements Item { id: ID! mine: Boolean! @viewerDependent }
type Note implements Item { id: ID! mine: Boolean! }
interface Entry { id: ID! own: Boolean! @viewerDependent }
type Memo implements Entry { id: ID! own: Boolean! }
type Subscription { itemAdded: Item! entryAdded: Entry! }
`

// interfaceSchema's subscriptions send nothing until they end.
type interfaceSchema struct{ fakeSchema }

func (s interfaceSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx).Operation; op != nil && op.Operation == ast.Subscription {
		return func(ctx context.Context) *graphql.Response {
			<-ctx.Done()
			return nil
		}
	}
	return s.fakeSchema.Exec(ctx)
}

// TestViewerFieldThroughInterfaceIsPerIdentity: alice and bob subscribe
// alike, selecting a field the ViewerDirective marks; they must not share
// an execution, whichever type the field is selected through. Selected
// through the interface (or, marked on the interface, through the
// implementing type), the mark was not seen: one execution served both,
// and bob would get alice's value of the field.
func TestViewerFieldThroughInterfaceIsPerIdentity(t *testing.T) {
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "interfaces.graphql", Input: interfaceSDL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, query string }{
		{"marked on the type, selected on the type", `subscription { itemAdded { id ... on Post { mine } } }`},
		{"marked on the type, selected through the interface", `subscription { itemAdded { id mine } }`},
		{"marked on the interface, selected through it", `subscription { entryAdded { id own } }`},
		{"marked on the interface, selected on the type", `subscription { entryAdded { id ... on Memo { own } } }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if n := executionsForAliceAndBob(t, s, tc.query); n != 2 {
				t.Errorf("%s: alice and bob share %d execution(s), want 2: bob would be sent alice's viewer-dependent values", tc.query, n)
			}
		})
	}
}

// executionsForAliceAndBob subscribes alice and bob alike with query, on
// a server of schema s whose ViewerDirective is viewerDependent, and
// returns how many executions serve them.
func executionsForAliceAndBob(t *testing.T, s *ast.Schema, query string) int {
	t.Helper()
	srv, _ := newTestServer(t, func(o *Options) {
		o.Schema = interfaceSchema{fakeSchema{schema: s}}
		o.ViewerDirective = "viewerDependent"
		o.PingInterval = time.Minute
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	r := &replica{t: t, server: srv, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}
	for _, user := range []string{"alice", "bob"} {
		r.dialTransport(user).subscribe("subscribe", "1", query, nil)
	}
	waitFor(t, "both subscriptions to join", func() bool { return r.members() == 2 })
	return srv.ws.execs.count()
}
