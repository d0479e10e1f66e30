package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/stream"
)

// executionKey identifies subscriptions that may share one execution: the
// same document (after APQ), operation, variables and, if the selection
// reads a viewer-dependent field, the same identity.
type executionKey [sha256.Size]byte

func keyOf(ctx context.Context, rc *graphql.OperationContext, viewerDirective string) executionKey {
	h := sha256.New()
	h.Write([]byte{0}) // shared: see privateKey
	h.Write([]byte(rc.RawQuery))
	h.Write([]byte{0})
	h.Write([]byte(rc.OperationName))
	h.Write([]byte{0})
	vars, _ := json.Marshal(rc.Variables) // maps marshal with sorted keys: canonical
	h.Write(vars)
	h.Write([]byte{0})
	if viewerDependent(rc, viewerDirective) {
		h.Write([]byte{1})
		if id, ok := auth.FromContext(ctx); ok {
			h.Write([]byte(id.UserID))
		}
	}
	var k executionKey
	h.Sum(k[:0])
	return k
}

// privateKey is a key no other subscription has: a resumed subscription's
// replay is its own, so it must not join (or be joined by) an execution
// whose earlier results it did not receive.
// Its hash input starts with a byte keyOf's never does.
func privateKey(n uint64) executionKey {
	return sha256.Sum256(fmt.Appendf(nil, "\x01private resumed subscription %d", n))
}

// resumes reports whether a root field of the operation is given a
// non-null value for the resume argument (a cursor).
func resumes(rc *graphql.OperationContext, argument string) bool {
	if argument == "" {
		return false
	}
	for _, sel := range rc.Operation.SelectionSet {
		f, ok := sel.(*ast.Field)
		if !ok {
			continue
		}
		if arg := f.Arguments.ForName(argument); arg != nil {
			if v, err := arg.Value.Value(rc.Variables); err == nil && v != nil {
				return true
			}
		}
	}
	return false
}

// viewerDependent reports whether the operation selects a field marked
// with the directive. Without a directive name every operation is taken
// as viewer-dependent: sharing across identities must be opted into.
func viewerDependent(rc *graphql.OperationContext, directive string) bool {
	if directive == "" {
		return true
	}
	return selects(rc.Operation.SelectionSet, directive, map[string]bool{})
}

func selects(set ast.SelectionSet, directive string, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Definition != nil && s.Definition.Directives.ForName(directive) != nil {
				return true
			}
			if selects(s.SelectionSet, directive, seen) {
				return true
			}
		case *ast.InlineFragment:
			if selects(s.SelectionSet, directive, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if seen[s.Name] || s.Definition == nil {
				continue
			}
			seen[s.Name] = true
			if selects(s.Definition.SelectionSet, directive, seen) {
				return true
			}
		}
	}
	return false
}

// sharedExecutions runs one execution per distinct subscription on this
// replica and fans each result out to every member.
type sharedExecutions struct {
	metrics *metrics
	log     *slog.Logger

	mu       sync.Mutex
	byKey    map[executionKey]*execution
	closed   bool
	privates uint64         // resumed subscriptions so far, for privateKey
	wg       sync.WaitGroup // one per running execution
}

func newSharedExecutions(m *metrics, log *slog.Logger) *sharedExecutions {
	return &sharedExecutions{metrics: m, log: log, byKey: make(map[executionKey]*execution)}
}

// execution is one running subscription and the operations sharing it.
type execution struct {
	key     executionKey
	cancel  context.CancelFunc
	ended   bool          // guarded by the registry's mu
	started chan struct{} // closed once the resolver has run

	mu      sync.RWMutex
	members []*operation
}

// join adds op to the execution of its key, starting one if there is none.
// ctx carries the identity of the subscriber who starts it; the execution
// itself lives until its last member leaves or its stream ends.
//
// A new execution's resolver runs here, in the starting subscriber's
// reader and outside the registry lock (a resolver may wait, e.g. for the
// replica to reach a resume cursor); subscribers joining meanwhile wait for
// it. So once join returns, the execution sees every change applied after
// it: a mutation the client sends next on the same socket included. Its
// results are delivered only once op is a member, so an immediate resolver
// error reaches op.
func (r *sharedExecutions) join(op *operation, ctx context.Context, exec graphql.GraphExecutor,
	rc *graphql.OperationContext, viewerDirective, resumeArgument string) {
	private := resumes(rc, resumeArgument)
	var key executionKey
	if !private {
		key = keyOf(ctx, rc, viewerDirective)
	}
	r.mu.Lock()
	if private {
		r.privates++
		key = privateKey(r.privates)
	}
	if r.closed {
		r.mu.Unlock()
		op.conn.streamEnded(op)
		return
	}
	e := r.byKey[key]
	starting := e == nil
	var execCtx context.Context
	if starting {
		var cancel context.CancelFunc
		execCtx, cancel = context.WithCancel(context.Background())
		if id, ok := auth.FromContext(ctx); ok {
			execCtx = auth.NewContext(execCtx, id)
		}
		e = &execution{key: key, cancel: cancel, started: make(chan struct{})}
		r.byKey[key] = e
		r.wg.Add(1) // before the lock is released, so close waits for it
	}
	e.mu.Lock()
	op.exec = e
	op.idx = len(e.members)
	e.members = append(e.members, op)
	e.mu.Unlock()
	r.mu.Unlock()

	if !starting {
		<-e.started
		return
	}
	slot := &eventSlot{}
	execCtx = context.WithValue(execCtx, eventSlotKey{}, slot)
	responses, respCtx := exec.DispatchOperation(execCtx, rc)
	close(e.started)
	go r.run(e, slot, responses, respCtx)
}

// leave removes op from its execution; the last member leaving stops it.
func (r *sharedExecutions) leave(op *operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := op.exec
	if e == nil {
		return
	}
	op.exec = nil
	e.mu.Lock()
	if op.idx < len(e.members) && e.members[op.idx] == op {
		last := len(e.members) - 1
		e.members[op.idx] = e.members[last]
		e.members[op.idx].idx = op.idx
		e.members[last] = nil
		e.members = e.members[:last]
	}
	empty := len(e.members) == 0
	e.mu.Unlock()
	if empty && !e.ended {
		e.ended = true
		delete(r.byKey, e.key)
		e.cancel()
	}
}

// run drives the subscription whose resolver join has called: per event one
// selection-set execution and one encoding, whose bytes every member's
// socket writes with only its id around them.
func (r *sharedExecutions) run(e *execution, slot *eventSlot, responses graphql.ResponseHandler, ctx context.Context) {
	defer r.wg.Done()
	defer e.cancel()
	r.metrics.executions.Inc()
	defer r.metrics.executions.Dec()

	for {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		p := &payload{bytes: encodeResponse(resp), appended: slot.meta.Appended}
		slot.meta = stream.Meta{}
		e.mu.RLock()
		for _, op := range e.members {
			op.conn.deliver(op, p)
		}
		e.mu.RUnlock()
	}

	r.mu.Lock()
	endedByLeave := e.ended
	e.ended = true
	if r.byKey[e.key] == e {
		delete(r.byKey, e.key)
	}
	r.mu.Unlock()
	if endedByLeave {
		return
	}
	e.mu.Lock()
	members := e.members
	e.members = nil
	e.mu.Unlock()
	for _, op := range members {
		op.conn.streamEnded(op)
	}
}

// count is the number of running executions.
func (r *sharedExecutions) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byKey)
}

// close stops every execution and waits for them.
func (r *sharedExecutions) close() error {
	r.mu.Lock()
	r.closed = true
	for key, e := range r.byKey {
		e.ended = true
		e.cancel()
		delete(r.byKey, key)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// eventSlot receives the metadata of the event being delivered from the
// response middleware, which sees the event's own context.
type eventSlot struct{ meta stream.Meta }

type eventSlotKey struct{}

// eventMetadata is the AroundResponses middleware that puts each
// subscription event's cursor into extensions.cursor and hands its
// metadata to the shared execution that is delivering it.
func eventMetadata(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil {
		return nil
	}
	meta, ok := stream.MetaFrom(ctx)
	if !ok {
		return resp
	}
	if meta.Cursor != "" {
		if resp.Extensions == nil {
			resp.Extensions = map[string]any{}
		}
		resp.Extensions["cursor"] = meta.Cursor
	}
	if slot, ok := ctx.Value(eventSlotKey{}).(*eventSlot); ok {
		slot.meta = meta
	}
	return resp
}
