package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/server"
)

// postAs sends an operation over HTTP as user ("": no X-Herald-User
// header, anonymous) and returns the first error's code, "" if none.
func (g *testGateway) postAs(user, query string) string {
	g.t.Helper()
	body, err := json.Marshal(map[string]any{"query": query})
	if err != nil {
		g.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(g.t.Context(), waitLimit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set("X-Herald-User", user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var r result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		g.t.Fatalf("decode (status %d): %v", resp.StatusCode, err)
	}
	return r.code()
}

// The mutation limits (server.Options.Limits) are the engine's, and hold
// for a domain whose anonymous clients may mutate, as the example's may:
// anonymous mutations count by the address they come from (all of this
// test's: loopback), over HTTP and WebSocket together, against the rate
// and the burst; a named user has an allowance of their own.
func TestAnonymousMutationsAreRateLimited(t *testing.T) {
	g := servedWith(t, func(o *server.Options) {
		o.Limits = server.Limits{MutationRate: 0.01, MutationBurst: 2} // no token comes back within the test
	})
	const (
		create = `mutation { createAuthor(firstName: "Ada", lastName: "Lovelace") { id } }`
		three  = `mutation { a: createAuthor(firstName: "A", lastName: "A") { id } b: createAuthor(firstName: "B", lastName: "B") { id }
			c: createAuthor(firstName: "C", lastName: "C") { id } }`
	)
	socket := g.dial("", false) // anonymous
	for _, step := range []struct {
		name, user string
		ws         bool // over the socket, else HTTP
		query      string
		code       string // "": it runs
		authors    int    // stored after the step
	}{
		{"more mutations in one operation than the burst", "", false, three, "LIMIT_EXCEEDED", 0},
		{"the first anonymous mutation", "", false, create, "", 1},
		{"the second, over a socket", "", true, create, "", 2},
		{"a third, beyond the burst", "", false, create, "RATE_LIMITED", 2},
		{"a third over the socket", "", true, create, "RATE_LIMITED", 2},
		{"a named user's own allowance", "alice", false, create, "", 3},
	} {
		var code string
		if step.ws {
			socket.start(step.name, step.query, nil)
			code = socket.next(step.name).code()
		} else {
			code = g.postAs(step.user, step.query)
		}
		authors := len(must[struct{ Authors []struct{ ID string } }](g, `{ authors { id } }`, nil).Authors)
		if code != step.code || authors != step.authors {
			t.Fatalf("%s: code %q, %d authors stored; want code %q and %d authors", step.name, code, authors, step.code, step.authors)
		}
	}
}

// TestExampleServesWithTheDefaultLimits: the example serves with the
// engine's default limits (server.DefaultLimits, cmd/herald's flag
// defaults), not a zero Limits, which bounds nothing: an operation nested
// deeper than MaxDepth and one of more mutations than MutationBurst are
// refused, as Herald refuses them.
func TestExampleServesWithTheDefaultLimits(t *testing.T) {
	g := servedWith(t, nil)
	defaults := server.DefaultLimits()
	deep := "id"
	for range defaults.MaxDepth {
		deep = "author { articles { " + deep + " } }"
	}
	var many strings.Builder
	many.WriteString("mutation {")
	for i := range defaults.MutationBurst + 1 {
		fmt.Fprintf(&many, ` a%d: createAuthor(firstName: "A", lastName: "A") { id }`, i)
	}
	many.WriteString(" }")
	for _, tt := range []struct{ name, query, code string }{
		{fmt.Sprintf("a query nested %d deep", 2*defaults.MaxDepth+1), "{ articles { " + deep + " } }", "DEPTH_LIMIT_EXCEEDED"},
		{fmt.Sprintf("%d mutations in one operation", defaults.MutationBurst+1), many.String(), "LIMIT_EXCEEDED"},
	} {
		if code := g.postAs("alice", tt.query); code != tt.code {
			t.Errorf("%s: code %q, want %s", tt.name, code, tt.code)
		}
	}
	if n := len(must[struct{ Authors []struct{ ID string } }](g, `{ authors { id } }`, nil).Authors); n != 0 {
		t.Errorf("%d authors stored by refused mutations, want none", n)
	}
}
