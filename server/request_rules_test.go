package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/heraldhq/herald/eventmeta"
)

// TestCacheReAddReplaces: adding a key already cached replaces its entry,
// so it is counted once, by entries and by bytes, and the key stays cached
// when older entries are evicted.
func TestCacheReAddReplaces(t *testing.T) {
	ctx := context.Background()
	c := newAPQCache(2)
	c.Add(ctx, "h1", "query one")
	c.Add(ctx, "h1", "query one")
	if c.len() != 1 || c.bytes != len("h1")+len("query one") {
		t.Fatalf("after adding h1 twice: %d entries, %d bytes; want 1 entry of %d bytes", c.len(), c.bytes, len("h1")+len("query one"))
	}
	c.Add(ctx, "h2", "query two")
	for _, k := range []string{"h1", "h2"} {
		if _, ok := c.Get(ctx, k); !ok {
			t.Errorf("%s evicted from a cache of 2 entries holding 2 keys", k)
		}
	}
	// A value re-added under its key replaces the old one.
	c.Add(ctx, "h1", "query uno")
	if v, ok := c.Get(ctx, "h1"); !ok || v != "query uno" {
		t.Errorf("h1 = %q, %v; want the value added last", v, ok)
	}
	// A re-added value heavier than the budget drops the key altogether.
	c.Add(ctx, "h2", strings.Repeat("q", 20<<10))
	if _, ok := c.Get(ctx, "h2"); ok || c.len() != 1 || c.bytes != len("h1")+len("query uno") {
		t.Errorf("h2 re-added over the budget: kept %v, %d entries of %d bytes; want h2 gone, h1 alone", ok, c.len(), c.bytes)
	}
}

// TestDocumentRules: @stream is refused as @defer is, and @skip or
// @include on a fragment spread at a subscription's root as on its field.
func TestDocumentRules(t *testing.T) {
	r := newReplica(t, nil)
	for _, tt := range []struct{ name, query, want string }{
		{"@stream on a list field", `{ rooms { nodes @stream { id } } }`, "@stream is not supported"},
		{"@stream with initialCount", `{ rooms { nodes @stream(initialCount: 1) { id } } }`, "@stream is not supported"},
		{"@include on a root fragment spread", `subscription { ...F @include(if: true) } fragment F on Subscription { messagePosted(roomId: "general") { id } }`,
			"Anonymous Subscription must not use @skip or @include"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body, _ := json.Marshal(map[string]any{"query": tt.query})
			w := send(t, r.server, post(string(body)).accepting())
			if !strings.Contains(w.Body.String(), tt.want) || !strings.Contains(w.Body.String(), codeValidation) {
				t.Errorf("%s: %d %s; want an error saying %q with code %s", tt.query, w.Code, w.Body, tt.want, codeValidation)
			}
		})
	}
}

// TestErrorCapBoundary: a list of exactly maxErrors errors is kept whole;
// one more is listed as the count of those left out, under the first
// error's code (none if it has none).
func TestErrorCapBoundary(t *testing.T) {
	list := func(n int, code string) gqlerror.List {
		var l gqlerror.List
		for i := range n {
			e := &gqlerror.Error{Message: fmt.Sprintf("e%d", i)}
			if code != "" {
				e.Extensions = map[string]any{"code": code}
			}
			l = append(l, e)
		}
		return l
	}
	if got := capErrors(list(maxErrors, codeValidation)); len(got) != maxErrors || got[maxErrors-1].Message != fmt.Sprintf("e%d", maxErrors-1) {
		t.Errorf("%d errors capped to %d, want all kept", maxErrors, len(got))
	}
	got := capErrors(list(maxErrors+1, codeValidation))
	if len(got) != maxErrors+1 || got[maxErrors].Message != "too many errors: 1 more are not listed" || got[maxErrors].Extensions["code"] != codeValidation {
		t.Fatalf("%d errors: %d listed, the last %+v; want %d, the last saying 1 more with code %s", maxErrors+1, len(got), got[len(got)-1], maxErrors+1, codeValidation)
	}
	if got := capErrors(list(maxErrors+5, "")); len(got) != maxErrors+1 || got[maxErrors].Extensions != nil {
		t.Errorf("errors without a code: the last %+v, want no extensions", got[len(got)-1])
	}
}

// TestPersistedQueryLoneSurrogate: a persisted query whose string literal
// escapes half a surrogate pair alone is refused when it is registered and
// when it is later sent by its hash alone: the check reads the text the
// APQ cache gives, not the request's empty query.
func TestPersistedQueryLoneSurrogate(t *testing.T) {
	s, _ := newTestServer(t, nil)
	const query = `{ hello(name: "a\ud800b") }`
	sum := sha256.Sum256([]byte(query))
	ext := fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hex.EncodeToString(sum[:]))
	body, err := json.Marshal(map[string]any{"query": query, "extensions": json.RawMessage(ext)})
	if err != nil {
		t.Fatal(err)
	}
	refused := want{status: 400, contentType: ctResponse, err: "Invalid Unicode escape sequence", code: "GRAPHQL_PARSE_FAILED"}
	t.Run("registered", func(t *testing.T) { check(t, send(t, s, post(string(body)).accepting()), refused) })
	t.Run("by hash alone", func(t *testing.T) { check(t, send(t, s, post(`{"extensions":`+ext+`}`).accepting()), refused) })
}

// TestNullCheckPositions: a variable given as null is refused only where a
// non-null type is asked for: an element of a list of non-null items, at
// any depth, or an argument of a directive on the operation itself as on a
// field. Where the type is nullable, null is a value.
func TestNullCheckPositions(t *testing.T) {
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "s.graphql", Input: `
directive @tagged(x: Int!) on QUERY
type Query { opt(n: Int): String, ids(in: [ID!]): String, maybeIDs(in: [ID]): String, deep(in: [[ID!]]): String }
`})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		query string
		where string // what the refusal names; "": not refused
	}{
		{`query($v: Int) { opt(n: $v) }`, ""},
		{`query($v: Int = 3) { opt(n: $v) }`, ""},
		{`query($v: ID) { maybeIDs(in: [$v]) }`, ""},
		{`query($v: ID = "x") { ids(in: [$v]) }`, `argument "in" of ids is non-null (ID!)`},
		{`query($v: ID = "x") { deep(in: [["a", $v]]) }`, `argument "in" of deep is non-null (ID!)`},
		{`query($v: Int = 1) @tagged(x: $v) { opt }`, `argument "x" of @tagged is non-null (Int!)`},
	} {
		doc, errs := gqlparser.LoadQueryWithRules(schema, tt.query, validationRules(true)())
		if errs != nil {
			t.Fatalf("%s: validation refused it: %v", tt.query, errs)
		}
		op := doc.Operations[0]
		vars, verr := validator.VariableValues(schema, op, map[string]any{"v": nil})
		if verr != nil {
			t.Fatalf("%s: variables: %v", tt.query, verr)
		}
		e := nullForNonNull(&graphql.OperationContext{RawQuery: tt.query, Doc: doc, Operation: op, Variables: vars})
		switch {
		case tt.where == "" && e != nil:
			t.Errorf("%s with $v null: refused (%s), want it run", tt.query, e.Message)
		case tt.where != "" && e == nil:
			t.Errorf("%s with $v null: not refused, want it refused saying %s", tt.query, tt.where)
		case tt.where != "" && !strings.Contains(e.Message, tt.where):
			t.Errorf("%s with $v null: refused saying %q, want it saying %s", tt.query, e.Message, tt.where)
		}
	}
}

// TestIntrospectionRule: with introspection off, __type is refused in
// validation as __schema is, and __typename is not; with it on, none is.
func TestIntrospectionRule(t *testing.T) {
	schema, err := gqlparser.LoadSchema(&ast.Source{Name: "s.graphql", Input: `type Query { opt(n: Int): String }`})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		query   string
		refused bool
	}{
		{`{ __type(name: "Query") { name } }`, true},
		{`{ __schema { queryType { name } } }`, true},
		{`{ __typename opt }`, false},
	} {
		_, errs := gqlparser.LoadQueryWithRules(schema, tt.query, validationRules(false)())
		if got := errs != nil && strings.Contains(errs.Error(), "introspection is disabled"); got != tt.refused {
			t.Errorf("introspection off, %s: refused %v (%v), want %v", tt.query, got, errs, tt.refused)
		}
		if _, errs := gqlparser.LoadQueryWithRules(schema, tt.query, validationRules(true)()); errs != nil {
			t.Errorf("introspection on, %s: refused (%v)", tt.query, errs)
		}
	}
}

// fixedEvents is an ExecutableSchemaWithEventContext whose every event is
// what next makes.
type fixedEvents struct {
	graphql.ExecutableSchema
	next graphql.ResponseHandlerWithContext
}

func (f fixedEvents) ExecWithEventContext(context.Context) graphql.ResponseHandlerWithContext {
	return f.next
}

// TestEventErrors: eventErrorsSchema joins the errors recorded for an
// event to its response with the root field's response name in front of
// their paths, makes data null when the non-null root field is null (not
// when the root field is nullable), leaves an event without errors as it
// is, and answers an ending event (eventmeta.Meta.End) with that error
// alone at the root field.
func TestEventErrors(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Name: "s.graphql", Input: `
type Query { a: Int }
type Subscription { s: Thing!, n: Thing }
type Thing { x: Int! }
`})
	for _, tt := range []struct {
		name        string
		query, data string
		fieldErr    bool  // the event records an error at x
		end         error // the event ends the stream with this error
		wantData    string
		wantErrors  string
	}{
		{"non-null root field nulled by an error", `subscription { al: s { x } }`, `{"al":null}`, true, nil,
			"null", "x failed at al.x"},
		{"nullable root field nulled by an error", `subscription { nn: n { x } }`, `{"nn":null}`, true, nil,
			`{"nn":null}`, "x failed at nn.x"},
		{"event without errors", `subscription { al: s { x } }`, `{"al":{"x":1}}`, false, nil,
			`{"al":{"x":1}}`, ""},
		{"ending event", `subscription { al: s { x } }`, `{"al":null}`, true, errors.New("history discarded"),
			"", "history discarded at al"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := gqlparser.MustLoadQueryWithRules(schema, tt.query, validationRules(true)())
			rc := &graphql.OperationContext{RawQuery: tt.query, Doc: doc, Operation: doc.Operations[0], Variables: map[string]any{}}
			ctx := graphql.WithOperationContext(context.Background(), rc)
			es := withEventErrors(fixedEvents{next: func(ctx context.Context) (context.Context, *graphql.Response) {
				if tt.fieldErr {
					graphql.AddError(ctx, &gqlerror.Error{Message: "x failed", Path: ast.Path{ast.PathName("x")}})
				}
				if tt.end != nil {
					ctx = eventmeta.WithMeta(ctx, eventmeta.Meta{End: tt.end})
				}
				return ctx, &graphql.Response{Data: json.RawMessage(tt.data)}
			}}, graphql.DefaultErrorPresenter, graphql.DefaultRecover)
			events, ok := es.(graphql.ExecutableSchemaWithEventContext)
			if !ok {
				t.Fatal("withEventErrors dropped ExecWithEventContext")
			}
			_, resp := events.ExecWithEventContext(ctx)(graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, graphql.DefaultRecover))
			var l []string
			for _, e := range resp.Errors {
				l = append(l, e.Message+" at "+e.Path.String())
			}
			if errs := strings.Join(l, "; "); string(resp.Data) != tt.wantData || errs != tt.wantErrors {
				t.Errorf("data %s, errors %q; want data %s, errors %q", resp.Data, errs, tt.wantData, tt.wantErrors)
			}
		})
	}
}

// TestCleanPathLeavesConnect: a CONNECT request is left as it is, as
// http.ServeMux leaves it, whatever its path; and the canonical form of a
// path is rooted.
func TestCleanPathLeavesConnect(t *testing.T) {
	r := httptest.NewRequest(http.MethodConnect, "//graphql", nil)
	if got := withCleanPath(r); got != r || got.URL.EscapedPath() != "//graphql" {
		t.Errorf("CONNECT //graphql: path %q, the request itself %v; want it left alone", got.URL.EscapedPath(), got == r)
	}
	for in, want := range map[string]string{"": "/", "graphql": "/graphql", "a/../graphql/": "/graphql/"} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}
