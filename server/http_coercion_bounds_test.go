package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestHTTPNullInANonNullListElement: a variable given null where a
// list's elements are non-null ([String!], written [$s]) is refused as a
// null for a non-null argument is, not passed to the resolver as a list
// holding null.
func TestHTTPNullInANonNullListElement(t *testing.T) {
	s, _ := newTestServer(t, nil)
	body, _ := json.Marshal(map[string]any{
		"query":     `query($s: String = "a") { echo(l: [$s]) }`,
		"variables": map[string]any{"s": nil},
	})
	w := send(t, s, post(string(body)).accepting())
	e := refusedWithOne(t, w)
	checkNullRefusal(t, e, "s", `argument "l" of echo`)
}

// TestHTTPTypenameIsNoMutation: the mutation rate limit counts the
// mutations a document runs (README); __typename beside a mutation runs
// none, so a burst of one admits "mutation { bump __typename }".
func TestHTTPTypenameIsNoMutation(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) {
		o.Limits.MutationRate = 1
		o.Limits.MutationBurst = 1
	})
	w := send(t, s, post(`{"query":"mutation { bump __typename }"}`).with("X-Herald-User", "ann"))
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), `"errors"`) || !strings.Contains(w.Body.String(), `"bump":1`) {
		t.Errorf("mutation { bump __typename } within a burst of 1: %d %s, want it run", w.Code, w.Body.String())
	}
}

// TestHTTPNullIfOnAnInlineFragment: a null given to @include's
// non-null "if" on an inline fragment is refused with the variable's path,
// as on a field or a fragment spread (it panicked once, see nullvars.go).
func TestHTTPNullIfOnAnInlineFragment(t *testing.T) {
	s, _ := newTestServer(t, nil)
	body, _ := json.Marshal(map[string]any{
		"query":     `query($s: Boolean = true) { ... @include(if: $s) { whoami } }`,
		"variables": map[string]any{"s": nil},
	})
	e := refusedWithOne(t, send(t, s, post(string(body)).accepting()))
	checkNullRefusal(t, e, "s", `argument "if" of @include`)
}

// TestHTTPExtensionsWithoutErrors: extensions a resolver or an
// Options.AroundFields middleware registers (graphql.RegisterExtension)
// reach the client with the data, also when there are no errors.
func TestHTTPExtensionsWithoutErrors(t *testing.T) {
	var called atomic.Int32
	r := newReplica(t, func(o *Options) {
		o.AroundFields = func(ctx context.Context, next graphql.Resolver) (any, error) {
			if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Field.Name == "rooms" {
				called.Add(1)
				graphql.RegisterExtension(ctx, "served", "yes")
			}
			return next(ctx)
		}
	})
	w := send(t, r.server, post(`{"query":"{ rooms { totalCount } }"}`).with("X-Herald-User", "ann"))
	if called.Load() == 0 {
		t.Fatal("AroundFields was not called for rooms")
	}
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"extensions":{"served":"yes"}`) {
		t.Errorf("%d %s, want the data and extensions.served", w.Code, w.Body.String())
	}
}
