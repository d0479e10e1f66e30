package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

// repeated concatenates f(0) … f(n-1).
func repeated(n int, f func(i int) string) string {
	var sb strings.Builder
	for i := range n {
		sb.WriteString(f(i))
	}
	return sb.String()
}

// shapeAnswer sends query over HTTP (POST, or GET) and returns the status
// and the errors of the answer.
func shapeAnswer(t *testing.T, r *replica, method, query string) (int, []gqlError) {
	return shapeAnswerNamed(t, r, method, query, "")
}

// shapeAnswerNamed is shapeAnswer for the operation named operationName.
func shapeAnswerNamed(t *testing.T, r *replica, method, query, operationName string) (int, []gqlError) {
	t.Helper()
	var req *http.Request
	if method == http.MethodGet {
		req, _ = http.NewRequest(method, r.http.URL+"/graphql?"+url.Values{"query": {query}, "operationName": {operationName}}.Encode(), nil)
	} else {
		body, _ := json.Marshal(map[string]any{"query": query, "operationName": operationName})
		req, _ = http.NewRequest(method, r.http.URL+"/graphql", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Herald-User", "u")
	resp, err := doBounded(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: the answer is not JSON: %v", method, err)
	}
	return resp.StatusCode, out.Errors
}

// Depth and complexity were applied only after gqlgen had validated a
// document, and validation costs more than a document's size for some
// shapes (gqlparser compares every two fields of one response name, and
// every two fragments spread side by side: 42 KB of one field took
// seconds, holding a socket's reader as long). A document over a limit is
// refused before validation now: one that is also invalid, in thousands
// of places, gets the limit's error alone, over every transport.
func TestShapeLimitsComeBeforeValidation(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits = Limits{MaxDepth: 15, MaxComplexity: 1000} })
	for _, tc := range []struct {
		name, doc, code string
	}{
		{"one unknown field 1,500 times", "{ " + strings.Repeat("nope ", 1500) + "}", codeComplexityExceeded},
		{"1,500 fragments side by side",
			"{ " + repeated(1500, func(i int) string { return fmt.Sprintf("...F%d ", i) }) + "} " +
				repeated(1500, func(i int) string { return fmt.Sprintf("fragment F%d on Query { nope } ", i) }),
			codeComplexityExceeded},
		{"unknown fields 20 deep", strings.Repeat("{ nope ", 20) + strings.Repeat("}", 20), codeDepthExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				_, errs := shapeAnswer(t, r, method, tc.doc)
				if len(errs) != 1 || errs[0].Extensions["code"] != tc.code {
					t.Errorf("%s: %d errors (first %+v), want the one %s", method, len(errs), errs[:min(len(errs), 1)], tc.code)
				}
			}
			for name, c := range map[string]*wsClient{"graphql-transport-ws": r.forTest(t).dialTransport("u"), "graphql-ws": r.forTest(t).dialLegacy("u")} {
				typ := "subscribe"
				if name == "graphql-ws" {
					typ = "start"
				}
				c.subscribe(typ, "1", tc.doc, nil)
				f := c.next()
				var errs []opError
				if json.Unmarshal(f.Payload, &errs) != nil {
					var data struct {
						Errors []opError `json:"errors"`
					}
					_ = json.Unmarshal(f.Payload, &data)
					errs = data.Errors
				}
				if len(errs) != 1 || errs[0].Extensions["code"] != tc.code {
					t.Errorf("%s: %.300s, want the one error %s", name, f.raw, tc.code)
				}
			}
		})
	}
	// Refused before validation, a mutation sent with GET is still 405.
	mutation := "mutation { " + repeated(1100, func(i int) string { return fmt.Sprintf("m%d: nope ", i) }) + "}"
	if status, _ := shapeAnswer(t, r, http.MethodGet, mutation); status != http.StatusMethodNotAllowed {
		t.Errorf("a mutation over the limit sent with GET: %d, want 405", status)
	}
}

// Every validation error was listed: a 15 KB document answered with
// 2,000 errors, 300 KB (a 1 MB one tens of megabytes). At most maxErrors
// are listed now, and one more says how many were left out, as
// graphql-js's validation stops at 100.
func TestErrorListIsCapped(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits = Limits{MaxDepth: 15, MaxComplexity: 1000} })
	doc := "{ " + repeated(600, func(i int) string { return fmt.Sprintf("a%d: nope ", i) }) + "}"
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		_, errs := shapeAnswer(t, r, method, doc)
		if len(errs) != maxErrors+1 {
			t.Fatalf("%s: %d errors for 600 unknown fields, want %d", method, len(errs), maxErrors+1)
		}
		last := errs[maxErrors]
		if last.Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(last.Message, "500 more") {
			t.Errorf("%s: the last error is %+v, want one saying 500 more are not listed", method, last)
		}
	}
	c := r.forTest(t).dialLegacy("u")
	c.subscribe("start", "1", doc, nil)
	f := c.next()
	var data struct {
		Errors []opError `json:"errors"`
	}
	if err := json.Unmarshal(f.Payload, &data); err != nil || len(data.Errors) != maxErrors+1 {
		var errs []opError
		if json.Unmarshal(f.Payload, &errs) != nil || len(errs) != maxErrors+1 {
			t.Errorf("graphql-ws: %d B frame, want %d errors", len(f.raw), maxErrors+1)
		}
	}
}

// Nested pages multiplied the work by up to 100 a level at a constant
// complexity: rooms' messages' room's messages' … (each field counted 1
// plus its children), so that 128 bytes resolved 10,000 rooms within a
// complexity limit of 100. A page counts its children once for each item
// it may hold: first or last as given, from variables too, or the default
// page's 50.
func TestNestedPagesCountPerItem(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits = Limits{MaxDepth: 15, MaxComplexity: 1000} })
	room := r.room("pages")
	for i := range 3 {
		r.post(room, "u", fmt.Sprintf("m%d", i))
	}
	nested := func(levels int, page string) string {
		return fmt.Sprintf(`query($n: Int) { room(id: %q) { `, room) +
			strings.Repeat("messages("+page+") { nodes { room { ", levels) + "name" + strings.Repeat(" } } }", levels) + " } }"
	}
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		refused     bool
	}{
		{"one page of 100", nested(1, "last: 100"), nil, false},             // 1 + 100 × 3
		{"a page of 100 in each of 100", nested(2, "last: 100"), nil, true}, // 100 × 100 × 3
		{"a page of 10 in each of 10", nested(2, "last: 10"), nil, false},
		{"pages of $n = 100", nested(2, "last: $n"), map[string]any{"n": 100}, true},
		{"default pages of 50", nested(2, ""), nil, true},
	} {
		q := strings.ReplaceAll(tc.query, "messages()", "messages")
		_, _, body := r.graphqlPost("u", q, tc.vars, nil)
		refused := errorCode(body) == codeComplexityExceeded
		if refused != tc.refused {
			t.Errorf("%s: refused %v, want %v: %v", tc.name, refused, tc.refused, body)
		}
	}
}

// The caches were bounded by entries only: a thousand parsed documents of
// a megabyte each (20 MB each in memory) were kept. They are bounded by
// the bytes they hold too, least recently used first out.
func TestCachesAreBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	c := newQueryCache(4) // 4 entries, 256 KiB of parsed documents
	doc := &ast.QueryDocument{}
	c.Add(ctx, "a", doc)
	c.Add(ctx, strings.Repeat("b", 20<<10), doc) // 480 KiB: over the whole budget
	if c.len() != 1 {
		t.Fatalf("%d entries, want the heavy one left out", c.len())
	}
	for _, k := range []string{"c", "d", "e"} {
		c.Add(ctx, k, doc)
	}
	c.Get(ctx, "a") // a is used: b… out first
	c.Add(ctx, "f", doc)
	if _, ok := c.Get(ctx, "c"); ok || c.len() != 4 {
		t.Errorf("entries: %d, c kept %v; want 4, the least recently used (c) out", c.len(), ok)
	}
	for _, k := range []string{"a", "d", "e", "f"} {
		if _, ok := c.Get(ctx, k); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
	// Five documents of 3 KiB weigh 72 KiB each: three fit in 256 KiB.
	for i := range 5 {
		c.Add(ctx, fmt.Sprintf("%d%s", i, strings.Repeat(" ", 3<<10)), doc)
	}
	if c.len() != 3 || c.bytes > 4*queryCacheBytesPerEntry {
		t.Errorf("%d entries of %d bytes, want 3 within %d", c.len(), c.bytes, 4*queryCacheBytesPerEntry)
	}

	apq := newAPQCache(2)
	apq.Add(ctx, "h1", strings.Repeat("q", 10<<10))
	apq.Add(ctx, "h2", strings.Repeat("q", 10<<10))
	if apq.len() != 1 {
		t.Errorf("persisted queries: %d of 10 KiB kept in a budget of 16 KiB, want 1", apq.len())
	}
}

// What validation looks at, the check before it looks at too: every
// operation of the document, not only the one operationName chooses, and
// every fragment, spread or not; and, whatever the complexity limit, no
// selection may repeat a response name, or spread fragments, more than
// maxRepeats times (44 KB of one field took seconds to validate at the
// default limit of 10,000). Each document, invalid throughout, gets the
// limit's error alone.
func TestShapeCheckCoversTheWholeDocument(t *testing.T) {
	many := strings.Repeat("nope ", 1500)
	for _, tc := range []struct {
		name, doc, operation string
		limit                int
	}{
		{"an operation over the limit beside the chosen one", "query A { __typename } query B { " + many + "}", "A", 1000},
		{"an unused fragment over the limit", "query A { __typename } fragment F on Query { " + many + "}", "A", 1000},
		{"one field 1,500 times within the limit", "query A { " + many + "}", "A", 10000},
		{"150 fragments side by side within the limit",
			"query A { " + repeated(150, func(i int) string { return fmt.Sprintf("...F%d ", i) }) + "} " +
				repeated(150, func(i int) string { return fmt.Sprintf("fragment F%d on Query { nope } ", i) }), "A", 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, func(o *Options) { o.Limits = Limits{MaxDepth: 15, MaxComplexity: tc.limit} })
			status, errs := shapeAnswerNamed(t, r, http.MethodPost, tc.doc, tc.operation)
			if len(errs) != 1 || errs[0].Extensions["code"] != codeComplexityExceeded {
				t.Fatalf("%d, %d errors (first %+v), want the one %s", status, len(errs), errs[:min(len(errs), 1)], codeComplexityExceeded)
			}
		})
	}
}
