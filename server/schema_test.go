package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/auth"
)

// fakeSDL is the schema the tests serve. Besides the fields the brief names
// it has boom (a panicking resolver) and a Subscription type, so that the
// panic logging and the refusal of subscriptions over HTTP can be tested,
// and echo, which takes an argument of every built-in scalar, a list, an
// input object, an enum and a custom scalar, for the coercion of variables.
const fakeSDL = `
type Query {
	hello(name: String!): String!
	whoami: String
	fail: String
	boom: String
	echo(s: String, b: Boolean, i: Int, f: Float, id: ID, l: [String!], in: EchoInput, ins: [EchoInput!], e: Tone, x: Opaque): String
}
input EchoInput { s: String, i: Int, l: [Int!], f: Float, id: ID, ids: [ID!] }
enum Tone { LOW HIGH }
scalar Opaque
type Mutation { bump: Int! }
type Subscription { ticks: Int! }
`

// fakeSchema is a hand-written graphql.ExecutableSchema standing in for the
// generated one. It resolves top-level fields only, reporting errors and
// recovering panics the way generated code does, so the server under test
// sees what it will see in production.
type fakeSchema struct {
	schema *ast.Schema
}

var _ graphql.ExecutableSchema = fakeSchema{}

func newFakeSchema(t testing.TB) fakeSchema {
	t.Helper()
	s, err := gqlparser.LoadSchema(&ast.Source{Name: "fake.graphql", Input: fakeSDL})
	if err != nil {
		t.Fatalf("load fake schema: %v", err)
	}
	return fakeSchema{schema: s}
}

func (f fakeSchema) Schema() *ast.Schema { return f.schema }

func (fakeSchema) Complexity(context.Context, string, string, int, map[string]any) (int, bool) {
	return 0, false
}

// Exec returns a one-shot handler, like generated code for queries and
// mutations.
func (fakeSchema) Exec(ctx context.Context) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	done := false
	return func(ctx context.Context) *graphql.Response {
		if done {
			return nil
		}
		done = true
		return &graphql.Response{Data: resolveSelection(ctx, opCtx)}
	}
}

// resolveSelection renders the operation's top-level fields in order.
func resolveSelection(ctx context.Context, opCtx *graphql.OperationContext) json.RawMessage {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for _, sel := range opCtx.Operation.SelectionSet {
		field, ok := sel.(*ast.Field)
		if !ok {
			continue // fragments are not needed by these tests
		}
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		fieldCtx := graphql.WithPathContext(ctx, graphql.NewPathWithField(field.Alias))
		value, _ := json.Marshal(resolveField(fieldCtx, opCtx, field))
		fmt.Fprintf(&buf, "%q:%s", field.Alias, value)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// resolveField returns the value of one field; errors and panics become
// null plus an entry in the response errors, as in generated code.
func resolveField(ctx context.Context, opCtx *graphql.OperationContext, field *ast.Field) (value any) {
	defer func() {
		if r := recover(); r != nil {
			graphql.AddError(ctx, opCtx.Recover(ctx, r))
			value = nil
		}
	}()
	switch field.Name {
	case "hello":
		return "hi " + field.ArgumentMap(opCtx.Variables)["name"].(string)
	case "whoami":
		if id, ok := auth.FromContext(ctx); ok {
			return id.UserID
		}
		return nil
	case "fail":
		graphql.AddError(ctx, notFoundError{what: "thing"})
		return nil
	case "boom":
		panic("boom went the resolver")
	case "bump":
		return 1
	case "echo":
		return fmt.Sprint(field.ArgumentMap(opCtx.Variables))
	}
	return nil
}

// notFoundError is a domain error carrying a GraphQL error code, as the
// resolvers' errors will.
type notFoundError struct{ what string }

func (e notFoundError) Error() string { return e.what + " not found" }

func (notFoundError) Extensions() map[string]any {
	return map[string]any{"code": "NOT_FOUND"}
}
