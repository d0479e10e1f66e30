package server

import (
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"
)

// TestNullCheckLeavesArgumentDefaults: a nullable variable without a
// default may stand where a non-null argument (or input field) with a
// schema default is (the spec's VariablesInAllowedPosition, and
// gqlparser's); left out, the argument takes its default, and
// nullForNonNull lets it be (it refused it as if the variable were null).
// Given as null, it is still refused.
func TestNullCheckLeavesArgumentDefaults(t *testing.T) {
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "s.graphql", Input: `
type Query { page(first: Int! = 20): String, find(in: Filter): String }
input Filter { limit: Int! = 5 }
`})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`query($f: Int) { page(first: $f) }`,
		`query($f: Int) { find(in: {limit: $f}) }`,
	} {
		doc, errs := gqlparser.LoadQueryWithRules(schema, q, validationRules(true)())
		if errs != nil {
			t.Fatalf("%s: validation refused it: %v", q, errs)
		}
		op := doc.Operations[0]
		vars, verr := validator.VariableValues(schema, op, map[string]any{})
		if verr != nil {
			t.Fatalf("%s: variables: %v", q, verr)
		}
		rc := &graphql.OperationContext{RawQuery: q, Doc: doc, Operation: op, Variables: vars}
		if e := nullForNonNull(rc); e != nil {
			t.Errorf("%s with $f omitted (the argument's default applies): refused with %q", q, e.Message)
		}
		nulled, verr := validator.VariableValues(schema, op, map[string]any{"f": nil})
		if verr != nil {
			t.Fatalf("%s: variables: %v", q, verr)
		}
		if e := nullForNonNull(&graphql.OperationContext{RawQuery: q, Doc: doc, Operation: op, Variables: nulled}); e == nil {
			t.Errorf("%s with $f null: not refused", q)
		}
	}
}
