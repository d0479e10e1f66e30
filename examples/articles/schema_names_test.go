package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/examples/articles/graph"
	"github.com/heraldhq/herald/server"
)

// server.New checks the two names a domain gives it from its schema
// (README, "Your own schema", piece 4). A misspelt ViewerDirective would
// mark no field, so one viewer's values would reach every identity
// sharing an execution; a ResumeArgument no subscription field takes
// would never be found, so a resume would run shared, and a second
// subscriber resuming from the same cursor would join after the replay
// and lose it. Both fail at New, naming the option.
func TestServerNewRefusesNamesTheSchemaDoesNotHave(t *testing.T) {
	schema := graph.NewSchema(nil, time.Unix(1, 0))
	for _, tc := range []struct {
		name                    string
		viewer, resume, wantErr string
	}{
		{"the example's names", graph.ViewerDirective, graph.ResumeArgument, ""},
		{"a directive the schema does not declare", "viewerDependant", graph.ResumeArgument, "Options.ViewerDirective"},
		{"an argument no subscription field takes", graph.ViewerDirective, "cursor", "Options.ResumeArgument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := server.New(server.Options{
				Schema: schema, Authenticator: auth.Dev{},
				Readiness:       func(context.Context) []server.Check { return nil },
				ViewerDirective: tc.viewer, ResumeArgument: tc.resume,
			})
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("server.New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("server.New with ViewerDirective %q and ResumeArgument %q: %v; want an error naming %s",
					tc.viewer, tc.resume, err, tc.wantErr)
			}
		})
	}
}

// What the resume argument's name is for: two subscribers resuming from
// one cursor each get the events after it, the second too, though it
// comes once the first's replay was delivered.
func TestTwoResumesFromOneCursorBothGetTheReplay(t *testing.T) {
	g := servedWith(t, nil)
	c := g.dial("reader", false)
	c.start("a", authorCreated, nil)
	c.sync()
	g.createAuthor("Alan", "Turing")
	_, cursor := data[authorEvent](c, "a")
	church := g.createAuthor("Alonzo", "Church")
	data[authorEvent](c, "a")

	first := g.dial("first", false)
	first.start("r", authorCreated, map[string]any{"after": cursor})
	if a, _ := data[authorEvent](first, "r"); a.AuthorCreated.ID != church {
		t.Fatalf("the first resume after Turing's cursor got %+v, want %s", a, church)
	}
	second := g.dial("second", false)
	second.start("r", authorCreated, map[string]any{"after": cursor})
	second.sync()
	godel := g.createAuthor("Kurt", "Gödel")
	if a, _ := data[authorEvent](second, "r"); a.AuthorCreated.ID != church {
		t.Fatalf("the second resume from the same cursor got %s first (Gödel is %s), want %s (Church): "+
			"it joined the first resume's execution after its replay and lost it", a.AuthorCreated.ID, godel, church)
	}
}
