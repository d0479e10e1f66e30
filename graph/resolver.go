// Package graph is Herald's executable GraphQL schema for the chat domain:
// the code gqlgen generates from schema.graphqls (generated.go, model/) and
// the thin resolvers (query.go, mutation.go, subscription.go, types.go) that turn GraphQL arguments into calls
// on chat.Service.
package graph

//go:generate go tool gqlgen generate --config ../gqlgen.yml

import (
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/chat"
)

// Resolver is the root of the resolvers; it holds what they share.
type Resolver struct {
	chat     *chat.Service
	epoch    int64
	sessions Disconnector // nil: disconnectUser is unavailable
}

// NewSchema returns the executable schema over svc. epoch identifies the
// incarnation of the event log (pubsub.Log.Epoch), so that cursors from a
// recreated log are refused rather than misread. sessions carries out
// disconnectUser; nil leaves it unavailable.
func NewSchema(svc *chat.Service, epoch time.Time, sessions Disconnector) graphql.ExecutableSchema {
	return NewExecutableSchema(Config{Resolvers: &Resolver{chat: svc, epoch: epoch.UnixNano(), sessions: sessions}})
}

// ViewerDirective is the schema directive marking fields whose value
// depends on who asks (see schema.graphqls): the server shares a
// subscription's execution across identities only when none is selected.
const ViewerDirective = "viewerDependent"

// ResumeArgument is the subscription argument that carries a resume cursor.
const ResumeArgument = "after"
