package server

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
	srv, _ := newTestServer(t, func(o *Options) {
		o.Schema = interfaceSchema{fakeSchema{schema: s}}
		o.ViewerDirective = "viewerDependent"
		o.PingInterval = time.Minute
	})
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	r := &replica{t: t, server: srv, http: hs, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql"}
	for _, user := range []string{"alice", "bob"} {
		r.dialTransport(user).subscribe("subscribe", "1", `subscription { me { name } }`, nil)
	}
	waitFor(t, "both subscriptions to join", func() bool { return r.members() == 2 })
	if n := srv.ws.execs.count(); n != 2 {
		t.Errorf("alice and bob share %d execution(s) of a type marked @viewerDependent, want 2 (or New should refuse the mark's OBJECT location)", n)
	}
}
