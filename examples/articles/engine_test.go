package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/eventmeta"
	"github.com/heraldhq/herald/server"
)

// servedWith serves the articles library through a server built with
// options that the test adjusts (schema wrapper, AroundFields, ...), on
// the example's own event log and library.
func servedWith(t *testing.T, adjust func(*server.Options)) *testGateway {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	defer cancel()
	g, err := openGateway(ctx, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	opts := g.serverOptions(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if adjust != nil {
		adjust(&opts)
	}
	srv, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
		if err := g.stop(ctx, nil); err != nil {
			t.Errorf("stop: %v", err)
		}
	}
	t.Cleanup(stop)
	if err := g.lib.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return &testGateway{t: t, url: hs.URL, wsURL: "ws" + strings.TrimPrefix(hs.URL, "http") + "/graphql", stop: func() {}}
}

// A field of a subscription event that fails (a resolver error, injected
// through Options.AroundFields, the engine's own hook) is reported in the
// event's errors, as the same failure is in a query. With
// subscription_context_field, which the README requires of every domain,
// gqlgen delivered the event with the field nulled and no error at all
// (server.eventErrorsSchema).
func TestEventFieldErrorsReachTheClient(t *testing.T) {
	g := servedWith(t, func(o *server.Options) {
		o.AroundFields = func(ctx context.Context, next graphql.Resolver) (any, error) {
			fc := graphql.GetFieldContext(ctx)
			if fc != nil && fc.Object == "Article" && fc.Field.Name == "author" {
				return nil, errors.New("the author could not be loaded")
			}
			return next(ctx)
		}
	})
	author := g.createAuthor("Ada", "Lovelace")
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			c := g.dial("reader", p.legacy)
			c.start("s", `subscription { articleEvents { kind article { title author { lastName } } } }`, nil)
			c.sync()
			g.addArticle(author, "Notes "+p.name)
			ev := c.next("s")
			if len(ev.Errors) != 1 || !strings.Contains(fmt.Sprint(ev.Errors), "the author could not be loaded") {
				t.Fatalf("subscription event %s has errors %+v, want the one of the field that failed", ev.Data, ev.Errors)
			}
		})
	}
}

// noPosition wraps the articles schema so that every event's metadata
// loses its Position (eventmeta: "Zero means unknown"): a domain whose
// resolvers set only the cursor.
type noPosition struct {
	graphql.ExecutableSchema
	inner graphql.ExecutableSchemaWithEventContext
}

func (s noPosition) ExecWithEventContext(ctx context.Context) graphql.ResponseHandlerWithContext {
	next := s.inner.ExecWithEventContext(ctx)
	return func(ctx context.Context) (context.Context, *graphql.Response) {
		evCtx, resp := next(ctx)
		if m, ok := eventmeta.MetaFrom(evCtx); ok {
			m.Position = 0
			evCtx = eventmeta.WithMeta(evCtx, m)
		}
		return evCtx, resp
	}
}

// A subscriber that resumes from a cursor on a domain whose events carry
// no Position (allowed: "Zero means unknown") gets each event once. The
// engine hands it over from its replay to the shared execution by
// position; with none it never retired the replay and wrote every live
// event twice. The replay serves it for good now.
func TestResumeWithoutPositionsIsNotDoubled(t *testing.T) {
	g := servedWith(t, func(o *server.Options) {
		es := o.Schema
		o.Schema = noPosition{ExecutableSchema: es, inner: es.(graphql.ExecutableSchemaWithEventContext)}
	})
	author := g.createAuthor("Edsger", "Dijkstra")
	watcher := g.dial("watcher", false)
	watcher.start("w", articleEvents, map[string]any{"after": nil})
	watcher.sync()
	first := g.dial("reader", false)
	first.start("r", articleEvents, map[string]any{"after": nil})
	first.sync()
	if err := g.postEvents(author, 2); err != nil {
		t.Fatal(err)
	}
	_, cursor := data[articleEvent](first, "r")
	first.conn.Close()
	if err := g.postEvents(author, 2); err != nil {
		t.Fatal(err)
	}
	again := g.dial("reader", false)
	again.start("r", articleEvents, map[string]any{"after": cursor})
	again.sync()
	time.Sleep(200 * time.Millisecond) // let the replay run
	if err := g.postEvents(author, 4); err != nil {
		t.Fatal(err)
	}
	last := g.addArticle(author, "the last")
	all := eventsUntil(watcher, "w", last)
	got := eventsUntil(again, "r", last)
	// Events after the cursor: every one the watcher got after the first.
	want := all[1:]
	seen := map[string]int{}
	for _, e := range got {
		seen[e]++
	}
	var dups []string
	for e, n := range seen {
		if n > 1 {
			dups = append(dups, fmt.Sprintf("%dx %s", n, e))
		}
	}
	if len(dups) > 0 || len(got) != len(want) {
		t.Fatalf("resumed after %s without positions: got %d events for %d, duplicated: %v\ngot:\n%s\nwant:\n%s",
			cursor, len(got), len(want), dups, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A field resolver of a subscription event that panics is recovered (the
// socket and the subscription go on), and the client is told: the event
// carries the "internal system error" a query gets. It arrived nulled,
// with no error.
func TestEventFieldPanicReachesTheClient(t *testing.T) {
	g := servedWith(t, func(o *server.Options) {
		o.AroundFields = func(ctx context.Context, next graphql.Resolver) (any, error) {
			if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Object == "Article" && fc.Field.Name == "author" {
				panic("the author resolver panics")
			}
			return next(ctx)
		}
	})
	author := g.createAuthor("Grace", "Hopper")
	c := g.dial("reader", false)
	c.start("s", `subscription { articleEvents { kind article { title author { lastName } } } }`, nil)
	c.sync()
	g.addArticle(author, "one")
	first := c.next("s")
	g.addArticle(author, "two")
	second := c.next("s") // the socket survived the panic
	q, _ := g.post(`{ articles { author { id } } }`, nil)
	if len(first.Errors) == 0 || len(second.Errors) == 0 {
		t.Fatalf("events after a recovered panic: %s %v / %s %v, want each with an error; a query reports %d error(s): %+v",
			first.Data, first.Errors, second.Data, second.Errors, len(q.Errors), q.Errors)
	}
}
