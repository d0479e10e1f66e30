package server

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/eventmeta"
)

// executionKey identifies subscriptions that may share one execution: the
// same document (after APQ), operation, variables and, if the selection
// reads a viewer-dependent field, the same identity.
type executionKey [sha256.Size]byte

// A null resume cursor is the same as none, so subscribers that always pass
// the cursor variable share with those that never do.
func keyOf(ctx context.Context, rc *graphql.OperationContext, schema *ast.Schema, viewerDirective, cursorVariable string) executionKey {
	h := sha256.New()
	h.Write([]byte{0}) // shared: see privateKey
	h.Write([]byte(rc.RawQuery))
	h.Write([]byte{0})
	h.Write([]byte(rc.OperationName))
	h.Write([]byte{0})
	variables := rc.Variables
	if v, ok := variables[cursorVariable]; ok && v == nil {
		variables = maps.Clone(variables)
		delete(variables, cursorVariable)
	}
	vars, _ := json.Marshal(variables) // maps marshal with sorted keys: canonical
	h.Write(vars)
	h.Write([]byte{0})
	if viewerDependent(rc, schema, viewerDirective) {
		h.Write([]byte{1})
		if id, ok := auth.FromContext(ctx); ok {
			h.Write([]byte(id.UserID))
		}
	}
	var k executionKey
	h.Sum(k[:0])
	return k
}

// viewerDependent reports whether the operation selects a field marked
// with the directive. Without a directive name every operation is taken
// as viewer-dependent: sharing across identities must be opted into.
func viewerDependent(rc *graphql.OperationContext, schema *ast.Schema, directive string) bool {
	if directive == "" {
		return true
	}
	return selects(schema, rc.Operation.SelectionSet, directive, map[string]bool{})
}

func selects(schema *ast.Schema, set ast.SelectionSet, directive string, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if marked(schema, s, directive) {
				return true
			}
			if selects(schema, s.SelectionSet, directive, seen) {
				return true
			}
		case *ast.InlineFragment:
			if selects(schema, s.SelectionSet, directive, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if seen[s.Name] || s.Definition == nil {
				continue
			}
			seen[s.Name] = true
			if selects(schema, s.Definition.SelectionSet, directive, seen) {
				return true
			}
		}
	}
	return false
}

// marked reports whether directive marks the field f selects, on the type
// it is selected through or on a type related to that one: an interface
// the type implements, or, for an interface, a type implementing it, and
// the interfaces that one implements. GraphQL carries a field's directives
// neither way, and which of those types a selection goes through is the
// client's choice: Post.mine marked, `item { mine }` through the interface
// Item reads Post.mine all the same; Owned.mine marked, Post implementing
// Item and Owned, `item { mine }` reads Post.mine too.
func marked(schema *ast.Schema, f *ast.Field, directive string) bool {
	// A mark on a type (the directive declared on OBJECT or INTERFACE
	// too, as New allows) marks every field of it.
	markedOn := func(d *ast.Definition) bool {
		fd := d.Fields.ForName(f.Name)
		return fd != nil && (fd.Directives.ForName(directive) != nil || d.Directives.ForName(directive) != nil)
	}
	if f.Definition != nil && f.Definition.Directives.ForName(directive) != nil {
		return true
	}
	parent := f.ObjectDefinition
	if parent != nil && parent.Directives.ForName(directive) != nil {
		return true
	}
	if schema == nil || parent == nil {
		return false
	}
	// A type or any interface it implements (the list is transitive:
	// validation requires it).
	markedOnOrAbove := func(d *ast.Definition) bool {
		if markedOn(d) {
			return true
		}
		for _, name := range d.Interfaces {
			if i := schema.Types[name]; i != nil && markedOn(i) {
				return true
			}
		}
		return false
	}
	if markedOnOrAbove(parent) {
		return true
	}
	if parent.Kind == ast.Interface {
		return slices.ContainsFunc(schema.PossibleTypes[parent.Name], markedOnOrAbove)
	}
	return false
}

// sharedExecutions runs one execution per distinct subscription on this
// replica and fans each result out to every member.
type sharedExecutions struct {
	metrics   *metrics
	log       *slog.Logger
	holdLimit int // see handoff.limit
	// schema is the served one, for the ViewerDirective's marks on
	// related types (marked); set by New before any join.
	schema   *ast.Schema
	presence *presenceTracker // nil: nobody is told who is present

	mu       sync.Mutex
	byKey    map[executionKey]*execution
	closed   bool
	privates uint64        // private executions so far, for privateKey
	running  int           // executions started and not yet stopped
	idle     chan struct{} // closed when running reaches 0; made by close

	helpers *fanoutHelpers // deliver parts of large fan-outs
}

func newSharedExecutions(m *metrics, log *slog.Logger, holdLimit int, presence Presence) *sharedExecutions {
	return &sharedExecutions{metrics: m, log: log, holdLimit: holdLimit, presence: newPresenceTracker(presence),
		byKey: make(map[executionKey]*execution), helpers: newFanoutHelpers(runtime.GOMAXPROCS(0) - 1)}
}

// execution is one running subscription and the operations sharing it.
type execution struct {
	key     executionKey
	cancel  context.CancelFunc
	ended   bool          // guarded by the registry's mu
	started chan struct{} // closed once the resolver has run
	// replay marks a resumed subscriber's private replay; retired is set
	// when the shared execution takes over from it.
	replay  bool
	retired atomic.Bool

	mu      sync.RWMutex
	members []*operation
	// gate, when the resolver set one (auth.Restrict), admits the members
	// that may receive the events; gated is set once the resolver has run.
	// Both guarded by mu.
	gate  auth.Gate
	gated bool
	// topic is the presence topic the resolver announced (auth.Announce),
	// "" when none: each admitted member is present on it while a member.
	// Set with gated, guarded by mu.
	topic string
	// onJoin is what the resolver asked to be called when a member joins
	// after the execution started (auth.OnJoin); set with gated.
	onJoin func()
	// log is the registry's, for a panic of the gate's while it admits a
	// member (see access).
	log *slog.Logger
}

// join adds op to the execution of its key, starting one if there is none.
//
// A subscription resuming from a cursor passed in a variable joins the
// shared live execution of its key (the same subscription without the
// cursor) and also runs a private execution that replays from the cursor;
// once the replay reaches the first live result, the private execution is
// retired and the subscriber continues on the shared one (see handoff). A
// cursor written into the document itself keeps the private execution.
func (r *sharedExecutions) join(op *operation, ctx context.Context, exec graphql.GraphExecutor,
	raw *graphql.RawParams, rc *graphql.OperationContext, viewerDirective, resumeArgument string) {
	if id, ok := auth.FromContext(ctx); ok {
		op.viewer = id.UserID
	}
	cursor := findCursor(rc, resumeArgument)
	if !cursor.given {
		r.attach(op, ctx, exec, rc, keyOf(ctx, rc, r.schema, viewerDirective, cursor.variable), false)
		return
	}
	var live *graphql.OperationContext
	if cursor.variable != "" && !usedElsewhere(rc, cursor.variable, resumeArgument) {
		live = r.prepareLive(ctx, exec, raw, cursor.variable)
	}
	if live == nil {
		r.attach(op, ctx, exec, rc, r.privateKey(), false)
		return
	}
	op.handoff = &handoff{limit: r.holdLimit}
	r.attach(op, ctx, exec, live, keyOf(ctx, live, r.schema, viewerDirective, cursor.variable), false)
	if op.grant.Load() == refusedGrant || ctx.Err() != nil {
		return // denied, or its transport is gone: no replay either
	}
	r.attach(op, ctx, exec, rc, r.privateKey(), true)
}

// attach makes op a member of the execution of key (as its private replay
// when replay is set), starting the execution if there is none.
//
// A new execution's resolver runs here, in the starting subscriber's
// reader and outside the registry lock (a resolver may wait, e.g. for the
// replica to reach a resume cursor); subscribers joining meanwhile wait for
// it, or until their own transport's ctx ends. The resolver's context is
// the execution's, not op's, but op's ending while it runs makes op leave
// (abandonWith), which cancels it unless others have joined. So once join returns, the execution sees every change applied after
// it: a mutation the client sends next on the same socket included. Its
// results are delivered only once op is a member, so an immediate resolver
// error reaches op.
func (r *sharedExecutions) attach(op *operation, ctx context.Context, exec graphql.GraphExecutor,
	rc *graphql.OperationContext, key executionKey, replay bool) {
	r.confirmJoiner(ctx, op, key)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		op.sub.streamEnded(op)
		return
	}
	if op.finished.Load() || replay && op.exec == nil {
		// op was stopped before it could join (graphql-sse's DELETE is a
		// request of its own, served while the POST still prepares op), or
		// it has left its live execution already (its stream ended, or it
		// was denied) before its replay could start: leave, which it
		// called then, found nothing to leave, so it may not join now.
		// release marks op finished before it takes r.mu to leave.
		r.mu.Unlock()
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
		e = &execution{key: key, cancel: cancel, started: make(chan struct{}), replay: replay, log: r.log}
		r.byKey[key] = e
		r.running++ // before the lock is released, so close waits for it
	}
	e.mu.Lock()
	if replay {
		op.handoff.private = e
		e.members = append(e.members, op)
	} else {
		op.exec = e
		op.idx = len(e.members)
		e.members = append(e.members, op)
	}
	refused := e.gated && !e.admit(op)
	gate := e.gate
	var onJoin func()
	if e.gated && !refused && !replay {
		r.enterPresence(ctx, op, e.topic)
		onJoin = e.onJoin
		// The results already on their way are changes to a state op
		// has not seen; onJoin sends it the next one.
		op.awaitingState.Store(onJoin != nil)
	}
	e.mu.Unlock()
	r.mu.Unlock()

	if !starting {
		if refused {
			op.sub.denied(op, r.refusalError(ctx, gate, rc))
		}
		select {
		case <-e.started:
		case <-ctx.Done():
			// op's socket or stream is gone: it stops waiting for
			// another's start, and leaves with its transport.
			return
		}
		if onJoin != nil {
			r.joined(ctx, op, onJoin)
		}
		return
	}
	slot := &eventSlot{}
	execCtx = context.WithValue(execCtx, eventSlotKey{}, slot)
	if replay {
		execCtx = eventmeta.WithCaughtUp(execCtx, func(m eventmeta.Meta) {
			op.handoff.caughtUp(streamPos{m.Generation, m.Position})
		})
	}
	execCtx, guard := auth.WithGuard(execCtx, func() { r.recheck(e) })
	stopWatching := r.abandonWith(ctx, op)
	responses, respCtx := r.dispatch(execCtx, exec, rc)
	stopWatching()
	// The resolver has run: from now on the gate it set, if any, decides
	// who may receive the events. Members that joined meanwhile are
	// admitted here, before anything is delivered; later ones by attach.
	r.confirmMembers(execCtx, e, guard.Gate())
	e.mu.Lock()
	e.gate, e.gated = guard.Gate(), true
	if !e.replay {
		e.topic, e.onJoin = guard.Topic(), guard.Joined()
	}
	var denied []*operation
	for _, m := range e.members {
		if !e.admit(m) {
			denied = append(denied, m)
		} else if !e.replay {
			r.enterPresence(execCtx, m, e.topic)
		}
	}
	e.mu.Unlock()
	close(e.started)
	for _, m := range denied {
		m.sub.denied(m, r.refusalError(execCtx, guard.Gate(), rc))
	}
	go r.run(e, slot, responses, respCtx)
}

// dispatch starts an execution's resolver: exec dispatches rc, through
// the executor's operation interceptors to the schema's Exec. gqlgen
// recovers a panic of the resolver's, not of an interceptor's (nor of an
// Exec of the schema's own); this runs on the starting subscriber's
// goroutine, a socket's among them, where nothing else would recover it:
// the process would end, or, on an HTTP stream's (net/http recovers), the
// execution would stay registered, never started, and every later
// subscriber of its key would wait on it. A panic is logged and taken as
// a resolver that failed with the internal error: it is the execution's
// one result, which every member gets (failed, see deliver), and the
// execution ends, as after a resolver's error. Once per execution.
func (r *sharedExecutions) dispatch(ctx context.Context, exec graphql.GraphExecutor, rc *graphql.OperationContext) (
	responses graphql.ResponseHandler, respCtx context.Context) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(r.log, graphql.WithOperationContext(ctx, rc), "starting a subscription", recovered)
			responses, respCtx = graphql.OneShot(&graphql.Response{Errors: gqlerror.List{internalError()}}), ctx
		}
	}()
	return exec.DispatchOperation(ctx, rc)
}

// joined calls onJoin, the hook e's resolver set (auth.OnJoin), for op,
// which has just joined e: the hook has the domain send again the state
// that op awaits (operation.awaitingState). It runs on op's goroutine, a
// socket's among them, where nothing would recover a panic of the hook's
// and the process would end. One is logged, and op is ended with the
// internal error, as a subscription an event's panic ends: the state it
// awaits may never come, and it would get nothing until it does. No lock
// is held here; e and its other members go on.
func (r *sharedExecutions) joined(ctx context.Context, op *operation, onJoin func()) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(r.log, ctx, "telling a subscription's resolver that a subscriber joined", recovered)
			op.sub.denied(op, internalError())
		}
	}()
	onJoin()
}

// enterPresence has op present on topic (presenceTracker.enter) as attach
// admits it, under the execution's lock and, for a subscriber joining a
// running execution, the registry's. That is why Enter is called there:
// leave takes op out of its execution under the same locks before it
// undoes op's presence, and run takes the members out under e.mu before
// it does, so op is entered only while it is a member and its leave finds
// it entered; called after them, an enter could follow op's leave and
// count op present for good. But it runs on the subscriber's goroutine, a
// socket's among them, where nothing would recover a panic of Enter's and
// the process would end; on an HTTP stream's, net/http recovers it but the
// locks, taken without defer, stayed held: no other member got an event,
// no subscription could start on the replica. A panic is logged and op
// counted as not entered, the locks released as after any admission: the
// tracker forgets the topic, so op's leave tells Presence nothing (a Leave
// with no Enter would take one of the user's other subscriptions off the
// count); the subscription goes on, only not counted present. Deferred
// only where Presence is told something, once per member.
func (r *sharedExecutions) enterPresence(ctx context.Context, op *operation, topic string) {
	if r.presence == nil || topic == "" {
		return
	}
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(r.log, ctx, "telling Presence that a subscriber is present", recovered)
			// Under the locks above: no leave of op's runs meanwhile.
			r.presence.mu.Lock()
			op.presence = ""
			r.presence.mu.Unlock()
		}
	}()
	r.presence.enter(op, topic)
}

// leavePresence undoes op's presence (presenceTracker.leave) for run, as
// its execution ends by itself: on the execution's goroutine, where
// nothing would recover a panic of Presence.Leave's and the process would
// end. A panic is logged and op counted as gone (the tracker forgot the
// topic before it called Leave), and the other members are ended all the
// same.
func (r *sharedExecutions) leavePresence(ctx context.Context, op *operation) {
	if r.presence == nil {
		return
	}
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(r.log, ctx, "telling Presence that a subscriber left", recovered)
		}
	}()
	r.presence.leave(op)
}

// abandonWith makes op leave its executions as soon as ctx, its
// transport's, ends (the socket dropped or closed, the stream dropped or
// its client gone) while op starts one: the resolver of an execution op
// was the only member of has its context cancelled then (see leave),
// while one that others joined meanwhile goes on for them. The returned
// function stops watching, and waits for the leave if it has begun.
func (r *sharedExecutions) abandonWith(ctx context.Context, op *operation) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	left := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		defer close(left)
		r.leave(op)
	})
	return func() {
		if !stopAfter() {
			<-left
		}
	}
}

// admit records whether op may receive e's events, as e's gate says;
// false if it may not (also if the gate panics: see access). Callers hold
// e.mu, and the registry's lock when op joins.
func (e *execution) admit(op *operation) bool {
	if e.gate == nil {
		return true
	}
	since, ok := access(e.log, context.Background(), e.gate, op.viewer)
	if !ok {
		op.grant.Store(refusedGrant)
		return false
	}
	// A resumed subscriber is a member of two executions of one gate: both
	// must admit it under the same access.
	if !op.grant.CompareAndSwap(0, since+1) && op.grant.Load() != since+1 {
		return false
	}
	return true
}

// confirmJoiner lets the gate of the running execution of key confirm op's
// user if it would refuse them (auth.Confirmer): the gate may be behind its
// domain, and a refusal ends op with FORBIDDEN, which clients do not retry.
// It runs before op joins, outside every lock, so that no event reaches the
// execution's members while op waits.
func (r *sharedExecutions) confirmJoiner(ctx context.Context, op *operation, key executionKey) {
	r.mu.Lock()
	e := r.byKey[key]
	r.mu.Unlock()
	if e == nil {
		return // op starts it: confirmMembers, once its resolver has run
	}
	e.mu.RLock()
	gate, gated := e.gate, e.gated
	e.mu.RUnlock()
	if c, ok := gate.(auth.Confirmer); ok && gated {
		if _, ok := access(r.log, ctx, c, op.viewer); !ok {
			r.confirm(ctx, c, op.viewer)
		}
	}
}

// access is gate.Access(user), asked as a subscriber joins (admit,
// confirmJoiner, confirmMembers), on the subscriber's goroutine: a
// socket's, where nothing would recover a panic of the gate's and the
// process would end; an HTTP stream's, where net/http recovers it but the
// locks admit's callers hold (the registry's, the execution's) would stay
// held, and every later subscription on the replica would wait for them.
// A panic is logged and taken as a refusal: the subscriber is refused
// (FORBIDDEN), its callers' locks released as after any refusal. The
// deferred recover is paid once per join; a delivery asks Access through
// allows, under deliverEvents' recover, with nothing deferred per event.
func access(log *slog.Logger, ctx context.Context, gate auth.Gate, user string) (since uint64, ok bool) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(log, ctx, "asking a subscription's gate whether a subscriber may join", recovered)
			since, ok = 0, false
		}
	}()
	return gate.Access(user)
}

// confirm has c confirm user. It runs on the subscriber's goroutine, a
// socket's own among them, where nothing would recover a panic of
// Confirm's: one is logged and taken as a Confirm that found nothing, so
// that Access decides, as after a Confirm that could not read its store
// (it reports no error). Deferred only for a user the gate refuses.
func (r *sharedExecutions) confirm(ctx context.Context, c auth.Confirmer, user string) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(r.log, ctx, "confirming a subscriber's access", recovered)
		}
	}()
	c.Confirm(ctx, user)
}

// confirmMembers lets gate confirm the users of e's members it would
// refuse, as confirmJoiner does for those joining later. It runs once e's
// resolver has set gate, before e's results are read, so no member misses
// an event while its user is confirmed.
func (r *sharedExecutions) confirmMembers(ctx context.Context, e *execution, gate auth.Gate) {
	c, ok := gate.(auth.Confirmer)
	if !ok {
		return
	}
	e.mu.RLock()
	var users []string
	for _, m := range e.members {
		if _, ok := access(r.log, ctx, c, m.viewer); !ok && !slices.Contains(users, m.viewer) {
			users = append(users, m.viewer)
		}
	}
	e.mu.RUnlock()
	for _, user := range users {
		r.confirm(ctx, c, user)
	}
}

// refusedGrant marks an operation a gate refused (see operation.grant).
const refusedGrant = ^uint64(0)

// allows reports whether op may receive the event at position pos (0: a
// result with no position, such as an error) of a gated execution: the
// access it was admitted under is still the user's, and the event is not
// older than that access. Callers hold e.mu (read).
func (e *execution) allows(op *operation, pos uint64) (deliver, keep bool) {
	grant := op.grant.Load()
	if grant == 0 || grant == refusedGrant {
		return false, grant == 0
	}
	since, ok := e.gate.Access(op.viewer)
	if !ok || since+1 != grant {
		return false, false
	}
	return pos == 0 || pos > since, true
}

// recheck ends, with a FORBIDDEN error, the members of e whose access its
// gate has withdrawn. The domain calls it (through auth.Restrict) when it
// applies a change that withdraws access, so that the subscriptions end
// even when no event follows.
func (r *sharedExecutions) recheck(e *execution) {
	var denied []*operation
	e.mu.RLock()
	if e.gate != nil {
		for _, op := range e.members {
			if _, keep := e.allows(op, 0); !keep {
				denied = append(denied, op)
			}
		}
	}
	e.mu.RUnlock()
	for _, op := range denied {
		op.sub.denied(op, forbiddenError())
	}
}

// codeForbidden is the error code of a subscription ended because its
// subscriber may no longer receive its events.
const codeForbidden = "FORBIDDEN"

func forbiddenError() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "forbidden: access to this subscription's events was withdrawn",
		Extensions: map[string]any{"code": codeForbidden},
	}
}

// refusalError ends the subscription of a subscriber gate never admitted:
// with the gate's own reason when it gives one (auth.Denier: "you are not
// a member of room <id>", as a query of the room says), not that access
// was withdrawn; at the root field, as a resolver's refusal is.
func (r *sharedExecutions) refusalError(ctx context.Context, gate auth.Gate, rc *graphql.OperationContext) *gqlerror.Error {
	err := &gqlerror.Error{
		Message:    "forbidden: you may not receive this subscription's events",
		Extensions: map[string]any{"code": codeForbidden},
	}
	if d, ok := gate.(auth.Denier); ok {
		err.Message = r.denial(ctx, d, err.Message)
	}
	if f, ok := rootField(rc); ok {
		err.Path = ast.Path{ast.PathName(f.Alias)}
		if f.Position != nil {
			err.Locations = []gqlerror.Location{{Line: f.Position.Line, Column: f.Position.Column}}
		}
	}
	return err
}

// denial is d's reason for refusing a subscriber, or fallback if Denial
// panics. It runs on the refused subscriber's goroutine, a socket's among
// them, where nothing would recover the panic and the process would end;
// for the members refused as an execution starts, before its delivery
// starts. The panic is logged, and the refusal stands with the generic
// reason: the gate did refuse, only its wording failed, and FORBIDDEN,
// which clients do not retry, is still the answer owed.
func (r *sharedExecutions) denial(ctx context.Context, d auth.Denier, fallback string) (reason string) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(r.log, ctx, "asking a subscription's gate why it refuses a subscriber", recovered)
			reason = fallback
		}
	}()
	return d.Denial()
}

// rootField is a subscription's one root field, fragments at the root
// looked into (validation has made sure there is one).
func rootField(rc *graphql.OperationContext) (graphql.CollectedField, bool) {
	fields := graphql.CollectFields(rc, rc.Operation.SelectionSet, []string{"Subscription"})
	if len(fields) != 1 {
		return graphql.CollectedField{}, false
	}
	return fields[0], true
}

// privateKey returns a key no other subscription has. Its hash input
// starts with a byte keyOf's never does.
func (r *sharedExecutions) privateKey() executionKey {
	r.mu.Lock()
	r.privates++
	n := r.privates
	r.mu.Unlock()
	return sha256.Sum256(fmt.Appendf(nil, "\x01private execution %d", n))
}

// cursorUse is how an operation passes the resume argument.
type cursorUse struct {
	given    bool   // a non-null cursor
	variable string // the variable that carries it, if any
}

// findCursor looks for the resume argument on the operation's root
// fields, those in fragments at the root too.
func findCursor(rc *graphql.OperationContext, argument string) cursorUse {
	var use cursorUse
	if argument != "" {
		use.find(rc, rc.Operation.SelectionSet, argument)
	}
	return use
}

func (use *cursorUse) find(rc *graphql.OperationContext, set ast.SelectionSet, argument string) {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.InlineFragment:
			use.find(rc, sel.SelectionSet, argument)
		case *ast.FragmentSpread:
			if f := rc.Doc.Fragments.ForName(sel.Name); f != nil { // validation refuses cycles
				use.find(rc, f.SelectionSet, argument)
			}
		case *ast.Field:
			arg := sel.Arguments.ForName(argument)
			if arg == nil {
				continue
			}
			if arg.Value.Kind == ast.Variable {
				use.variable = arg.Value.Raw
			}
			if v, err := arg.Value.Value(rc.Variables); err == nil && v != nil {
				use.given = true
			}
		}
	}
}

// usedElsewhere reports whether the operation passes variable anywhere but
// as its root fields' resume argument: to a nested field's argument, or a
// directive's. Its live form, with the variable null, would read those
// with null too: the subscriber would get another operation's results
// than its own once the replay hands over.
func usedElsewhere(rc *graphql.OperationContext, variable, argument string) bool {
	seen := map[string]bool{}
	var inValue func(v *ast.Value) bool
	inValue = func(v *ast.Value) bool {
		if v == nil {
			return false
		}
		if v.Kind == ast.Variable {
			return v.Raw == variable
		}
		for _, c := range v.Children {
			if inValue(c.Value) {
				return true
			}
		}
		return false
	}
	inDirectives := func(ds ast.DirectiveList) bool {
		for _, d := range ds {
			for _, a := range d.Arguments {
				if inValue(a.Value) {
					return true
				}
			}
		}
		return false
	}
	var inSet func(set ast.SelectionSet, root bool) bool
	inSet = func(set ast.SelectionSet, root bool) bool {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				for _, a := range sel.Arguments {
					if !(root && a.Name == argument) && inValue(a.Value) {
						return true
					}
				}
				if inDirectives(sel.Directives) || inSet(sel.SelectionSet, false) {
					return true
				}
			case *ast.InlineFragment:
				if inDirectives(sel.Directives) || inSet(sel.SelectionSet, root) {
					return true
				}
			case *ast.FragmentSpread:
				if inDirectives(sel.Directives) {
					return true
				}
				key := fmt.Sprint(sel.Name, root)
				if f := rc.Doc.Fragments.ForName(sel.Name); f != nil && !seen[key] {
					seen[key] = true
					if inDirectives(f.Directives) || inSet(f.SelectionSet, root) {
						return true
					}
				}
			}
		}
		return false
	}
	return inDirectives(rc.Operation.Directives) || inSet(rc.Operation.SelectionSet, true)
}

// liveForm prepares the operation again with the cursor variable null:
// the live subscription a resumed one continues as. Null, not left out: a
// variable left out takes its default, which may be a cursor, and the
// live form would resume, shared with others as if it did not. The
// document comes from the query cache. Nil if it does not prepare (then
// the subscriber keeps a private execution).
func liveForm(ctx context.Context, exec graphql.GraphExecutor, raw *graphql.RawParams, cursorVariable string) *graphql.OperationContext {
	params := *raw
	params.Variables = maps.Clone(raw.Variables)
	if params.Variables == nil {
		params.Variables = map[string]any{}
	}
	params.Variables[cursorVariable] = nil
	live, errs := exec.CreateOperationContext(ctx, &params)
	if errs != nil {
		return nil
	}
	return live
}

// prepareLive is liveForm, on the subscriber's goroutine (a
// socket's among them), where nothing would recover a panic of the
// executor's while it prepares the live form (an operation parameter or
// context mutator's, the schema's complexity function's) and the process
// would end. Nothing has joined yet: a panic is logged and taken as a
// live form that does not prepare, and the subscriber keeps the private
// execution its own form, prepared already, runs.
func (r *sharedExecutions) prepareLive(ctx context.Context, exec graphql.GraphExecutor, raw *graphql.RawParams,
	cursorVariable string) (live *graphql.OperationContext) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(r.log, ctx, "preparing a resumed subscription's live form", recovered)
			live = nil
		}
	}()
	return liveForm(ctx, exec, raw, cursorVariable)
}

// handoff carries a resumed subscriber from its private replay to the
// shared live execution. Results of both carry their stream position. The
// replay's results are written until it reaches the position of the first
// live result held back meanwhile; from then on the held and later live
// results are written, skipping every position the replay already wrote
// (the shared execution may lag behind the replay), and the replay is
// retired. Both streams are complete and ordered from where they start, so
// the subscriber sees neither a gap nor a duplicate.
//
// The held results are handed over at the subscriber's pace, as the replay
// was (catchUp): written all at once, the live results that arrived during
// a long, paced replay overflowed the queue though the live stream never
// outran the client. Until the hand-over ends, live results keep being
// held behind them, so one goroutine at a time writes op's results, in
// order.
type handoff struct {
	// limit is the held results beyond which the subscriber is a slow
	// consumer (--ws-queue's messages). A count, not bytes: the queue's
	// bytes are what a client may have unread, but results are held while
	// the whole backlog is replayed, and a bound of the queue's bytes
	// closed a client during a long replay under a modest live stream.
	// Held results cost little: they are the shared execution's payloads.
	limit   int
	private *execution // the replay; set at join

	mu         sync.Mutex
	live       bool      // switched to the shared execution
	catchingUp bool      // the replay reached the held results: its goroutine writes them (catchUp)
	failed     bool      // a result without data ended one of the two: nothing follows it
	last       streamPos // position of the last replayed result written
	held       []*payload
}

// streamPos is where a result lies in its stream: its position, within
// the generation of its source (eventmeta.Meta.Generation). A source that
// goes back to an earlier position after re-reading the log (chat's
// replaceLocked) goes on in a later generation: its results there are
// new, not ones the replay wrote, even at positions it wrote.
type streamPos struct{ gen, pos uint64 }

// before reports whether a lies before b.
func (a streamPos) before(b streamPos) bool {
	return a.gen < b.gen || a.gen == b.gen && a.pos < b.pos
}

func later(a, b streamPos) streamPos {
	if a.before(b) {
		return b
	}
	return a
}

// at is where p lies in its stream.
func (p *payload) at() streamPos { return streamPos{p.gen, p.pos} }

// deliver routes one result of execution e to op.
func (r *sharedExecutions) deliver(e *execution, op *operation, p *payload) {
	if op.awaitingState.Load() {
		if !p.state && !p.failed {
			return
		}
		op.awaitingState.Store(false)
	}
	h := op.handoff
	if h == nil {
		op.sub.deliver(op, p)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failed {
		return // the subscription ends with the error written
	}
	if e.replay && h.live {
		// Retired: the shared execution serves op, and a result the
		// replay still made, failed included (a panic as it was
		// cancelled), is not op's; the replay's end ends nothing (run).
		return
	}
	if p.failed {
		// A resolver that failed (the room does not exist) fails in both
		// executions: its error is written once, and the subscription
		// ends as the execution that failed first ends.
		h.failed = true
		op.sub.deliver(op, p)
		return
	}
	switch {
	case e.replay && h.catchingUp:
		// About to be retired: the held and live results follow.
	case e.replay:
		op.sub.deliver(op, p)
		h.last = later(h.last, p.at())
		if len(h.held) > 0 && !p.at().before(h.held[0].at()) {
			// The replay's goroutine writes the held results once it
			// has let go of e's lock (catchUp), each when there is room.
			h.catchingUp = true
		}
	case p.pos == 0:
		// A live result without a position (a schema whose events carry
		// none) cannot be placed against the replay's: the replay, which
		// goes on live, serves the subscriber for good. Written too, it
		// came twice.
	case h.live:
		// The live stream may lag behind what the replay wrote.
		if h.last.before(p.at()) {
			op.sub.deliver(op, p)
		}
	case len(h.held) >= h.limit && h.catchingUp && !h.last.before(h.held[0].at()):
		// The replay has reached the held results: those it wrote take no
		// room (catchUp, about to run on its goroutine, drops them; once it
		// has, none is left at or before h.last).
		for len(h.held) > 0 && !h.last.before(h.held[0].at()) {
			h.held[0] = nil
			h.held = h.held[1:]
		}
		h.held = append(h.held, p)
	case len(h.held) >= h.limit && h.last == streamPos{}:
		// The replay has written nothing yet: it is not behind its
		// client, and it writes every result after the cursor itself. The
		// live results held so far may all lie at or before the cursor (a
		// replica behind it applies those as it reaches it), and none is
		// needed: the oldest goes, and the replay hands over at a later one.
		h.held[0] = nil
		h.held = append(h.held[1:], p)
	case len(h.held) >= h.limit:
		op.sub.tooSlow(op, "slow consumer: the replay fell behind the live stream; reconnect and resume")
	default:
		h.held = append(h.held, p)
		if !h.catchingUp && !h.last.before(p.at()) {
			// The replay has written p already, and so everything held
			// (p is the first: a held result the replay reached would
			// have started the catch-up): nothing is left to write.
			h.goLive()
		}
	}
}

// catchUp writes, for e, a replay that has reached the results its handoff
// holds, those results the replay has not covered, one at a time, each
// once the subscriber has room for it (subscriber.awaitRoom), as the
// replay's own were (paceReplay); live results arriving meanwhile are held
// behind them. Once none is left, the shared execution takes over
// (goLive). It runs on the replay's goroutine, under no execution's lock,
// taking h.mu only to look and to write one result; it stops, writing
// nothing more, when ctx, the replay's, ends (op left, the registry
// closed) or a failed result ended the subscription.
func (r *sharedExecutions) catchUp(e *execution, ctx context.Context) {
	e.mu.RLock()
	var op *operation
	if len(e.members) > 0 {
		op = e.members[0]
	}
	e.mu.RUnlock()
	if op == nil || op.handoff == nil {
		return
	}
	h := op.handoff
	for {
		h.mu.Lock()
		if !h.catchingUp || h.live || h.failed || ctx.Err() != nil {
			h.mu.Unlock()
			return
		}
		for len(h.held) > 0 && !h.last.before(h.held[0].at()) {
			h.held[0] = nil
			h.held = h.held[1:] // the replay wrote it
		}
		if len(h.held) == 0 {
			h.goLive()
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		// Only this goroutine takes from held, and live results are
		// appended behind: held[0] is still the one to write next.
		op.sub.awaitRoom(ctx)
		h.mu.Lock()
		if !h.failed && ctx.Err() == nil {
			p := h.held[0]
			h.held[0] = nil
			h.held = h.held[1:]
			op.sub.deliver(op, p)
		}
		h.mu.Unlock()
	}
}

// caughtUp is told by the replay's resolver, as it starts, that it has
// nothing to replay: the subscriber has everything up to at. The live
// results held at or before it are dropped, and with none left the shared
// execution takes over at once (otherwise the replay goes on until it
// reaches the first held one, as it would have). Without it, a resume
// with nothing to replay kept its replay (an execution and a room
// watcher of its own) until the room's next event, in a quiet room for
// good.
func (h *handoff) caughtUp(at streamPos) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.live || h.failed || h.catchingUp || h.last != (streamPos{}) {
		return
	}
	h.last = at
	for len(h.held) > 0 && !at.before(h.held[0].at()) {
		h.held[0] = nil
		h.held = h.held[1:]
	}
	if len(h.held) == 0 {
		h.goLive()
	}
}

// goLive switches op to the shared execution and retires the replay; what
// is still held, the replay has written. It never takes the registry
// lock: callers hold h.mu, and on the live side an execution's lock.
func (h *handoff) goLive() {
	h.live = true
	h.catchingUp = false
	h.held = nil
	h.private.retired.Store(true)
	h.private.cancel()
}

// leave removes op from its execution; the last member leaving stops it.
func (r *sharedExecutions) leave(op *operation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h := op.handoff; h != nil && h.private != nil && !h.private.ended {
		h.private.ended = true
		if r.byKey[h.private.key] == h.private {
			delete(r.byKey, h.private.key)
		}
		h.private.cancel()
	}
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
	// After op is no longer a member: attach's admission of the members
	// that joined while the resolver ran (under e.mu) may have just
	// counted it. Last: a panic of Presence.Leave's, which goes on to
	// leave's caller, skips nothing of the registry's (an execution left
	// with no member stayed registered, its resolver running).
	r.presence.leave(op)
}

// run drives the subscription whose resolver join has called: per event one
// selection-set execution and one encoding, whose bytes every member's
// socket writes with only its id around them.
func (r *sharedExecutions) run(e *execution, slot *eventSlot, responses graphql.ResponseHandler, ctx context.Context) {
	defer r.stopped()
	defer e.cancel()
	r.metrics.executions.Inc()
	defer r.metrics.executions.Dec()

	r.deliverEvents(e, slot, responses, ctx)

	r.mu.Lock()
	endedByLeave := e.ended || e.retired.Load()
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
		if !e.replay {
			r.leavePresence(ctx, op)
		}
		op.sub.streamEnded(op)
	}
}

// deliverEvents delivers e's results to its members until it has no more,
// it is stopped, or a result fails. It calls one thing of another package
// per delivery, outside next: a gated execution's auth.Gate.Access. A
// panic there (or anywhere here) would end the replica's process, nothing
// recovering on this goroutine; it ends the execution instead, every
// member given the internal error a panicking event gets (see next), and
// is logged. The recover is deferred once per execution; per event, only
// locked, which says whether e.mu is to be released, is set and cleared.
func (r *sharedExecutions) deliverEvents(e *execution, slot *eventSlot, responses graphql.ResponseHandler, ctx context.Context) {
	locked := false
	defer func() {
		recovered := recover()
		if recovered == nil {
			return
		}
		if locked {
			e.mu.RUnlock()
		}
		logRecovered(r.log, ctx, "delivering a subscription's event", recovered)
		// Failed: it reaches a member awaiting its state, and a resumed
		// one's handoff ends with it (see deliver).
		p := &payload{bytes: encodeResponse(&graphql.Response{Errors: gqlerror.List{internalError()}}), failed: true}
		e.mu.RLock()
		for _, op := range e.members {
			r.deliver(e, op, p)
		}
		e.mu.RUnlock()
	}()
	for first := true; ; first = false {
		resp, panicked := r.next(responses, ctx)
		if resp == nil {
			return
		}
		// A panicked result is failed wherever it comes: it ends the
		// execution, so it must reach a member awaiting its state and end a
		// resumed one's handoff, as deliverEvents' own recover's does.
		p := &payload{bytes: encodeResponse(resp), appended: slot.meta.Appended, pos: slot.meta.Position, gen: slot.meta.Generation, cursor: slot.meta.Cursor,
			failed: panicked || first && len(resp.Errors) > 0 && noData(resp.Data) || slot.meta.End != nil, state: slot.meta.State}
		if e.replay {
			// A resumed subscriber's backlog: its age in the log is not a
			// delivery's latency, and one reconnect after an outage would
			// fill the latency histogram's top buckets (metrics.delivered).
			p.appended = time.Time{}
		}
		slot.meta = eventmeta.Meta{}
		if e.replay && !r.paceReplay(e, ctx) {
			return // stopped while it waited: left, retired or closed, which end it
		}
		var denied []*operation
		e.mu.RLock()
		locked = true
		if e.gate == nil {
			r.helpers.deliverAll(r, e, p)
		} else {
			for _, op := range e.members {
				deliver, keep := e.allows(op, p.pos)
				switch {
				case deliver:
					r.deliver(e, op, p)
				case !keep:
					denied = append(denied, op)
				}
			}
		}
		locked = false
		e.mu.RUnlock()
		for _, op := range denied {
			op.sub.denied(op, forbiddenError())
		}
		if e.replay {
			r.catchUp(e, ctx) // if this result reached the held live ones
		}
		if panicked {
			return // the execution's state is unknown: it ends, with the error sent
		}
	}
}

// paceReplay waits, before a resumed subscriber's replay delivers its
// next result, until the subscriber's transport has room for it
// (subscriber.awaitRoom), or until ctx, the replay's, ends: when the
// subscriber leaves, the shared execution takes over (handoff.goLive) or
// the registry closes, each of which marks the replay ended or retired
// first. It reports false once ctx has ended: the result is not delivered.
// Unpaced, a replay of thousands of events is executed faster than any
// client reads it and fills the queue, and the socket is closed as a slow
// consumer though nothing live is happening, on every reconnect again.
//
// The replay is the execution's one member, so waiting holds up nobody
// else; it waits under no lock (not e.mu, which leave, recheck and the
// handoff's live side take). Live results that arrive meanwhile are held
// by the handoff, up to its limit, and handed over at the same pace
// (catchUp): a live stream that outruns the socket still closes it as too
// slow. Shared executions never wait.
func (r *sharedExecutions) paceReplay(e *execution, ctx context.Context) bool {
	if e.retired.Load() {
		return true // its results are dropped (handoff.deliver)
	}
	e.mu.RLock()
	var op *operation
	if len(e.members) > 0 {
		op = e.members[0]
	}
	e.mu.RUnlock()
	if op != nil {
		op.sub.awaitRoom(ctx)
	}
	return ctx.Err() == nil
}

// next is the execution's next result. A panic while it is made (see
// execute) ends the execution with an internal error for its members
// rather than the replica's process: it is logged, and returned as the
// last result.
func (r *sharedExecutions) next(responses graphql.ResponseHandler, ctx context.Context) (resp *graphql.Response, panicked bool) {
	return execute(r.log, "executing a subscription's event", responses, ctx)
}

// execute returns responses(ctx), a result of an execution the server runs
// on a goroutine of its own (a subscription's events, a query or mutation
// sent on a socket or a single-connection stream). gqlgen recovers a
// panic in a resolver, but not one while it marshals the result (its Exec
// calls MarshalGQL after every field's recover has returned), and on such
// a goroutine nothing else does: net/http's recover covers only its
// handlers, so the panic would end the replica's process, every socket
// and stream with it. The panic is logged, as logPanic logs a resolver's,
// and the result is the internal error a resolver's panic gets, panicked
// set. A deferred recover costs nothing until it recovers.
func execute(log *slog.Logger, doing string, responses graphql.ResponseHandler, ctx context.Context) (resp *graphql.Response, panicked bool) {
	defer func() {
		if recovered := recover(); recovered != nil {
			logRecovered(log, ctx, doing, recovered)
			resp, panicked = &graphql.Response{Errors: gqlerror.List{internalError()}}, true
		}
	}()
	return responses(ctx), false
}

// executeOperation executes a query or mutation, prepared as rc, to its
// result (nil if there is none), under execute's recover: the executor's
// own dispatch (its operation interceptors) included.
func executeOperation(log *slog.Logger, ctx context.Context, exec graphql.GraphExecutor, rc *graphql.OperationContext) *graphql.Response {
	resp, _ := execute(log, "executing a query or mutation", func(ctx context.Context) *graphql.Response {
		responses, rctx := exec.DispatchOperation(ctx, rc)
		return responses(rctx)
	}, graphql.WithOperationContext(ctx, rc)) // the operation's name for the log
	return resp
}

// logRecovered logs a panic recovered while doing something on a
// goroutine the server started, with the stack it was raised on (the
// deferred function that recovered it runs on that stack).
func logRecovered(log *slog.Logger, ctx context.Context, doing string, recovered any) {
	attrs := []any{
		slog.String("panic", fmt.Sprint(recovered)),
		slog.String("stack", string(debug.Stack())),
	}
	if graphql.HasOperationContext(ctx) {
		rc := graphql.GetOperationContext(ctx)
		name := rc.OperationName // the one the client chose, as logPanic logs it
		if name == "" && rc.Operation != nil {
			name = rc.Operation.Name // a document's only operation, named in it
		}
		attrs = append(attrs, slog.String("operation", name))
	}
	log.ErrorContext(ctx, "server: recovered panic while "+doing, attrs...)
}

// noData reports whether a result's data is absent or null.
func noData(data json.RawMessage) bool {
	return len(data) == 0 || string(data) == "null"
}

// count is the number of running executions.
func (r *sharedExecutions) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byKey)
}

// stopped counts an execution's end (see close).
func (r *sharedExecutions) stopped() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running--
	if r.running == 0 && r.idle != nil {
		close(r.idle)
		r.idle = nil
	}
}

// close stops every execution and waits for them, bounded by ctx: once
// ctx has ended it waits at most grace more, and returns how many
// executions had not stopped (a resolver that does not heed its
// cancelled context is still running), so that the process's stop stays
// bounded.
func (r *sharedExecutions) close(ctx context.Context, grace time.Duration) (running int) {
	r.mu.Lock()
	r.closed = true
	for key, e := range r.byKey {
		e.ended = true
		e.cancel()
		delete(r.byKey, key)
	}
	var idle chan struct{}
	if r.running > 0 {
		if r.idle == nil {
			r.idle = make(chan struct{})
		}
		idle = r.idle
	}
	r.mu.Unlock()
	// A fan-out that starts after its helpers stopped is delivered by its
	// execution alone.
	defer r.helpers.close()
	if idle == nil {
		return 0
	}
	select {
	case <-idle:
		return 0
	case <-ctx.Done():
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-idle:
		return 0
	case <-timer.C:
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// eventSlot receives the metadata of the event being delivered from the
// response middleware, which sees the event's own context.
type eventSlot struct{ meta eventmeta.Meta }

type eventSlotKey struct{}

// eventMetadata is the AroundResponses middleware that puts each
// subscription event's cursor into extensions.cursor and hands its
// metadata to the shared execution that is delivering it.
func eventMetadata(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp == nil {
		return nil
	}
	meta, ok := eventmeta.MetaFrom(ctx)
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
