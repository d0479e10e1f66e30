package server

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// TestSingleStreamSubscribeRate: Limits.SubscribeRate applies to the
// operations started on a single-connection-mode stream as to a socket's:
// beyond the burst, the operation ends on the stream with RATE_LIMITED and
// a retryAfter, then complete; the stream goes on.
func TestSingleStreamSubscribeRate(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.SubscribeRate = 0.01 }) // burst 1, a token every 100 s
	token := r.reserve("ann")
	c := r.openSingle(token, "ann")
	r.mustOperate(token, "ann", "first", "{ __typename }", nil)
	if ev := c.expect("next", "first"); string(ev.payload) != `{"data":{"__typename":"Query"}}` {
		t.Fatalf("first operation: %s", ev.payload)
	}
	c.expect("complete", "first")
	r.mustOperate(token, "ann", "second", "{ __typename }", nil)
	ev := c.expect("next", "second")
	var resp struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(ev.payload, &resp); err != nil || len(resp.Errors) != 1 ||
		resp.Errors[0].Extensions["code"] != codeRateLimited || resp.Errors[0].Extensions["retryAfter"] == nil {
		t.Fatalf("an operation beyond SubscribeRate's burst on a single-connection stream got %s; want RATE_LIMITED with retryAfter", ev.payload)
	}
	c.expect("complete", "second")
}

// TestBurstDefaultsToRateRoundedUp: without a burst, a rate's bucket
// holds the rate rounded up, and at least one.
func TestBurstDefaultsToRateRoundedUp(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
		want  float64
	}{{2.5, 0, 3}, {0.1, 0, 1}, {3, 0, 3}, {2.5, 7, 7}} {
		if got := burstOf(tc.rate, tc.burst); got != tc.want {
			t.Errorf("burstOf(%v, %d) = %v, want %v (a burst if set, else the rate rounded up, at least 1)", tc.rate, tc.burst, got, tc.want)
		}
	}
}

// TestLimiterSweepKeepsSpentBuckets: the sweep forgets only buckets that
// have refilled: one still short of tokens is kept, or a client refused
// now would be allowed again right after a sweep.
func TestLimiterSweepKeepsSpentBuckets(t *testing.T) {
	l := newIdentityLimiter(0.01, 1) // a token every 100 s
	now := time.Now()
	if ok, _ := l.allow("ann", now); !ok {
		t.Fatal("first mutation refused")
	}
	later := now.Add(61 * time.Second) // past a sweep, short of a refill
	if ok, _ := l.allow("ann", later); ok {
		t.Fatal("a sweep forgot a bucket that had not refilled: the user's next mutation was allowed 61 s after its last at a rate of one per 100 s")
	}
	if n := l.size(); n != 1 {
		t.Fatalf("%d identities tracked, want 1", n)
	}
}

// TestRetryAfterRoundsUp: a RATE_LIMITED error's retryAfter is the wait
// rounded up to the millisecond, never down: a client retrying when told
// would otherwise come back a moment too early and be refused again.
func TestRetryAfterRoundsUp(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want float64
	}{{1500*time.Microsecond + 1, 0.002}, {250 * time.Millisecond, 0.25}, {999_999_999, 1}} {
		err := rateLimitedError("too many", tc.wait)
		if got := err.Extensions["retryAfter"]; got != tc.want || err.Extensions["code"] != codeRateLimited {
			t.Errorf("wait %v: retryAfter %v, code %v; want %v (rounded up to the millisecond), %s", tc.wait, got, err.Extensions["code"], tc.want, codeRateLimited)
		}
	}
}

// TestRepeatsAtTheirBound: a selection may select one response name, and
// spread fragments, maxRepeats (100) times; once more is refused
// (COMPLEXITY_LIMIT_EXCEEDED) before validation.
func TestRepeatsAtTheirBound(t *testing.T) {
	fields := func(n int) string { return "query A { " + strings.Repeat("__typename ", n) + "}" }
	spreads := func(n int) string {
		var b strings.Builder
		b.WriteString("query A { ")
		for i := range n {
			fmt.Fprintf(&b, "...F%d ", i)
		}
		b.WriteString("} ")
		for i := range n {
			fmt.Fprintf(&b, "fragment F%d on Query { __typename } ", i)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name    string
		doc     string
		refused bool
	}{
		{"one name maxRepeats times", fields(maxRepeats), false},
		{"one name maxRepeats+1 times", fields(maxRepeats + 1), true},
		{"maxRepeats spreads", spreads(maxRepeats), false},
		{"maxRepeats+1 spreads", spreads(maxRepeats + 1), true},
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.doc})
		if err != nil {
			t.Fatal(err)
		}
		got := repeatsError(doc)
		if (got != nil) != tc.refused || got != nil && got.Extensions["code"] != codeComplexityExceeded {
			t.Errorf("%s: %v; want refused %v (at most %d allowed)", tc.name, got, tc.refused, maxRepeats)
		}
	}
}

// TestNegativeLimitsAreRefused: a negative limit is a mistake, not "no
// limit" (that is zero): New refuses it, naming the field.
func TestNegativeLimitsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*Limits)
	}{
		{"MaxConnections", func(l *Limits) { l.MaxConnections = -1 }},
		{"MaxOperations", func(l *Limits) { l.MaxOperations = -1 }},
		{"SubscribeRate", func(l *Limits) { l.SubscribeRate = -0.5 }},
		{"MutationBurst", func(l *Limits) { l.MutationBurst = -2 }},
		{"MaxVariablesBytes", func(l *Limits) { l.MaxVariablesBytes = -1 }},
	} {
		var l Limits
		tc.edit(&l)
		if err := l.validate(); err == nil || !strings.Contains(err.Error(), "Options.Limits."+tc.field) {
			t.Errorf("Limits with a negative %s: %v; want an error naming it", tc.field, err)
		}
	}
	if err := (Limits{}).validate(); err != nil {
		t.Errorf("zero Limits (no limits): %v", err)
	}
}

// TestRootFieldsLeaveOutTypename: the mutations an operation runs are its
// root fields, through fragments, without __typename, which runs nothing:
// a mutation that also asks for __typename spends no more of the rate, nor
// is refused beyond the burst for it.
func TestRootFieldsLeaveOutTypename(t *testing.T) {
	doc, err := parser.ParseQuery(&ast.Source{Input: `mutation M { __typename a: x b: y ... on Mutation { __typename c: z } ...F }
		fragment F on Mutation { __typename d: w }`})
	if err != nil {
		t.Fatal(err)
	}
	if n := rootFields(doc.Operations[0].SelectionSet, doc.Fragments); n != 4 {
		t.Fatalf("rootFields = %d, want 4 (a, b, c, d; __typename is no mutation)", n)
	}
}
