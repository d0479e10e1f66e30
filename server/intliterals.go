package server

import (
	"strconv"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// validationRules is gqlparser's default rule set and int32Literals. The
// handler calls it for every document it validates (not for one it has
// cached), so the set is built afresh and nothing is shared.
func validationRules() *rules.Rules {
	r := rules.NewDefaultRules()
	r.AddRule("Int32Literals", int32Literals)
	return r
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
