package server

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
)

// Limits bound what one client can make a replica do. A zero field
// disables that limit; cmd/herald sets a sane default for each.
type Limits struct {
	// MaxConnections bounds the WebSockets and HTTP event streams open on
	// this replica together; an upgrade or stream beyond it is answered with
	// HTTP 503 (before upgrading), so the load balancer or client tries
	// another replica.
	MaxConnections int
	// MaxOperations bounds the operations (subscriptions, and queries or
	// mutations in flight) of one socket.
	MaxOperations int
	// SubscribeRate is how many operations one socket may start per second,
	// with bursts of up to SubscribeBurst (default: SubscribeRate rounded up).
	SubscribeRate  float64
	SubscribeBurst int
	// MutationRate is how many mutations one identity may run per second
	// on this replica, over HTTP and WebSocket together, with bursts of up
	// to MutationBurst (default: MutationRate rounded up). Each root field
	// of a mutation operation is a mutation; an operation of more than
	// MutationBurst is refused (LIMIT_EXCEEDED). A domain may let anonymous
	// clients mutate: their mutations count by the address they come from
	// (see mutationKey).
	MutationRate  float64
	MutationBurst int
	// MaxDepth bounds how deeply an operation's selections nest.
	MaxDepth int
	// MaxComplexity bounds an operation's complexity: each field 1 plus
	// its children, unless the schema's complexity function for the field
	// (gqlgen's ComplexityRoot) says otherwise.
	MaxComplexity int
	// MaxVariablesBytes bounds the JSON text of an operation's variables.
	MaxVariablesBytes int
}

// DefaultLimits are the limits cmd/herald applies unless told otherwise:
// a zero Limits is no limit at all. MaxConnections is left zero, as it
// depends on the process's open-file limit.
func DefaultLimits() Limits {
	return Limits{
		MaxOperations:     100,
		SubscribeRate:     20,
		SubscribeBurst:    50,
		MutationRate:      20,
		MutationBurst:     40,
		MaxDepth:          15,
		MaxComplexity:     10000,
		MaxVariablesBytes: 64 << 10,
	}
}

func (l Limits) validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"MaxConnections", float64(l.MaxConnections)}, {"MaxOperations", float64(l.MaxOperations)},
		{"SubscribeRate", l.SubscribeRate}, {"SubscribeBurst", float64(l.SubscribeBurst)},
		{"MutationRate", l.MutationRate}, {"MutationBurst", float64(l.MutationBurst)},
		{"MaxDepth", float64(l.MaxDepth)}, {"MaxComplexity", float64(l.MaxComplexity)},
		{"MaxVariablesBytes", float64(l.MaxVariablesBytes)},
	} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("Options.Limits.%s is %v, must be zero (no limit) or positive", f.name, f.v)
		}
	}
	return nil
}

// burstOf is the bucket size for a rate: burst if set, else the rate
// rounded up (at least 1).
func burstOf(rate float64, burst int) float64 {
	if burst > 0 {
		return float64(burst)
	}
	return max(1, math.Ceil(rate))
}

// Error codes of the limits, as extensions.code.
const (
	codeRateLimited   = "RATE_LIMITED"
	codeLimitExceeded = "LIMIT_EXCEEDED"
	codeDepthExceeded = "DEPTH_LIMIT_EXCEEDED"
	// The code gqlgen's own complexity extension uses, kept for clients
	// that know it.
	codeComplexityExceeded = "COMPLEXITY_LIMIT_EXCEEDED"
)

// rateLimitedError tells the client how long to wait: extensions.retryAfter
// in seconds (fractional), as HTTP's Retry-After header does.
func rateLimitedError(what string, wait time.Duration) *gqlerror.Error {
	secs := math.Ceil(wait.Seconds()*1000) / 1000
	return &gqlerror.Error{
		// The seconds as retryAfter has them: %g would round them down
		// ("12.3s" for 12.345) or write 1,234.5 as "1.23e+03s".
		Message:    what + "; retry in " + strconv.FormatFloat(secs, 'f', -1, 64) + "s",
		Extensions: map[string]any{"code": codeRateLimited, "retryAfter": secs},
	}
}

func limitError(format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{Message: fmt.Sprintf(format, args...), Extensions: map[string]any{"code": codeLimitExceeded}}
}

// tokenBucket is a rate limit's state: tokens refill at rate per second up
// to burst; each event takes one. Its zero value is a full bucket. Not safe
// for concurrent use.
type tokenBucket struct {
	tokens float64 // tokens spent below the burst: 0 = full
	last   int64   // unix nanoseconds of the last update
}

// take spends a token if there is one; otherwise it reports how long until
// there will be.
func (b *tokenBucket) take(now time.Time, rate, burst float64) (ok bool, wait time.Duration) {
	return b.takeN(now, rate, burst, 1)
}

// takeN spends count tokens if there are that many (count must not exceed
// burst); otherwise it reports how long until there will be.
func (b *tokenBucket) takeN(now time.Time, rate, burst, count float64) (ok bool, wait time.Duration) {
	n := now.UnixNano()
	if b.last != 0 {
		// The wall clock may step back (NTP, a VM resumed): time that did
		// not pass refills nothing, and spends nothing either.
		b.tokens = max(0, b.tokens-float64(max(0, n-b.last))/1e9*rate)
	}
	b.last = n
	if b.tokens+count <= burst {
		b.tokens += count
		return true, 0
	}
	return false, time.Duration((b.tokens + count - burst) / rate * 1e9)
}

// giveN gives back count tokens spent on something that did not happen.
func (b *tokenBucket) giveN(count float64) {
	b.tokens = max(0, b.tokens-count)
}

// full reports whether the bucket has refilled completely by now, so that
// forgetting it changes nothing.
func (b *tokenBucket) full(now time.Time, rate float64) bool {
	return b.tokens-float64(max(0, now.UnixNano()-b.last))/1e9*rate <= 0
}

// identityLimiter is a rate limit per identity, and per client address
// for anonymous clients. Buckets that have refilled are forgotten now and
// then, so memory follows the identities and addresses active in the last
// burst/rate seconds, not every one ever seen.
type identityLimiter struct {
	rate, burst float64
	sweepEvery  time.Duration

	mu        sync.Mutex
	buckets   map[limitKey]*tokenBucket
	lastSweep time.Time
}

// limitKey is whose allowance a request spends: an identity's, or an
// anonymous client's address's. The two never share a bucket, whatever a
// user ID spells.
type limitKey struct {
	anonymous bool
	id        string // the user ID; for anonymous clients, addressKey's
}

func newIdentityLimiter(rate float64, burst int) *identityLimiter {
	if rate <= 0 {
		return nil
	}
	return &identityLimiter{
		rate: rate, burst: burstOf(rate, burst),
		sweepEvery: time.Minute,
		buckets:    make(map[limitKey]*tokenBucket),
	}
}

// allow spends one of user's tokens; nil limiters allow everything.
func (l *identityLimiter) allow(user string, now time.Time) (bool, time.Duration) {
	return l.allowN(limitKey{id: user}, now, 1)
}

// allowN spends n of key's tokens (n at most the burst).
func (l *identityLimiter) allowN(key limitKey, now time.Time, n int) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= l.sweepEvery {
		for k, b := range l.buckets {
			if b.full(now, l.rate) {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &tokenBucket{}
		l.buckets[key] = b
	}
	return b.takeN(now, l.rate, l.burst, float64(n))
}

// mutationsAllowed spends a token for each mutation opCtx runs (each root
// field: one request may alias many), or returns the error to refuse it
// with: RATE_LIMITED beyond the rate, LIMIT_EXCEEDED for more mutations
// than the burst, which no wait allows. The tokens are the identity's on
// ctx, or for an anonymous request those of remote, the address it came
// from (http.Request.RemoteAddr's form: see mutationKey).
func (l *identityLimiter) mutationsAllowed(ctx context.Context, opCtx *graphql.OperationContext, remote string) *gqlerror.Error {
	if l == nil || opCtx.Operation.Operation != ast.Mutation {
		return nil
	}
	key := mutationKey(ctx, remote)
	n := rootFields(opCtx.Operation.SelectionSet, opCtx.Doc.Fragments)
	if float64(n) > l.burst {
		if key.anonymous {
			return limitError("this operation runs %d mutations; anonymous clients of one address may run at most %.0f at once", n, l.burst)
		}
		return limitError("this operation runs %d mutations; one user may run at most %.0f at once", n, l.burst)
	}
	if allowed, wait := l.allowN(key, time.Now(), n); !allowed {
		if key.anonymous {
			return rateLimitedError("too many mutations by anonymous clients of this address", wait)
		}
		return rateLimitedError("too many mutations by this user", wait)
	}
	return nil
}

// giveBack returns the tokens mutationsAllowed spent for opCtx, which
// did not run after all (its stream was refused: the replica is full or
// draining). A client retrying such refusals would otherwise use up its
// allowance without a mutation running.
func (l *identityLimiter) giveBack(ctx context.Context, opCtx *graphql.OperationContext, remote string) {
	if l == nil || opCtx.Operation.Operation != ast.Mutation {
		return
	}
	key := mutationKey(ctx, remote)
	n := rootFields(opCtx.Operation.SelectionSet, opCtx.Doc.Fragments)
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.buckets[key]; b != nil {
		b.giveN(float64(n))
	}
}

// mutationKey is whose allowance a mutation spends: the identity on ctx,
// or, for an anonymous request, the address it came from (remote), so
// that the limit holds for a domain whose anonymous clients may mutate,
// and yet one anonymous client cannot spend the allowance of all the
// others, as one bucket for every anonymous client would let it.
//
// The address is the one the connection came from: behind a reverse proxy
// or load balancer every anonymous client has the proxy's address and
// shares its allowance. Forwarded headers (X-Forwarded-For, Forwarded)
// are not read: any client can write them, and the server has no list of
// proxies to believe.
func mutationKey(ctx context.Context, remote string) limitKey {
	if id, ok := auth.FromContext(ctx); ok {
		return limitKey{id: id.UserID}
	}
	return limitKey{anonymous: true, id: addressKey(remote)}
}

// addressKey is the part of a client's address (host:port, as
// http.Request.RemoteAddr has it) that names the client, as rate limits at
// gateways count it: the IP address without the port, which a client
// changes with every connection; an IPv4-mapped IPv6 address as IPv4; and
// of any other IPv6 address only its /64 prefix, which one host or one
// subscriber's network usually has to itself and can draw addresses from
// at will. An address that is not an IP's (a Unix socket's, or none, as a
// request relayed by a replica of an earlier version has: see
// relayClientAddrKey) is used as it is: all such clients share one
// allowance.
func addressKey(remote string) string {
	var ip netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		ip = ap.Addr()
	} else if ip, err = netip.ParseAddr(remote); err != nil {
		return remote
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		p, _ := ip.Prefix(64) // cannot fail: 64 bits of an IPv6 address
		return p.String()
	}
	return ip.String()
}

// rootFields counts the fields of a (validated) operation's root selection,
// through fragments, leaving out __typename: the mutations it runs.
func rootFields(set ast.SelectionSet, fragments ast.FragmentDefinitionList) int {
	n := 0
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			if s.Name != "__typename" {
				n++
			}
		case *ast.InlineFragment:
			n += rootFields(s.SelectionSet, fragments)
		case *ast.FragmentSpread:
			if f := fragments.ForName(s.Name); f != nil { // validation refuses cycles
				n += rootFields(f.SelectionSet, fragments)
			}
		}
	}
	return n
}

// size is how many identities and addresses are being tracked.
func (l *identityLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// depthLimit is a gqlgen extension that refuses operations whose
// selections nest more than max levels deep, before they run. Fragments
// count where they are spread; each fragment's depth is computed once, so a
// document that spreads fragments in fragments many times over costs time
// in its size, not in its expansion.
type depthLimit struct{ max int }

var (
	_ graphql.HandlerExtension        = depthLimit{}
	_ graphql.OperationContextMutator = depthLimit{}
)

func (depthLimit) ExtensionName() string                          { return "DepthLimit" }
func (depthLimit) Validate(schema graphql.ExecutableSchema) error { return nil }

func (d depthLimit) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	return d.check(rc.Operation, newDocIndex(rc.Doc))
}

// check refuses op if it nests deeper than the limit. The document need
// not have been validated: fragments it does not define count as nothing.
func (d depthLimit) check(op *ast.OperationDefinition, doc *docIndex) *gqlerror.Error {
	return d.checkSet("operation", op.SelectionSet, doc)
}

// checkSet refuses selections (of what: "operation", "fragment F") that
// nest deeper than the limit.
func (d depthLimit) checkSet(what string, set ast.SelectionSet, doc *docIndex) *gqlerror.Error {
	if depth := selectionDepth(set, doc); depth > d.max {
		return &gqlerror.Error{
			Message:    fmt.Sprintf("%s nests %d levels deep, more than the limit of %d", what, depth, d.max),
			Extensions: map[string]any{"code": codeDepthExceeded},
		}
	}
	return nil
}

// complexityLimit is a gqlgen extension that refuses operations whose
// complexity exceeds max: each field counts 1 plus the complexity of its
// selections, unless the schema's complexity function for the field
// (gqlgen's ComplexityRoot) says otherwise; Herald's graph counts a page's
// selections once for every item it may hold, so that nested pages
// (rooms, their messages, each message's room and its messages, …) cannot
// multiply a small document into millions of objects. gqlgen's
// FixedComplexityLimit expands every fragment spread, so a document of a
// few dozen fragments that each spread the next twice takes it
// exponential time; here each fragment's complexity is computed once.
// Spreading a fragment twice counts it twice (gqlgen would merge the
// fields), which errs on the side of refusing.
type complexityLimit struct {
	max int
	es  graphql.ExecutableSchema
}

var (
	_ graphql.HandlerExtension        = complexityLimit{}
	_ graphql.OperationContextMutator = complexityLimit{}
)

func (complexityLimit) ExtensionName() string                          { return "ComplexityLimit" }
func (complexityLimit) Validate(schema graphql.ExecutableSchema) error { return nil }

func (l complexityLimit) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	return l.check(ctx, rc.Operation, newDocIndex(rc.Doc), rc.Variables)
}

// check refuses op if its complexity is over the limit. doc need not have
// been validated: fields the schema does not have count 1 plus their
// selections, and fragments the document does not define count nothing.
func (l complexityLimit) check(ctx context.Context, op *ast.OperationDefinition, doc *docIndex, vars map[string]any) *gqlerror.Error {
	var root *ast.Definition
	if l.es != nil {
		switch schema := l.es.Schema(); op.Operation {
		case ast.Query:
			root = schema.Query
		case ast.Mutation:
			root = schema.Mutation
		case ast.Subscription:
			root = schema.Subscription
		}
	}
	return l.checkSet(ctx, "operation", op.SelectionSet, root, doc, vars)
}

// checkSet refuses selections (of what: "operation", "fragment F") on a
// value of type parent (nil: not known) whose complexity is over the
// limit.
func (l complexityLimit) checkSet(ctx context.Context, what string, set ast.SelectionSet, parent *ast.Definition,
	doc *docIndex, vars map[string]any) *gqlerror.Error {
	w := complexityWalk{ctx: ctx, es: l.es, doc: doc, vars: vars, limit: l.max}
	if l.es != nil {
		w.schema = l.es.Schema()
	}
	if c := w.set(set, parent); c > l.max {
		return &gqlerror.Error{
			Message:    fmt.Sprintf("%s has complexity %d or more, more than the limit of %d", what, c, l.max),
			Extensions: map[string]any{"code": codeComplexityExceeded},
		}
	}
	return nil
}

// maxRepeats bounds how often one selection set may select one response
// name, how many fragments it may spread, and how many it may reach
// through the fragments spread in those: gqlparser's validation
// (OverlappingFieldsCanBeMerged) compares every two fields of a response
// name and every two fragments spread side by side, through the fragments
// spread in them, so that 44 KB of one field takes seconds to validate,
// well within any complexity limit, and so did 50 fragments of 100 such
// fields each spread once, or a chain of a thousand fragments each
// spreading the next. Documents applications send repeat a name a few
// times at most (the same field from several fragments), and spread a few
// dozen fragments.
const maxRepeats = 100

// repeatsError refuses a document one of whose selection sets (in an
// operation or a fragment, read through its inline fragments and the
// fragments it spreads, and those they spread, each once) selects one
// response name more than maxRepeats times, spreads fragments more than
// maxRepeats times, or reaches more than maxRepeats fragments.
func repeatsError(doc *ast.QueryDocument) *gqlerror.Error {
	fragments := fragmentsByName(doc)
	// level is what one selection set selects itself, through its inline
	// fragments: how often each response name, and the fragments it
	// spreads, in order, repeated as often as they are.
	type level struct {
		names   map[string]int
		spreads []string
	}
	read := func(set ast.SelectionSet) level {
		l := level{names: map[string]int{}}
		var add func(set ast.SelectionSet)
		add = func(set ast.SelectionSet) {
			for _, sel := range set {
				switch s := sel.(type) {
				case *ast.Field:
					name := s.Alias
					if name == "" {
						name = s.Name
					}
					l.names[name]++
				case *ast.InlineFragment:
					add(s.SelectionSet)
				case *ast.FragmentSpread:
					l.spreads = append(l.spreads, s.Name)
				}
			}
		}
		add(set)
		return l
	}
	levels := map[string]level{} // of fragments, by name, read once
	fragmentLevel := func(name string) (level, bool) {
		if l, ok := levels[name]; ok {
			return l, true
		}
		f := fragments[name]
		if f == nil {
			return level{}, false
		}
		l := read(f.SelectionSet)
		levels[name] = l
		return l, true
	}
	repeated := func(name string) *gqlerror.Error {
		return &gqlerror.Error{
			Message:    fmt.Sprintf("a selection selects %q more than %d times, counting the fragments it spreads", clip(name), maxRepeats),
			Extensions: map[string]any{"code": codeComplexityExceeded},
		}
	}
	count := func(set ast.SelectionSet) *gqlerror.Error {
		own := read(set)
		if len(own.spreads) > maxRepeats {
			return &gqlerror.Error{
				Message:    fmt.Sprintf("a selection spreads more than %d fragments", maxRepeats),
				Extensions: map[string]any{"code": codeComplexityExceeded},
			}
		}
		for name, n := range own.names {
			if n > maxRepeats {
				return repeated(name)
			}
		}
		names := own.names // read afresh for this set: ours to add to
		reached := map[string]bool{}
		next := own.spreads
		for len(next) > 0 {
			name := next[len(next)-1]
			next = next[:len(next)-1]
			if reached[name] {
				continue
			}
			if reached[name] = true; len(reached) > maxRepeats {
				return &gqlerror.Error{
					Message:    fmt.Sprintf("a selection reaches more than %d fragments, counting those spread in the fragments it spreads", maxRepeats),
					Extensions: map[string]any{"code": codeComplexityExceeded},
				}
			}
			l, ok := fragmentLevel(name)
			if !ok {
				continue
			}
			for field, n := range l.names {
				if names[field] += n; names[field] > maxRepeats {
					return repeated(field)
				}
			}
			next = append(next, l.spreads...)
		}
		return nil
	}
	var walk func(set ast.SelectionSet) *gqlerror.Error
	walk = func(set ast.SelectionSet) *gqlerror.Error {
		if err := count(set); err != nil {
			return err
		}
		for _, sel := range set {
			var inner ast.SelectionSet
			switch s := sel.(type) {
			case *ast.Field:
				inner = s.SelectionSet
			case *ast.InlineFragment:
				inner = s.SelectionSet
			}
			if len(inner) > 0 {
				if err := walk(inner); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, op := range doc.Operations {
		if err := walk(op.SelectionSet); err != nil {
			return err
		}
	}
	for _, f := range doc.Fragments {
		if err := walk(f.SelectionSet); err != nil {
			return err
		}
	}
	return nil
}

// maxVisits bounds the fields and fragment spreads gqlparser's validation
// visits in a document: it walks each operation and each fragment
// definition, and in each every fragment that one reaches, once; so a
// fragment of a few thousand fields spread by thousands of small
// fragments is walked thousands of times, every visit of an unknown field
// making an error (a 17 KB document made 160,000 of them, 131 MB; one of
// 1 MiB, tens of gigabytes). A document applications send visits each of
// its fields a few times at most.
const maxVisits = 20000

// visitsError refuses a document whose validation would visit more than
// maxVisits fields and fragment spreads. It stops counting once over.
func visitsError(doc *ast.QueryDocument) *gqlerror.Error {
	fragments := fragmentsByName(doc)
	// content is what a selection set selects at every level, not
	// through the fragments it spreads: how many fields, and the
	// fragments spread.
	type content struct {
		fields  int
		spreads []string
	}
	read := func(set ast.SelectionSet) content {
		var c content
		var add func(set ast.SelectionSet)
		add = func(set ast.SelectionSet) {
			for _, sel := range set {
				switch s := sel.(type) {
				case *ast.Field:
					c.fields++
					add(s.SelectionSet)
				case *ast.InlineFragment:
					add(s.SelectionSet)
				case *ast.FragmentSpread:
					c.spreads = append(c.spreads, s.Name)
				}
			}
		}
		add(set)
		return c
	}
	contents := map[string]content{} // of fragments, by name, read once
	total := 0
	visit := func(c content) {
		reached := map[string]bool{}
		total += c.fields + len(c.spreads)
		next := c.spreads
		for len(next) > 0 && total <= maxVisits {
			name := next[len(next)-1]
			next = next[:len(next)-1]
			if reached[name] || fragments[name] == nil {
				continue
			}
			reached[name] = true
			fc, ok := contents[name]
			if !ok {
				fc = read(fragments[name].SelectionSet)
				contents[name] = fc
			}
			total += fc.fields + len(fc.spreads)
			next = append(next, fc.spreads...)
		}
	}
	for _, op := range doc.Operations {
		if visit(read(op.SelectionSet)); total > maxVisits {
			break
		}
	}
	for _, f := range doc.Fragments {
		if total > maxVisits {
			break
		}
		fc, ok := contents[f.Name]
		if !ok || fragments[f.Name] != f {
			fc = read(f.SelectionSet)
		}
		visit(fc)
	}
	if total > maxVisits {
		return &gqlerror.Error{
			Message: fmt.Sprintf("the document selects more than %d fields and fragment spreads, counting each fragment again in every operation and fragment that spreads it",
				maxVisits),
			Extensions: map[string]any{"code": codeComplexityExceeded},
		}
	}
	return nil
}

// complexityWalk computes the complexity of selections, saturating just
// above limit so that it cannot overflow.
type complexityWalk struct {
	ctx    context.Context
	es     graphql.ExecutableSchema // nil: every field is 1 plus its selections
	schema *ast.Schema
	doc    *docIndex // its complexities: by fragment name, for this limit and these variables
	vars   map[string]any
	limit  int
}

// set is the complexity of set, selected on a value of type parent (nil
// when not known).
func (w *complexityWalk) set(set ast.SelectionSet, parent *ast.Definition) int {
	total := 0
	for _, sel := range set {
		var c int
		switch s := sel.(type) {
		case *ast.Field:
			c = w.field(s, parent)
		case *ast.InlineFragment:
			c = w.set(s.SelectionSet, w.typeNamed(s.TypeCondition, parent))
		case *ast.FragmentSpread:
			known, ok := w.doc.complexities[s.Name]
			if !ok {
				w.doc.complexities[s.Name] = 0 // a cycle (validation forbids them) ends here
				if def := w.doc.fragments[s.Name]; def != nil {
					known = w.set(def.SelectionSet, w.typeNamed(def.TypeCondition, nil))
				}
				w.doc.complexities[s.Name] = known
			}
			c = known
		}
		if total = min(total+c, w.limit+1); total > w.limit {
			return total
		}
	}
	return total
}

func (w *complexityWalk) field(f *ast.Field, parent *ast.Definition) int {
	var def *ast.FieldDefinition
	var child *ast.Definition
	if parent != nil {
		if def = parent.Fields.ForName(f.Name); def != nil {
			child = w.schema.Types[def.Type.Name()]
		}
	}
	children := w.set(f.SelectionSet, child)
	if def != nil {
		if c, ok := w.es.Complexity(w.ctx, parent.Name, f.Name, children, w.arguments(f, def)); ok {
			return min(max(c, 1), w.limit+1)
		}
	}
	return 1 + children
}

// arguments are f's arguments as the schema's complexity functions take
// them: those given (from the variables where the document says so) and
// the defaults of the others. One that has no value yet (a variable not
// sent) is left out.
func (w *complexityWalk) arguments(f *ast.Field, def *ast.FieldDefinition) map[string]any {
	args := map[string]any{}
	for _, a := range def.Arguments {
		v := a.DefaultValue
		if given := f.Arguments.ForName(a.Name); given != nil {
			v = given.Value
		}
		if v == nil {
			continue
		}
		if val, err := v.Value(w.vars); err == nil {
			args[a.Name] = val
		}
	}
	return args
}

// typeNamed is the schema's type of a type condition, or parent when
// there is none.
func (w *complexityWalk) typeNamed(condition string, parent *ast.Definition) *ast.Definition {
	if condition == "" || w.schema == nil {
		return parent
	}
	return w.schema.Types[condition]
}

// selectionDepth is how many levels of fields set nests: a field with no
// selections is 1. A fragment spread within itself (which validation
// refuses) counts as nothing there.
func selectionDepth(set ast.SelectionSet, doc *docIndex) int {
	deepest := 0
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			d = 1 + selectionDepth(s.SelectionSet, doc)
		case *ast.InlineFragment:
			d = selectionDepth(s.SelectionSet, doc)
		case *ast.FragmentSpread:
			known, ok := doc.depths[s.Name]
			if !ok {
				doc.depths[s.Name] = 0 // a cycle (validation forbids them) ends here
				if def := doc.fragments[s.Name]; def != nil {
					known = selectionDepth(def.SelectionSet, doc)
				}
				doc.depths[s.Name] = known
			}
			d = known
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// docIndex is what the depth and complexity limits look up in a document
// again and again: its fragments by name, and each fragment's depth and
// complexity once computed, shared by every operation and fragment of the
// document they check. Computed afresh for each, and looked up by
// FragmentDefinitionList.ForName, a linear scan, a chain of fragments each
// spreading the next took time cubic in their count: 1,000 of them, 43 KB,
// took seconds. Its complexities are those of one limit and one set of
// variables.
type docIndex struct {
	fragments    map[string]*ast.FragmentDefinition
	depths       map[string]int
	complexities map[string]int
}

func newDocIndex(doc *ast.QueryDocument) *docIndex {
	return &docIndex{fragments: fragmentsByName(doc), depths: map[string]int{}, complexities: map[string]int{}}
}

// fragmentsByName maps each fragment name of doc to its first definition,
// as FragmentDefinitionList.ForName has it, without ForName's linear scan.
func fragmentsByName(doc *ast.QueryDocument) map[string]*ast.FragmentDefinition {
	fragments := make(map[string]*ast.FragmentDefinition, len(doc.Fragments))
	for _, f := range doc.Fragments {
		if _, dup := fragments[f.Name]; !dup {
			fragments[f.Name] = f
		}
	}
	return fragments
}

// variablesOver reports whether vars, written as compact JSON, would take
// more than limit bytes (0: no limit), and the size it counted up to. It
// walks the decoded value rather than keeping the request's text, and
// stops counting once over the limit.
func variablesOver(vars map[string]any, limit int) (size int, over bool) {
	if limit <= 0 || vars == nil {
		return 0, false
	}
	size = jsonSize(vars, limit)
	return size, size > limit
}

// jsonSize is the length of v as compact JSON (strings counted without
// escapes), or some value above limit once it exceeds it.
func jsonSize(v any, limit int) int {
	switch x := v.(type) {
	case nil:
		return 4
	case bool:
		if x {
			return 4
		}
		return 5
	case string:
		return len(x) + 2
	case json.Number:
		return len(x)
	case float64, int, int64:
		return len(fmt.Sprint(x))
	case []any:
		n := 2 + max(len(x)-1, 0)
		for _, e := range x {
			if n += jsonSize(e, limit-n); n > limit {
				return n
			}
		}
		return n
	case map[string]any:
		n := 2 + max(len(x)-1, 0)
		for k, e := range x {
			n += len(k) + 3
			if n += jsonSize(e, limit-n); n > limit {
				return n
			}
		}
		return n
	}
	return len(fmt.Sprint(v))
}
