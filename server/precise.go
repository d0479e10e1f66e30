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
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/heraldhq/herald/internal/surrogate"
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
	shape  shapeLimits
}

func (t preciseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.Transport.Do(w, r, preciseExecutor{GraphExecutor: exec, schema: t.schema, shape: t.shape})
}

// shapeLimits are the depth and complexity limits (nil: none) and the
// cache of documents that passed validation.
type shapeLimits struct {
	depth      *depthLimit
	complexity *complexityLimit
	docs       graphql.Cache[*ast.QueryDocument]
}

// preciseExecutor is a graphql.GraphExecutor that answers these kinds of bad
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
//     written it plainly;
//   - a variable that gives null to a non-null argument (see
//     nullForNonNull).
//
// It also refuses a document over the depth or complexity limit before
// gqlgen validates it (see refuseShape), and lists at most maxErrors
// errors.
type preciseExecutor struct {
	graphql.GraphExecutor
	schema *ast.Schema
	shape  shapeLimits
}

func (x preciseExecutor) CreateOperationContext(ctx context.Context, params *graphql.RawParams) (
	*graphql.OperationContext, gqlerror.List) {
	if opCtx, errs := x.refuseShape(ctx, params); errs != nil {
		return opCtx, errs
	}
	opCtx, errs := x.create(ctx, params)
	if opCtx != nil && opCtx.Operation == nil && hasCode(errs, errcode.ValidationFailed) {
		// gqlgen chooses the operation only once the document has
		// validated, but one that parsed already says which operation it
		// asks for: so that a GET of a mutation is 405 whatever else is
		// wrong with it (runner.prepare), as refuseShape keeps it.
		if doc, err := parser.ParseQuery(&ast.Source{Input: opCtx.RawQuery}); err == nil {
			opCtx.Operation = chooseOperation(doc.Operations, params.OperationName)
		}
	}
	return opCtx, capErrors(errs)
}

func (x preciseExecutor) create(ctx context.Context, params *graphql.RawParams) (
	*graphql.OperationContext, gqlerror.List) {
	opCtx, errs := x.GraphExecutor.CreateOperationContext(ctx, params)
	if opCtx != nil {
		// RawQuery, not params.Query: a persisted query's text comes from
		// the APQ cache.
		if line, col, found := surrogate.LoneInGraphQL(opCtx.RawQuery); found {
			return opCtx, gqlerror.List{loneSurrogateLiteral(line, col)}
		}
	}
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
	if errs == nil && opCtx != nil && opCtx.Operation != nil {
		if err := nullForNonNull(opCtx); err != nil {
			errs = gqlerror.List{err}
		}
	}
	return opCtx, errs
}

// loneSurrogateLiteral is the syntax error of a document whose string
// literal escapes half of a UTF-16 surrogate pair alone: gqlparser would
// read it as U+FFFD, text the client did not send, where the GraphQL spec
// and graphql-js refuse it (as decodeJSON refuses it in JSON).
func loneSurrogateLiteral(line, col int) *gqlerror.Error {
	err := gqlerror.ErrorLocf("", line, col,
		`Invalid Unicode escape sequence: a string escapes half of a UTF-16 surrogate pair alone, which is no character; write a character beyond U+FFFF as a pair of escapes ("\ud83d\ude00") or as \u{1F600}`)
	errcode.Set(err, errcode.ParseFailed)
	return err
}

// refuseShape refuses a document over the depth or complexity limit
// before gqlgen validates it, and so before gqlgen's query cache keeps it.
// Validation can cost far more than a document's size: gqlparser's
// OverlappingFieldsCanBeMerged compares every two fields of one response
// name, and every two fragments spread side by side (42 KB of `x` fields
// took seconds), and gqlgen applies the limits (depthLimit,
// complexityLimit) only after validating. Validation looks at every
// operation and every fragment of the document, whichever operationName
// chooses, so each is checked, and no selection may repeat a response
// name, or spread fragments, more than maxRepeats times (repeatsError),
// which bounds what a complexity limit allows. A document in the query
// cache passed validation, and the limits are applied to it after; one
// that does not parse is left to gqlgen, whose error says why.
func (x preciseExecutor) refuseShape(ctx context.Context, params *graphql.RawParams) (
	*graphql.OperationContext, gqlerror.List) {
	if x.shape.depth == nil && x.shape.complexity == nil || params.Query == "" {
		return nil, nil
	}
	if x.shape.docs != nil {
		if _, cached := x.shape.docs.Get(ctx, params.Query); cached {
			return nil, nil
		}
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: params.Query})
	if err != nil {
		return nil, nil
	}
	if err := x.checkShape(ctx, doc, params.Variables); err != nil {
		// With the chosen operation, if any, so that a GET of a mutation
		// is still 405 (runner.prepare).
		opCtx := &graphql.OperationContext{RawQuery: params.Query, OperationName: params.OperationName,
			Variables: params.Variables, Doc: doc, Operation: chooseOperation(doc.Operations, params.OperationName)}
		return opCtx, gqlerror.List{err}
	}
	return nil, nil
}

// checkShape applies the limits to every operation and every fragment of
// doc, which has not been validated.
func (x preciseExecutor) checkShape(ctx context.Context, doc *ast.QueryDocument, vars map[string]any) *gqlerror.Error {
	if x.shape.complexity != nil {
		if err := repeatsError(doc); err != nil {
			return err
		}
		if err := visitsError(doc); err != nil {
			return err
		}
	}
	idx := newDocIndex(doc)
	for _, op := range doc.Operations {
		if x.shape.depth != nil {
			if err := x.shape.depth.check(op, idx); err != nil {
				return err
			}
		}
		if x.shape.complexity != nil {
			if err := x.shape.complexity.check(ctx, op, idx, vars); err != nil {
				return err
			}
		}
	}
	var schema *ast.Schema
	if x.shape.complexity != nil && x.shape.complexity.es != nil {
		schema = x.shape.complexity.es.Schema()
	}
	for _, f := range doc.Fragments {
		what := "fragment " + clip(f.Name)
		if x.shape.depth != nil {
			if err := x.shape.depth.checkSet(what, f.SelectionSet, idx); err != nil {
				return err
			}
		}
		if x.shape.complexity != nil {
			var on *ast.Definition
			if schema != nil {
				on = schema.Types[f.TypeCondition]
			}
			if err := x.shape.complexity.checkSet(ctx, what, f.SelectionSet, on, idx, vars); err != nil {
				return err
			}
		}
	}
	return nil
}

// chooseOperation is the operation of ops named name, or the only one when
// name is empty; nil when there is none such.
func chooseOperation(ops ast.OperationList, name string) *ast.OperationDefinition {
	if name == "" {
		if len(ops) == 1 {
			return ops[0]
		}
		return nil
	}
	return ops.ForName(name)
}

// maxErrors is the most errors a refused request lists, as graphql-js's
// validation has it: a document of a few kilobytes can have thousands of
// errors (an unknown field repeated), whose list would be megabytes.
const maxErrors = 100

// capErrors keeps the first maxErrors of errs and says how many more there
// were, under the code of the first.
func capErrors(errs gqlerror.List) gqlerror.List {
	if len(errs) <= maxErrors {
		return errs
	}
	more := &gqlerror.Error{
		Message: fmt.Sprintf("too many errors: %d more are not listed", len(errs)-maxErrors),
	}
	if code, ok := errs[0].Extensions["code"]; ok {
		more.Extensions = map[string]any{"code": code}
	}
	return append(errs[:maxErrors:maxErrors], more)
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
