package server

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// stubResumeExec prepares "subscription($after: String) { ticks(after: $after) }"
// and runs it: without the cursor (the live form) the stream ends at once,
// as a source stream that completes by itself does; with it (the replay)
// the stream lasts until its execution is stopped.
type stubResumeExec struct{ schema *ast.Schema }

const stubResumeQuery = `subscription($after: String) { ticks(after: $after) }`

func (x stubResumeExec) CreateOperationContext(_ context.Context, params *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	doc, err := gqlparser.LoadQueryWithRules(x.schema, params.Query, rules.NewDefaultRules())
	if err != nil {
		return nil, gqlerror.List{{Message: err.Error()}}
	}
	return &graphql.OperationContext{RawQuery: params.Query, Variables: params.Variables, Doc: doc,
		Operation: doc.Operations[0]}, nil
}

func (stubResumeExec) DispatchOperation(ctx context.Context, rc *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	if rc.Variables["after"] == nil {
		return func(context.Context) *graphql.Response { return nil }, ctx
	}
	return func(ctx context.Context) *graphql.Response {
		<-ctx.Done()
		return nil
	}, ctx
}

func (stubResumeExec) DispatchError(context.Context, gqlerror.List) *graphql.Response {
	return &graphql.Response{}
}

// leavingSub ends its operations as a socket does: an operation whose
// stream ended leaves its other execution too.
type leavingSub struct{ r *sharedExecutions }

func (s *leavingSub) deliver(*operation, *payload) {}
func (s *leavingSub) streamEnded(op *operation) {
	if op.handoff != nil {
		s.r.leave(op)
	}
}
func (s *leavingSub) tooSlow(*operation, string)              {}
func (s *leavingSub) denied(op *operation, _ *gqlerror.Error) { s.r.leave(op) }

// TestResumeAfterTheLiveStreamEndedLeavesNoReplay: a resumed subscriber
// whose shared live execution ends (and who leaves it) before its private
// replay has started must not be left a member of a replay nobody will
// ever stop: that would keep its resolver, its watcher and its goroutine
// running until the server stops.
func TestResumeAfterTheLiveStreamEndedLeavesNoReplay(t *testing.T) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Name: "stub.graphql",
		Input: `type Query { x: Int } type Subscription { ticks(after: String): Int }`})
	exec := stubResumeExec{schema: schema}
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := newSharedExecutions(m, slog.New(slog.DiscardHandler), 16, nil)
	defer r.close(context.Background(), 0)
	sub := &leavingSub{r: r}
	ctx := context.Background()
	for i := range 500 {
		raw := &graphql.RawParams{Query: stubResumeQuery, Variables: map[string]any{"after": "c1"}}
		rc, errs := exec.CreateOperationContext(ctx, raw)
		if errs != nil {
			t.Fatal(errs)
		}
		op := &operation{id: "1", idJSON: `"1"`, sub: sub}
		r.join(op, ctx, exec, raw, rc, "", "after")
		deadline := time.Now().Add(2 * time.Second)
		for r.count() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("join %d: %d executions still running after the subscriber left them all", i, r.count())
			}
			time.Sleep(time.Millisecond)
		}
	}
}
