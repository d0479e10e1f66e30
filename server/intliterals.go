package server

import (
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// validationRules returns the rule set documents are validated with:
// gqlparser's defaults, int32Literals, noIncrementalDelivery and
// subscriptionRootUnconditional (docrules.go), and noIntrospection unless
// introspection is allowed. The handler calls the function it returns for
// every document it validates (not for one it has cached), so the set is
// built afresh and nothing is shared.
func validationRules(introspection bool) func() *rules.Rules {
	return func() *rules.Rules {
		r := rules.NewDefaultRules()
		r.AddRule("Int32Literals", int32Literals)
		r.AddRule("NoIncrementalDelivery", noIncrementalDelivery)
		r.AddRule("SubscriptionRootUnconditional", subscriptionRootUnconditional)
		if !introspection {
			r.AddRule("NoIntrospection", noIntrospection)
		}
		return r
	}
}

// noIntrospection refuses a document that selects __schema or __type
// while introspection is off, as Apollo Server does. gqlgen would run it
// and answer {"__schema": null} with an error, a null in a field the spec
// makes non-null; GraphiQL takes such an answer for a schema, and shows
// "Invalid or incomplete introspection result" instead of the reason.
func noIntrospection(observers *core.Events, addError core.AddErrFunc) {
	observers.OnField(func(_ *core.Walker, f *ast.Field) {
		if f.Name == "__schema" || f.Name == "__type" {
			addError(core.Message("introspection is disabled on this server, and the document selects %s", f.Name), core.At(f.Position))
		}
	})
}

// int32Literals refuses an Int literal beyond 32 bits, wherever a query
// writes one (an argument, a list, an input object's field, a variable's
// default), as the GraphQL spec and graphql-js do, with the message of
// gqlparser's own rule, which refuses only those beyond 64 bits (gqlgen's
// int). Variables get the same range from checkNumbers.
func int32Literals(observers *core.Events, addError core.AddErrFunc) {
	observers.OnValue(func(_ *core.Walker, v *ast.Value) {
		if v.Kind != ast.IntValue || v.Definition == nil || v.Definition.Kind != ast.Scalar || v.Definition.Name != "Int" {
			return
		}
		if _, err := strconv.ParseInt(v.Raw, 10, 32); err == nil {
			return
		}
		if _, err := strconv.ParseInt(v.Raw, 10, 64); err != nil {
			return // ValuesOfCorrectType refuses it already
		}
		addError(core.Message("Int cannot represent non 32-bit signed integer value: %s", v.Raw), core.At(v.Position))
	})
}
