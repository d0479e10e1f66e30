package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// preciseTransport hands its transport gqlgen's executor wrapped in a
// preciseExecutor. Every transport prepares its operations through the
// executor it is handed (postTransport and getTransport through runner,
// the streams through httpStreams, a socket through wsConn), so wrapping
// it here, where gqlgen's handler calls each transport, gives every
// transport, and every transport added later, the same answers.
type preciseTransport struct {
	graphql.Transport
	schema *ast.Schema
}

func (t preciseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.Transport.Do(w, r, preciseExecutor{GraphExecutor: exec, schema: t.schema})
}

// preciseExecutor is a graphql.GraphExecutor that answers two kinds of bad
// input precisely where gqlgen does not:
//
//   - a valid document none of whose operations can be chosen: gqlgen says
//     "operation <name> not found", which for a document of several
//     operations and no operationName reads "operation  not found", and
//     which quotes an operationName of any length;
//   - a JSON number in a variable of a type that takes none, or not that
//     one, and a string in one that takes a number or a Boolean (see
//     checkNumbers); and an integer written with a fraction or an
//     exponent, which an Int or an ID takes once canonicalNumbers has
//     written it plainly.
type preciseExecutor struct {
	graphql.GraphExecutor
	schema *ast.Schema
}

func (x preciseExecutor) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (
	*graphql.OperationContext, gqlerror.List) {
	opCtx, errs := x.GraphExecutor.CreateOperationContext(ctx, params)
	switch {
	case opCtx == nil || opCtx.Doc == nil:
		// Not parsed and validated: gqlgen's errors say why. Those of its
		// APQ extension (a hash that does not match the query, a version
		// it does not know) carry no code: the request is malformed, which
		// is BAD_REQUEST, as Apollo Server has it.
		for _, err := range errs {
			if _, ok := err.Extensions["code"]; !ok {
				errcode.Set(err, codeBadRequest)
			}
		}
	case opCtx.Operation == nil:
		// The operation is chosen right after validation, before anything
		// else can fail: this is the one error choosing it gives.
		errs = gqlerror.List{operationNotChosen(opCtx.Doc.Operations, params.OperationName)}
	case errs == nil || failedVariable(errs) != "":
		if vars, changed := canonicalNumbers(x.schema, opCtx.Operation, params.Variables); changed {
			// Coerce again, the numbers written as gqlparser reads them.
			// The caller's params take the copy, so that preparing them
			// again (liveForm, resumeFrom) starts from it; canonicalNumbers
			// writes nothing into the map they held.
			params.Variables = vars
			opCtx, errs = x.GraphExecutor.CreateOperationContext(ctx, params)
			if opCtx == nil || opCtx.Operation == nil || errs != nil && failedVariable(errs) == "" {
				return opCtx, errs
			}
		}
		if err := checkNumbers(x.schema, opCtx.Operation, params.Variables, failedVariable(errs)); err != nil {
			errs = gqlerror.List{err}
		}
	}
	return opCtx, errs
}

// operationNotChosen is the error for a document none of whose operations
// ops (at least one, as validation requires) is named name, or for a
// document of several operations and no name.
func operationNotChosen(ops ast.OperationList, name string) *gqlerror.Error {
	var msg string
	switch {
	case name == "":
		msg = fmt.Sprintf("the document has %d operations (%s); choose one with operationName", len(ops), operationNames(ops))
	case len(ops) == 1 && ops[0].Name == "":
		msg = fmt.Sprintf("operation %q not found: the document's one operation is anonymous; send no operationName", clip(name))
	default:
		msg = fmt.Sprintf("operation %q not found: the document has %s (%s)", clip(name), plural(len(ops), "operation"), operationNames(ops))
	}
	err := &gqlerror.Error{Message: msg}
	errcode.Set(err, errcode.ValidationFailed)
	return err
}

// maxNamedOperations bounds how many operation names an error lists: a
// document may hold thousands.
const maxNamedOperations = 5

// operationNames lists the names of ops, each clipped, at most
// maxNamedOperations of them. Validation has made sure that only a
// document's one operation can be anonymous.
func operationNames(ops ast.OperationList) string {
	var b strings.Builder
	for i, op := range ops {
		if i == maxNamedOperations {
			fmt.Fprintf(&b, ", and %d more", len(ops)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(clip(op.Name))
	}
	return b.String()
}

// plural is "1 operation", "2 operations".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
