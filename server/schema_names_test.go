package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/auth"
)

// New checks the two names a domain gives it from its schema,
// Options.ViewerDirective and Options.ResumeArgument, against the schema.
// Neither fails anywhere later: a directive the schema does not declare
// marks no field, so every viewer's values are shared with every other
// identity; a resume argument no subscription takes is never found, so a
// resume is shared as if it were live, and a second subscriber resuming
// from the same cursor joins after the replay and misses it. Empty names
// stay allowed (never share across identities; no resume).
func TestNewChecksSchemaNames(t *testing.T) {
	const base = `type Query { x: Int }
		directive @viewerDependent on FIELD_DEFINITION
		directive @onQuery on QUERY
		type Mutation { bump: Int! }
	`
	for _, tc := range []struct {
		name           string
		subscription   string // the Subscription type's SDL, "" for none
		viewer, resume string
		wantErr        []string // substrings of New's error; none: New succeeds
	}{
		{"both names declared", `type Subscription { ticks(after: String): Int, presence(room: ID!): Int }`,
			"viewerDependent", "after", nil},
		{"both empty", `type Subscription { ticks: Int }`, "", "", nil},
		{"a non-null String cursor", `type Subscription { ticks(after: String!): Int }`, "", "after", nil},
		{"a directive the schema does not declare", `type Subscription { ticks(after: String): Int }`,
			"viewerDependant", "after", []string{"Options.ViewerDirective", `"viewerDependant"`, "@onQuery, @viewerDependent"}},
		{"a directive not on field definitions", `type Subscription { ticks(after: String): Int }`,
			"onQuery", "after", []string{"Options.ViewerDirective", `"onQuery"`, "QUERY", "FIELD_DEFINITION"}},
		{"a cursor argument no subscription field takes", `type Subscription { ticks(after: String): Int, presence(room: ID!): Int }`,
			"viewerDependent", "cursor", []string{"Options.ResumeArgument", `"cursor"`, "ticks(after), presence(room)"}},
		{"a cursor argument that is not a String", `type Subscription { ticks(after: Int): Int }`,
			"", "after", []string{"Options.ResumeArgument", "Subscription.ticks", "Int"}},
		{"a cursor argument that is a list", `type Subscription { ticks(after: [String]): Int }`,
			"", "after", []string{"Options.ResumeArgument", "[String]"}},
		{"a cursor argument with no Subscription type", "", "", "after",
			[]string{"Options.ResumeArgument", "no Subscription type"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			schema, err := gqlparser.LoadSchema(&ast.Source{Name: "names.graphql", Input: base + tc.subscription})
			if err != nil {
				t.Fatalf("load schema: %v", err)
			}
			opts := Options{
				Schema: fakeSchema{schema: schema}, Authenticator: auth.Dev{},
				Readiness:       func(context.Context) []Check { return nil },
				ViewerDirective: tc.viewer, ResumeArgument: tc.resume,
			}
			s, err := New(opts)
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = s.Shutdown(ctx)
			}
			switch {
			case len(tc.wantErr) == 0 && err != nil:
				t.Fatalf("New: %v; want it to accept ViewerDirective %q and ResumeArgument %q", err, tc.viewer, tc.resume)
			case len(tc.wantErr) > 0 && err == nil:
				t.Fatalf("New accepted ViewerDirective %q and ResumeArgument %q; want an error naming %q", tc.viewer, tc.resume, tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New: %v; want it to say %q", err, want)
				}
			}
		})
	}
}
