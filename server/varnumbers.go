package server

import (
	"encoding/json"
	"strings"

	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// JSON numbers in variables.
//
// The transports decode variables with json.Number (decodeJSON,
// decodeClientMessage), so that large integers reach input coercion
// intact. But json.Number is a string to reflection, which is how
// gqlparser's coercion (validator.VariableValues) tells types apart: it
// takes the number 5 for a String or for the ID 1.5, and refuses 1.5 for
// an Int as "cannot use value 0 as Int" and 1 for a Boolean as "cannot use
// string as Boolean". checkNumbers finds those numbers first.

// checkNumbers returns an error for the first JSON number in vars, the
// raw variables of op, given where the variable's type takes no such
// number; nil if there is none. With upTo, the variable gqlparser refused,
// it looks no further than that variable, so that of two bad variables
// the first is reported, as gqlparser would.
func checkNumbers(schema *ast.Schema, op *ast.OperationDefinition, vars map[string]any, upTo string) *gqlerror.Error {
	for _, def := range op.VariableDefinitions {
		if v, ok := vars[def.Variable]; ok {
			path := ast.Path{ast.PathName("variable"), ast.PathName(def.Variable)}
			if err := checkNumber(schema, def.Type, v, path); err != nil {
				return err
			}
		}
		if def.Variable == upTo {
			break
		}
	}
	return nil
}

// failedVariable names the variable of errs if they are gqlparser's
// refusal of one variable's value, and is "" otherwise.
func failedVariable(errs gqlerror.List) string {
	if len(errs) != 1 || len(errs[0].Path) < 2 || errs[0].Path[0] != ast.PathName("variable") {
		return ""
	}
	name, _ := errs[0].Path[1].(ast.PathName)
	return string(name)
}

// checkNumber checks value v of type typ at path; see checkNumbers.
func checkNumber(schema *ast.Schema, typ *ast.Type, v any, path ast.Path) *gqlerror.Error {
	switch v := v.(type) {
	case json.Number:
		for typ.Elem != nil {
			typ = typ.Elem // a single value is coerced to a list of it
		}
		return numberAs(typ.NamedType, v, path)
	case []any:
		if typ.Elem == nil {
			return nil // gqlparser refuses a list for a type that is not one
		}
		for i, e := range v {
			if err := checkNumber(schema, typ.Elem, e, append(path, ast.PathIndex(i))); err != nil {
				return err
			}
		}
	case map[string]any:
		def := schema.Types[typ.NamedType]
		if typ.Elem != nil || def == nil || def.Kind != ast.InputObject {
			return nil // gqlparser refuses an object for these
		}
		for _, f := range def.Fields {
			if fv, ok := v[f.Name]; ok {
				if err := checkNumber(schema, f.Type, fv, append(path, ast.PathName(f.Name))); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// numberAs refuses JSON number n as a value of the built-in scalar named
// typeName where the GraphQL spec's input coercion does (section 3.5):
// String and Boolean take no number, Int and ID only an integer, and
// Float a finite one. Enums and custom scalars are left to gqlparser and
// their own unmarshalers.
func numberAs(typeName string, n json.Number, path ast.Path) *gqlerror.Error {
	text := n.String()
	integral := !strings.ContainsAny(text, ".eE")
	var why string
	switch typeName {
	case "String", "Boolean":
		why = "a " + typeName + " is not a number"
	case "ID":
		if integral {
			return nil // of any size: gqlgen reads it as a string
		}
		why = "an ID is a string or an integer"
	case "Int":
		if _, err := n.Int64(); err == nil {
			return nil
		}
		why = "not an integer; write one without a fraction or exponent"
		if integral {
			why = "out of range"
		}
	case "Float":
		if _, err := n.Float64(); err == nil {
			return nil
		}
		why = "out of range"
	default:
		return nil
	}
	err := gqlerror.ErrorPathf(path, "cannot use the number %s as %s: %s", clip(text), typeName, why)
	errcode.Set(err, errcode.ValidationFailed)
	return err
}
