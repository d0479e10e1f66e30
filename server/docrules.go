package server

import (
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator/core"
)

// noIncrementalDelivery refuses @defer and @stream. gqlgen's schema
// declares them, and its executor runs a deferred fragment apart and hands
// its result over only on a later call for the next response, which none
// of Herald's transports makes: the fragment's fields came back null, Int!
// and User! included, with no error, and in a subscription every event
// left a goroutine waiting to hand its deferred result over until the
// subscription ended.
func noIncrementalDelivery(observers *core.Events, addError core.AddErrFunc) {
	observers.OnDirective(func(_ *core.Walker, d *ast.Directive) {
		if d.Name == "defer" || d.Name == "stream" {
			addError(core.Message("@%s is not supported by this server: select the fields without it", d.Name), core.At(d.Position))
		}
	})
}

// subscriptionRootUnconditional refuses @skip and @include in a
// subscription's top-level selection, as the GraphQL spec's "Single root
// field" rule (collected without variables) and graphql-js 17 do: a
// subscription whose one root field a variable skips subscribes to
// nothing, and was answered with a stream holding one error without a code.
func subscriptionRootUnconditional(observers *core.Events, addError core.AddErrFunc) {
	observers.OnOperation(func(w *core.Walker, op *ast.OperationDefinition) {
		if op.Operation != ast.Subscription {
			return
		}
		name := "Anonymous Subscription"
		if op.Name != "" {
			name = `Subscription "` + op.Name + `"`
		}
		seen := map[string]bool{}
		var check func(ast.SelectionSet)
		check = func(set ast.SelectionSet) {
			for _, sel := range set {
				var dirs ast.DirectiveList
				var inner ast.SelectionSet
				switch s := sel.(type) {
				case *ast.Field:
					dirs = s.Directives
				case *ast.InlineFragment:
					dirs, inner = s.Directives, s.SelectionSet
				case *ast.FragmentSpread:
					dirs = s.Directives
					if f := w.Document.Fragments.ForName(s.Name); f != nil && !seen[s.Name] {
						seen[s.Name] = true // a cycle is NoFragmentCycles' to report
						inner = f.SelectionSet
					}
				}
				for _, d := range dirs {
					if d.Name == "skip" || d.Name == "include" {
						addError(core.Message("%s must not use @skip or @include directives in the top level selection", name), core.At(d.Position))
					}
				}
				check(inner)
			}
		}
		check(op.SelectionSet)
	})
}
