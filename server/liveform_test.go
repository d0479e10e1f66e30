package server

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
)

// A resumed subscription continues as its live form, the same operation
// without the cursor, which it shares with others. The live form left the
// cursor variable out, so a variable whose default is a cursor
// (`$after: String = "…"`, sent without it) kept the cursor: the shared
// execution resumed, started by whoever came first, its resolver checking
// that subscriber's access to the replay. The live form sends it null.
func TestLiveFormHasNoCursor(t *testing.T) {
	fs := newFakeSchema(t)
	x := preciseExecutor{GraphExecutor: executor.New(fs), schema: fs.Schema()}
	ctx := graphql.StartOperationTrace(context.Background())
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
	}{
		{"a cursor by default", `query($c: String = "cursor") { echo(s: $c) }`, nil},
		{"a cursor given", `query($c: String) { echo(s: $c) }`, map[string]any{"c": "cursor"}},
	} {
		raw := &graphql.RawParams{Query: tc.query, Variables: tc.vars}
		rc, errs := x.CreateOperationContext(ctx, raw)
		if errs != nil {
			t.Fatalf("%s: %v", tc.name, errs)
		}
		if use := findCursor(rc, "s"); !use.given || use.variable != "c" {
			t.Fatalf("%s: findCursor = %+v, want the cursor given in $c", tc.name, use)
		}
		live := liveForm(ctx, x, raw, "c")
		if live == nil {
			t.Fatalf("%s: no live form", tc.name)
		}
		if use := findCursor(live, "s"); use.given {
			t.Errorf("%s: the live form still has a cursor (%v)", tc.name, live.Variables)
		}
	}
	// Non-null, the cursor variable has no live form: the subscriber keeps
	// an execution of its own.
	raw := &graphql.RawParams{Query: `query($c: String!) { echo(s: $c) }`, Variables: map[string]any{"c": "cursor"}}
	if live := liveForm(ctx, x, raw, "c"); live != nil {
		t.Errorf("a non-null cursor variable has a live form: %v", live.Variables)
	}
}
