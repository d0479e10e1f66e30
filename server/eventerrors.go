package server

import (
	"bytes"
	"context"
	"encoding/json"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/eventmeta"
)

// eventErrorsSchema passes on the errors an event's fields raise in a
// subscription gqlgen runs through ExecWithEventContext (a schema
// generated with subscription_context_field, as every engine domain is).
// gqlgen (v0.17.95) marshals each event under the per-event response
// context it hands the handler, so a field's error or a recovered panic is
// recorded there, but it reads the event's errors from the context the
// resolver attached to the event, whose response context is another: the
// event arrived with a null where its field failed and no error. Here the
// errors recorded for the event join its response, and the response
// middleware is handed the event's context under a response context of its
// own, so that none is read twice.
type eventErrorsSchema struct {
	graphql.ExecutableSchemaWithEventContext
	present graphql.ErrorPresenterFunc
	recover graphql.RecoverFunc
}

// withEventErrors wraps es in an eventErrorsSchema if gqlgen would run its
// subscriptions through ExecWithEventContext.
func withEventErrors(es graphql.ExecutableSchema, present graphql.ErrorPresenterFunc, recover graphql.RecoverFunc) graphql.ExecutableSchema {
	if events, ok := es.(graphql.ExecutableSchemaWithEventContext); ok {
		return eventErrorsSchema{ExecutableSchemaWithEventContext: events, present: present, recover: recover}
	}
	return es
}

// The event is marshalled without the root field's context too, so its
// errors' paths lack the root field's response name (["room", "messages"]
// for messagePosted's room.messages), which is put back in front; and a
// null that a failed non-null field made of a non-null root field is
// carried up to the event's data, as GraphQL's null propagation has it:
// {"data": null}, not {"data": {"messagePosted": null}}. An event whose
// metadata says it ends the subscription (eventmeta.Meta.End) is answered
// with that error alone, at the root field.
func (s eventErrorsSchema) ExecWithEventContext(ctx context.Context) graphql.ResponseHandlerWithContext {
	next := s.ExecutableSchemaWithEventContext.ExecWithEventContext(ctx)
	var root ast.PathName
	var nullRoot []byte // the event's data when its non-null root field is null
	if rc := graphql.GetOperationContext(ctx); rc != nil && rc.Operation != nil && rc.Operation.Operation == ast.Subscription {
		if f, ok := rootField(rc); ok {
			root = ast.PathName(f.Alias)
			if f.Definition != nil && f.Definition.Type.NonNull {
				nullRoot, _ = json.Marshal(map[string]any{f.Alias: nil})
			}
		}
	}
	return func(ctx context.Context) (context.Context, *graphql.Response) {
		eventCtx, resp := next(ctx)
		if resp == nil {
			return eventCtx, nil
		}
		if m, ok := eventmeta.MetaFrom(eventCtx); ok && m.End != nil {
			// The last event, of no value: its error alone (what marshalling
			// the absent value raised is not the client's concern).
			end := s.present(eventCtx, m.End)
			if root != "" {
				end.Path = ast.Path{root}
			}
			return graphql.WithResponseContext(eventCtx, s.present, s.recover), &graphql.Response{Errors: gqlerror.List{end}}
		}
		errs := graphql.GetErrors(ctx)
		if root != "" {
			for _, err := range errs {
				err.Path = append(ast.Path{root}, err.Path...)
			}
		}
		if len(errs) > 0 && nullRoot != nil && bytes.Equal(resp.Data, nullRoot) {
			resp.Data = json.RawMessage("null")
		}
		resp.Errors = append(resp.Errors, errs...)
		return graphql.WithResponseContext(eventCtx, s.present, s.recover), resp
	}
}
