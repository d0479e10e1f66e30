package server

import (
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// fragmentChain is a query spreading F0, each fragment Fi selecting
// __typename and spreading F(i+1), n of them: 43 bytes a link.
func fragmentChain(n int) string {
	var b strings.Builder
	b.WriteString("query { ...F0 }\n")
	for i := range n {
		fmt.Fprintf(&b, "fragment F%d on Query{__typename ...F%d}\n", i, i+1)
	}
	fmt.Fprintf(&b, "fragment F%d on Query{__typename}\n", n)
	return b.String()
}

// fragmentChains is two chains of n fragments each, spread side by side.
func fragmentChains(n int) string {
	var b strings.Builder
	b.WriteString("query { ...A0 ...B0 }\n")
	for i := range n {
		fmt.Fprintf(&b, "fragment A%d on Query{__typename ...A%d}\nfragment B%d on Query{__typename ...B%d}\n", i, i+1, i, i+1)
	}
	fmt.Fprintf(&b, "fragment A%d on Query{__typename}\nfragment B%d on Query{__typename}\n", n, n)
	return b.String()
}

// overlappingFragments is a query spreading n fragments that each select
// __typename per times: no selection repeats a name more than per times,
// but validation compares every two of the n×per fields.
func overlappingFragments(n, per int) string {
	var b strings.Builder
	b.WriteString("query { ")
	for i := range n {
		fmt.Fprintf(&b, "...F%d ", i)
	}
	b.WriteString("}\n")
	for i := range n {
		fmt.Fprintf(&b, "fragment F%d on Query{%s}\n", i, strings.Repeat("__typename ", per))
	}
	return b.String()
}

// TestHostileDocumentsAreBoundedOnEveryTransport: documents well within
// the default limits (the 64 KiB WebSocket message, complexity 10,000,
// depth 15, at most 100 repeats of a name or spreads in a selection) whose
// checking or validation is super-linear must be refused quickly, not
// take seconds of CPU each.
func TestHostileDocumentsAreBoundedOnEveryTransport(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits = DefaultLimits() })
	chain := fragmentChain(1000)
	docs := []struct{ name, query string }{
		{"a chain of 1,000 fragments", chain},
		{"two chains of 500 fragments", fragmentChains(500)},
		{"50 fragments of 100 __typename", overlappingFragments(50, 100)},
	}
	for _, d := range docs {
		if len(d.query) > 60<<10 {
			t.Fatalf("%s is %d bytes: more than a WebSocket message takes", d.name, len(d.query))
		}
	}
	type answer struct {
		took time.Duration
		body string
	}
	transports := []struct {
		name string
		docs []int // indexes into docs
		send func(t *testing.T, query string) answer
	}{
		{"POST", []int{0, 1, 2}, func(t *testing.T, query string) answer {
			start := time.Now()
			_, _, body := r.forTest(t).graphqlPost("u", query, nil, nil)
			return answer{time.Since(start), fmt.Sprint(body)}
		}},
		{"GET", []int{0}, func(t *testing.T, query string) answer {
			start := time.Now()
			status, body := r.forTest(t).get("/graphql?query=" + url.QueryEscape(query))
			return answer{time.Since(start), fmt.Sprint(status, " ", body)}
		}},
		{"graphql-sse", []int{0}, func(t *testing.T, query string) answer {
			start := time.Now()
			c, status, body := r.forTest(t).openSSE(sseRequest{method: http.MethodPost, query: query})
			if c == nil {
				return answer{time.Since(start), fmt.Sprint(status, " ", body)}
			}
			ev := c.next()
			return answer{time.Since(start), ev.event + " " + ev.data}
		}},
		{"graphql-transport-ws", []int{0}, func(t *testing.T, query string) answer {
			c := r.forTest(t).dialTransport("u")
			start := time.Now()
			c.subscribe("subscribe", "1", query, nil)
			f := c.next()
			return answer{time.Since(start), f.raw}
		}},
		{"graphql-ws (legacy)", []int{0}, func(t *testing.T, query string) answer {
			c := r.forTest(t).dialLegacy("u")
			start := time.Now()
			c.subscribe("start", "1", query, nil)
			f := c.next()
			return answer{time.Since(start), f.raw}
		}},
	}
	for _, tr := range transports {
		for _, i := range tr.docs {
			d := docs[i]
			t.Run(tr.name+"/"+d.name, func(t *testing.T) {
				// A document of its own, which no query cache holds.
				query := d.query + "# " + tr.name + "\n"
				a := tr.send(t, query)
				if len(a.body) > 300 {
					a.body = a.body[:300] + "…"
				}
				// Refused, not answered: validating it is what takes seconds.
				if !strings.Contains(a.body, codeComplexityExceeded) {
					t.Errorf("a %d-byte document was answered after %v with %s; want it refused with %s before validation",
						len(query), a.took.Round(time.Millisecond), a.body, codeComplexityExceeded)
				}
			})
		}
	}
}

// TestRepeatsCountThroughFragments: the bound on how often a selection
// repeats a name, and on the fragments it spreads, counts what the
// fragments it spreads select and spread, as validation compares them;
// documents applications send stay within it.
func TestRepeatsCountThroughFragments(t *testing.T) {
	// A Relay-like document: a query spreading 20 fragments that each
	// select id and __typename and spread two more.
	var relay strings.Builder
	relay.WriteString("query { viewer { ")
	for i := range 20 {
		fmt.Fprintf(&relay, "...C%d ", i)
	}
	relay.WriteString("} }\n")
	for i := range 20 {
		fmt.Fprintf(&relay, "fragment C%d on User { id __typename ...D%d ...D%d }\n", i, i, (i+1)%20)
		fmt.Fprintf(&relay, "fragment D%d on User { id name }\n", i)
	}
	for _, tc := range []struct {
		name    string
		doc     string
		refused bool
	}{
		{"a Relay-like document", relay.String(), false},
		{"a chain of 99 fragments", fragmentChain(99), false},
		{"a chain of 101 fragments", fragmentChain(101), true},
		{"two chains of 50 fragments", fragmentChains(49), false},
		{"two chains of 60 fragments", fragmentChains(60), true},
		{"10 fragments of 10 __typename", overlappingFragments(10, 10), false},
		{"2 fragments of 51 __typename", overlappingFragments(2, 51), true},
	} {
		doc, err := parser.ParseQuery(&ast.Source{Input: tc.doc})
		if err != nil {
			t.Fatal(err)
		}
		got := repeatsError(doc)
		if (got != nil) != tc.refused || got != nil && got.Extensions["code"] != codeComplexityExceeded {
			t.Errorf("%s: %v; want refused %v", tc.name, got, tc.refused)
		}
	}
}

// TestDepthOfAFragmentChainIsLinear: with a depth limit (and no
// complexity limit, so no bound on repeats), checking a chain of 1,500
// fragments, each spreading the next, takes time in the document's size,
// not in the cube of its fragments.
func TestDepthOfAFragmentChainIsLinear(t *testing.T) {
	doc, err := parser.ParseQuery(&ast.Source{Input: fragmentChain(1500)})
	if err != nil {
		t.Fatal(err)
	}
	x := preciseExecutor{shape: shapeLimits{depth: &depthLimit{max: 15}}}
	start := time.Now()
	refused := x.checkShape(t.Context(), doc, nil)
	// Linear, it takes milliseconds; cubic, it took over 2 s on an idle
	// machine, and load only makes that longer.
	if took := time.Since(start); refused != nil || took > time.Second {
		t.Errorf("checking the depth of a chain of 1,500 fragments took %v (want under 1s), with %v (want no error)", took, refused)
	}
}

// fragmentSpreadEverywhere is a query spreading X0, and xs small fragments
// X0… each spreading Big1 and Big2, of names unknown fields each:
// validation walks Big1 and Big2 once for every X.
func fragmentSpreadEverywhere(names, xs int) string {
	var b strings.Builder
	b.WriteString("query { ...X0 }\n")
	for _, big := range []string{"Big1", "Big2"} {
		fmt.Fprintf(&b, "fragment %s on Query{", big)
		for i := range names {
			fmt.Fprintf(&b, "%s%d ", strings.ToLower(big[:1])+big[3:], i)
		}
		b.WriteString("}\n")
	}
	for i := range xs {
		fmt.Fprintf(&b, "fragment X%d on Query{...Big1 ...Big2}\n", i)
	}
	return b.String()
}

// TestValidationVisitsAreBounded: a 22 KB document (a WebSocket message
// takes 64 KiB), each of whose operations and fragments is within the
// limits, must not make the replica allocate hundreds of megabytes: it is
// refused before validation walks the same fragments over and over.
func TestValidationVisitsAreBounded(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits = DefaultLimits() })
	query := fragmentSpreadEverywhere(250, 500)
	const most = 100 << 20
	for _, tr := range []struct {
		name string
		send func(t *testing.T, query string) string
	}{
		{"POST", func(t *testing.T, query string) string {
			_, _, body := r.forTest(t).graphqlPost("u", query, nil, nil)
			return fmt.Sprint(body)
		}},
		{"graphql-transport-ws", func(t *testing.T, query string) string {
			c := r.forTest(t).dialTransport("u")
			c.subscribe("subscribe", "1", query, nil)
			return c.next().raw
		}},
	} {
		t.Run(tr.name, func(t *testing.T) {
			query := query + "# " + tr.name + "\n" // no query cache holds it
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			body := tr.send(t, query)
			runtime.ReadMemStats(&after)
			if len(body) > 300 {
				body = body[:300] + "…"
			}
			if allocated := after.TotalAlloc - before.TotalAlloc; allocated > most || !strings.Contains(body, codeComplexityExceeded) {
				t.Errorf("a %d-byte document made the replica allocate %d MB (want at most %d), answered with %s; want it refused with %s",
					len(query), allocated>>20, most>>20, body, codeComplexityExceeded)
			}
		})
	}
}
