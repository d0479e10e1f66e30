// Package graph is the articles example's executable schema: the code
// gqlgen generates from ../schema.graphqls (generated.go, model/; run
// ../check-generated.sh, or `go tool gqlgen generate --config gqlgen.yml`
// in examples/articles) and these hand-written resolvers, which turn
// GraphQL arguments into library calls and give every subscription event
// its cursor.
package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/eventmeta"
	"github.com/heraldhq/herald/examples/articles/graph/model"
	"github.com/heraldhq/herald/examples/articles/library"
)

// The schema names the server must know (server.Options).
const (
	// ViewerDirective marks fields whose value depends on who asks.
	ViewerDirective = "viewerDependent"
	// ResumeArgument is the subscription argument that carries a cursor.
	ResumeArgument = "after"
)

// Resolver is the root of the resolvers.
type Resolver struct {
	lib   *library.Library
	epoch int64
}

// NewSchema returns the executable schema over lib. epoch identifies the
// incarnation of the event log (pubsub.Log.Epoch), so that cursors from a
// log deleted and created again are refused rather than misread.
func NewSchema(lib *library.Library, epoch time.Time) graphql.ExecutableSchema {
	return NewExecutableSchema(Config{Resolvers: &Resolver{lib: lib, epoch: epoch.UnixNano()}})
}

type (
	queryResolver        struct{ *Resolver }
	mutationResolver     struct{ *Resolver }
	subscriptionResolver struct{ *Resolver }
	authorResolver       struct{ *Resolver }
	articleResolver      struct{ *Resolver }
	articleEventResolver struct{ *Resolver }
)

func (r *Resolver) Query() QueryResolver               { return queryResolver{r} }
func (r *Resolver) Mutation() MutationResolver         { return mutationResolver{r} }
func (r *Resolver) Subscription() SubscriptionResolver { return subscriptionResolver{r} }
func (r *Resolver) Author() AuthorResolver             { return authorResolver{r} }
func (r *Resolver) Article() ArticleResolver           { return articleResolver{r} }
func (r *Resolver) ArticleEvent() ArticleEventResolver { return articleEventResolver{r} }

func (r queryResolver) Author(_ context.Context, id string) (*library.Author, error) {
	return found(r.lib.Author(id))
}

func (r queryResolver) Authors(context.Context) ([]*library.Author, error) {
	return pointers(r.lib.Authors()), nil
}

func (r queryResolver) Article(_ context.Context, id string) (*library.Article, error) {
	return found(r.lib.Article(id))
}

func (r queryResolver) Articles(context.Context) ([]*library.Article, error) {
	return pointers(r.lib.Articles("")), nil
}

func (r mutationResolver) CreateAuthor(ctx context.Context, firstName, lastName string) (*library.Author, error) {
	return done(r.lib.CreateAuthor(ctx, firstName, lastName))
}

func (r mutationResolver) AddArticle(ctx context.Context, authorID, title, text string) (*library.Article, error) {
	return done(r.lib.AddArticle(ctx, authorID, title, text))
}

func (r mutationResolver) ChangeArticleText(ctx context.Context, id, text string, version *int) (*library.Article, error) {
	return done(r.lib.ChangeArticleText(ctx, id, text, version))
}

// A subscription resolver runs once per execution, which the server shares
// among every identical subscription on this replica.

func (r subscriptionResolver) AuthorCreated(ctx context.Context, after *string) (<-chan graphql.Event[*library.Author], error) {
	return watch(ctx, r.Resolver, after, func(c library.Change) (*library.Author, bool) {
		return c.Author, c.Type == library.AuthorCreated
	})
}

func (r subscriptionResolver) ArticleEvents(ctx context.Context, after *string) (<-chan graphql.Event[*library.Change], error) {
	return watch(ctx, r.Resolver, after, func(c library.Change) (*library.Change, bool) {
		return &c, c.Article != nil
	})
}

// watch starts a watcher before returning, so the subscription misses
// nothing applied after it was accepted (after a cursor, it first replays
// what followed it), and pumps the changes pick keeps into the returned
// channel until ctx ends. Each event's context carries its eventmeta.Meta:
// the server sends the cursor as extensions.cursor and uses the position
// to hand a resumed subscriber from its replay to the shared execution.
func watch[T any](ctx context.Context, r *Resolver, after *string, pick func(library.Change) (T, bool)) (<-chan graphql.Event[T], error) {
	from, err := r.decodeCursor(after)
	if err != nil {
		return nil, err
	}
	w, err := r.lib.Watch(ctx, from)
	if err != nil {
		return nil, err
	}
	// Nothing to replay: the server serves the subscriber from the shared
	// execution at once, rather than from this one until the next event.
	if pos, ok := w.CaughtUp(func(c library.Change) bool { _, ok := pick(c); return ok }); ok {
		eventmeta.CaughtUp(ctx, eventmeta.Meta{Position: pos})
	}
	out := make(chan graphql.Event[T])
	go func() {
		defer close(out)
		defer w.Close()
		for {
			c, err := w.Next(ctx)
			if err != nil {
				return
			}
			v, ok := pick(c)
			if !ok {
				continue
			}
			meta := eventmeta.Meta{Cursor: r.encodeCursor(c.Seq), Appended: c.At, Position: c.Seq}
			select {
			case out <- graphql.Event[T]{Context: eventmeta.WithMeta(ctx, meta), Value: v}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func (r authorResolver) Articles(_ context.Context, obj *library.Author) ([]*library.Article, error) {
	return pointers(r.lib.Articles(obj.ID)), nil
}

func (r articleResolver) Author(_ context.Context, obj *library.Article) (*library.Author, error) {
	return found(r.lib.Author(obj.AuthorID))
}

func (r articleEventResolver) Kind(_ context.Context, obj *library.Change) (model.ArticleEventKind, error) {
	if obj.Type == library.ArticleAdded {
		return model.ArticleEventKindCreated, nil
	}
	return model.ArticleEventKindTextChanged, nil
}

func (r articleEventResolver) Cursor(_ context.Context, obj *library.Change) (string, error) {
	return r.encodeCursor(obj.Seq), nil
}

// found is nil for what does not exist, which the schema allows.
func found[T any](v T, ok bool) (*T, error) {
	if !ok {
		return nil, nil
	}
	return &v, nil
}

func done[T any](v T, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func pointers[T any](vs []T) []*T {
	out := make([]*T, len(vs))
	for i := range vs {
		out[i] = &vs[i]
	}
	return out
}
