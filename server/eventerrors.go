package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
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

func (s eventErrorsSchema) ExecWithEventContext(ctx context.Context) graphql.ResponseHandlerWithContext {
	next := s.ExecutableSchemaWithEventContext.ExecWithEventContext(ctx)
	return func(ctx context.Context) (context.Context, *graphql.Response) {
		eventCtx, resp := next(ctx)
		if resp == nil {
			return eventCtx, nil
		}
		resp.Errors = append(resp.Errors, graphql.GetErrors(ctx)...)
		return graphql.WithResponseContext(eventCtx, s.present, s.recover), resp
	}
}
