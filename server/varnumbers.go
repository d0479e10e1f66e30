package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"reflect"
	"slices"
	"strconv"
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
// string as Boolean". For the same reason it cannot tell the string "2"
// from the number 2, and takes either for an Int or a Float. And it takes
// an integer written with a fraction or an exponent (2.0, 1e3) for no Int,
// where the GraphQL spec, and graphql-js, take any number whose value is
// an integer.
//
// So, around gqlparser's coercion (see preciseExecutor):
//
//   - canonicalNumbers first writes each JSON number that an Int or an ID
//     takes for its value, but not as it is written, in the form gqlparser
//     and gqlgen read: 2.0 and 1e3 become 2 and 1000;
//   - checkNumbers then finds a JSON number where the type takes none or
//     not that one, and a string where the type takes a number or a
//     Boolean, or is an enum none of whose values has that exact name
//     (gqlparser matches enum values regardless of case, and the resolver
//     would then fail on the value after the operation had begun).

// checkNumbers returns an error for the first JSON number or string in
// vars, the raw variables of op, given where the variable's type takes no
// such value (see numberAs and stringAs); nil if there is none. With
// upTo, the variable gqlparser refused, it looks no further than that
// variable, so that of two bad variables the first is reported, as
// gqlparser would.
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
		return numberAs(namedType(typ), v, path)
	case string:
		return stringAs(schema, namedType(typ), v, path)
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
		def := inputObject(schema, typ)
		if def == nil {
			return nil // gqlparser refuses an object for the others
		}
		for _, f := range def.Fields {
			if fv, ok := v[f.Name]; ok {
				if err := checkNumber(schema, f.Type, fv, append(path, ast.PathName(f.Name))); err != nil {
					return err
				}
			}
		}
	default:
		if e, ok := wrapped(typ, v); ok {
			return checkNumber(schema, typ, e, path)
		}
	}
	return nil
}

// wrapped returns the single value that gqlparser's coercion has wrapped
// in a list, where v is such a list, a value of list type typ.
//
// JSON decodes to []any, but gqlparser writes what it coerces back into
// the input objects and lists of the variables it is given, and coerces a
// single value given for a list type to a list of it, of the value's own
// type: so the single value "3" of a field of type [Int] becomes the
// []string{"3"} of that field once gqlparser has accepted it, and the
// single value is still to be checked, at the field's path as before.
func wrapped(typ *ast.Type, v any) (any, bool) {
	rv := reflect.ValueOf(v)
	if typ.Elem == nil || rv.Kind() != reflect.Slice || rv.Len() != 1 {
		return nil, false
	}
	return rv.Index(0).Interface(), true
}

// namedType is the type a single value of typ is coerced to: the type
// itself, or for a list (of lists...) the type of its elements, since a
// single value is coerced to a list of it.
func namedType(typ *ast.Type) string {
	for typ.Elem != nil {
		typ = typ.Elem
	}
	return typ.NamedType
}

// inputObject is the definition of the input object type of an object
// given for typ: typ itself, or for a list the type of its elements (see
// namedType); nil if that is no input object type.
func inputObject(schema *ast.Schema, typ *ast.Type) *ast.Definition {
	def := schema.Types[namedType(typ)]
	if def == nil || def.Kind != ast.InputObject {
		return nil
	}
	return def
}

// numberAs refuses JSON number n as a value of the built-in scalar named
// typeName where the GraphQL spec's input coercion does (section 3.5):
// String and Boolean take no number, Int and ID only an integer, Int one
// in range, and Float a finite one. Enums and custom scalars are left to
// gqlparser and their own unmarshalers.
func numberAs(typeName string, n json.Number, path ast.Path) *gqlerror.Error {
	_, why := judgeNumber(typeName, n)
	if why == "" {
		return nil
	}
	err := gqlerror.ErrorPathf(path, "cannot use the number %s as %s: %s", clip(n.String()), typeName, why)
	errcode.Set(err, errcode.ValidationFailed)
	return err
}

// An Int is a 32-bit signed integer, as the GraphQL spec (section 3.5.1)
// and graphql-js have it, however it is written: 3000000000, 3e9 and
// 3000000000.0 get the same answer. Query literals get it from
// int32Literals; gqlgen's int would take 64 bits.
const (
	// intMaxDigits and idMaxDigits bound the digits of a number written
	// with a fraction or an exponent, so that 1e999999999 is refused, not
	// written out. An ID written plainly has no bound: gqlgen reads it as
	// a string; written otherwise, it takes 64 bits.
	intMaxDigits = len("2147483648")
	idMaxDigits  = len("9223372036854775808")

	// intRange says why an integer is no Int.
	intRange = "out of range: an Int is a 32-bit signed integer"
)

// judgeNumber decides whether the built-in scalar named typeName takes
// JSON number n. If it does not, why says why. If it does but not as n is
// written (an integral Int or ID with a fraction or exponent, as graphql-js
// takes them), canon is the value's canonical form, for gqlparser's and
// gqlgen's coercion to read; otherwise canon is "".
func judgeNumber(typeName string, n json.Number) (canon json.Number, why string) {
	text := n.String()
	plain := !strings.ContainsAny(text, ".eE")
	switch typeName {
	case "String", "Boolean":
		return "", "a " + typeName + " is not a number"
	case "ID":
		if plain {
			return "", "" // of any size: gqlgen reads it as a string
		}
		i, integral := exactInteger(text, idMaxDigits)
		if !integral {
			return "", "an ID is a string or an integer"
		}
		if _, err := strconv.ParseInt(i, 10, 64); err != nil { // i is "" beyond idMaxDigits
			return "", "out of range; write an ID this large as a string or without a fraction or exponent"
		}
		return json.Number(i), ""
	case "Int":
		if plain {
			if _, err := strconv.ParseInt(text, 10, 32); err != nil {
				return "", intRange
			}
			return "", ""
		}
		i, integral := exactInteger(text, intMaxDigits)
		if !integral {
			return "", "not an integer"
		}
		if _, err := strconv.ParseInt(i, 10, 32); err != nil { // i is "" beyond intMaxDigits
			return "", intRange
		}
		return json.Number(i), ""
	case "Float":
		if _, err := n.Float64(); err != nil {
			return "", "out of range"
		}
	}
	return "", ""
}

// maxExponent bounds the exponents exactInteger works with, so that its
// arithmetic cannot overflow. Bounding them changes no answer: a number
// has far fewer than 2^40 digits (a request holds far fewer bytes), too
// few to bring an exponent beyond the bound back to maxDigits or to 0.
const maxExponent = 1 << 40

// exactInteger reads JSON number text exactly. If its value is an integer
// of at most maxDigits digits, it returns that integer written plainly:
// no fraction, exponent, plus sign or leading zeros, and 0 for any zero
// (-0.0 included). If the value is an integer of more digits, it returns
// "" and integral true, without writing it out: 1e999999999 costs no more
// than 1e9. If the value is no integer, or text no JSON number, integral
// is false.
func exactInteger(text string, maxDigits int) (i string, integral bool) {
	s, neg := strings.CutPrefix(text, "-")
	mant, exp, hasExp := strings.Cut(s, "e")
	if !hasExp {
		mant, exp, hasExp = strings.Cut(s, "E")
	}
	whole, frac, _ := strings.Cut(mant, ".")
	if whole == "" || !allDigits(whole) || !allDigits(frac) {
		return "", false
	}
	e := int64(0)
	if hasExp {
		var err error
		e, err = strconv.ParseInt(exp, 10, 64) // takes a sign
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return "", false
		}
		e = max(-maxExponent, min(e, maxExponent)) // ParseInt saturates
	}
	// The value is digits × 10^shift, digits without leading or trailing
	// zeros.
	digits := strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		return "0", true
	}
	trimmed := strings.TrimRight(digits, "0")
	shift := e - int64(len(frac)) + int64(len(digits)-len(trimmed))
	switch {
	case shift < 0:
		return "", false
	case int64(len(trimmed))+shift > int64(maxDigits):
		return "", true
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	b.WriteString(trimmed)
	b.WriteString(strings.Repeat("0", int(shift)))
	return b.String(), true
}

// allDigits reports whether s holds only ASCII digits.
func allDigits(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
}

// stringAs refuses JSON string s as a value of the type named typeName
// where the GraphQL spec's input coercion does: Int and Float take a
// number and Boolean true or false, not a string that spells one, and an
// enum only the exact name of one of its values. ID, String and custom
// scalars take strings.
func stringAs(schema *ast.Schema, typeName, s string, path ast.Path) *gqlerror.Error {
	var why string
	switch typeName {
	case "Int":
		why = "an Int is a JSON number"
	case "Float":
		why = "a Float is a JSON number"
	case "Boolean":
		why = "a Boolean is true or false"
	default:
		return enumAs(schema.Types[typeName], s, path)
	}
	err := gqlerror.ErrorPathf(path, "cannot use the string %s as %s: %s", quoteClipped(s), typeName, why)
	errcode.Set(err, errcode.ValidationFailed)
	return err
}

// enumAs refuses s as a value of def, if def is an enum, unless it is the
// exact name of one of its values (spec section 3.9: input coercion).
func enumAs(def *ast.Definition, s string, path ast.Path) *gqlerror.Error {
	if def == nil || def.Kind != ast.Enum {
		return nil
	}
	hint := ""
	for _, v := range def.EnumValues {
		if v.Name == s {
			return nil
		}
		if strings.EqualFold(v.Name, s) {
			hint = fmt.Sprintf("; enum values are matched exactly: did you mean %s?", v.Name)
		}
	}
	err := gqlerror.ErrorPathf(path, "%s is not a valid %s%s", quoteClipped(s), def.Name, hint)
	errcode.Set(err, errcode.ValidationFailed)
	return err
}

// quoteClipped quotes client text s for an error message, clipped first so
// that the message stays short whatever the client sent.
func quoteClipped(s string) string {
	return fmt.Sprintf("%q", clip(s))
}

// canonicalNumbers returns vars, the raw variables of op, with each JSON
// number that the type where it is given takes, but not as it is written
// (see judgeNumber), replaced by its canonical form, and whether it
// replaced any. It copies what it changes, vars included, and changes
// nothing it was given: the caller's map, which the caller may hold on to
// and prepare again, stays as it was. Its result needs no replacing.
func canonicalNumbers(schema *ast.Schema, op *ast.OperationDefinition, vars map[string]any) (map[string]any, bool) {
	return canonicalEntries(schema, vars, func(yield func(string, *ast.Type) bool) {
		for _, def := range op.VariableDefinitions {
			if !yield(def.Variable, def.Type) {
				return
			}
		}
	})
}

// canonicalEntries is m with the entries named by typed, each a value of
// the type given with its name, made canonical (see canonical), and
// whether any changed; a map that changes is a copy.
func canonicalEntries(schema *ast.Schema, m map[string]any, typed iter.Seq2[string, *ast.Type]) (map[string]any, bool) {
	var out map[string]any
	for name, typ := range typed {
		v, ok := m[name]
		if !ok {
			continue
		}
		if c, changed := canonical(schema, typ, v); changed {
			if out == nil {
				out = maps.Clone(m)
			}
			out[name] = c
		}
	}
	if out == nil {
		return m, false
	}
	return out, true
}

// canonical is v, a value of type typ, with the JSON numbers that need it
// in canonical form, and whether any did; see canonicalNumbers.
func canonical(schema *ast.Schema, typ *ast.Type, v any) (any, bool) {
	switch v := v.(type) {
	case json.Number:
		if c, _ := judgeNumber(namedType(typ), v); c != "" && c != v {
			return c, true
		}
	case []any:
		if typ.Elem == nil {
			return v, false
		}
		var out []any
		for i, e := range v {
			if c, changed := canonical(schema, typ.Elem, e); changed {
				if out == nil {
					out = slices.Clone(v)
				}
				out[i] = c
			}
		}
		if out != nil {
			return out, true
		}
	case map[string]any:
		def := inputObject(schema, typ)
		if def == nil {
			return v, false
		}
		return canonicalEntries(schema, v, func(yield func(string, *ast.Type) bool) {
			for _, f := range def.Fields {
				if !yield(f.Name, f.Type) {
					return
				}
			}
		})
	default:
		if e, ok := wrapped(typ, v); ok {
			if c, changed := canonical(schema, typ, e); changed {
				return []any{c}, true
			}
		}
	}
	return v, false
}
