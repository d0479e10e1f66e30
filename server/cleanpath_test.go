package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWithCleanPath(t *testing.T) {
	cases := []struct {
		method, target            string
		wantEscaped, wantRawQuery string
		same                      bool // r itself is returned
	}{
		{http.MethodGet, "/graphql?query=x", "/graphql", "query=x", true},
		{http.MethodGet, "/", "/", "", true},
		{http.MethodGet, "/graphiql/abc/start.js", "/graphiql/abc/start.js", "", true},
		{http.MethodGet, "/graphql/", "/graphql/", "", true},
		{http.MethodGet, "//graphql?query=x", "/graphql", "query=x", false},
		{http.MethodPost, "/./graphql", "/graphql", "", false},
		{http.MethodGet, "/a/../graphql?b=1&c=2", "/graphql", "b=1&c=2", false},
		{http.MethodGet, "//", "/", "", false},
		// A trailing slash is kept, as http.ServeMux keeps it.
		{http.MethodGet, "//graphql//", "/graphql/", "", false},
		// An escaped slash is not a separator: cleaning works on the
		// escaped path, as the mux matches it.
		{http.MethodGet, "//a%2F..%2Fgraphql", "/a%2F..%2Fgraphql", "", false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		before := *r.URL
		got := withCleanPath(r)
		if (got == r) != tc.same {
			t.Errorf("%s %s: returned the request itself: %v, want %v", tc.method, tc.target, got == r, tc.same)
		}
		if got.URL.EscapedPath() != tc.wantEscaped || got.URL.RawQuery != tc.wantRawQuery {
			t.Errorf("%s %s: path %q query %q, want %q %q", tc.method, tc.target,
				got.URL.EscapedPath(), got.URL.RawQuery, tc.wantEscaped, tc.wantRawQuery)
		}
		if *r.URL != before {
			t.Errorf("%s %s: the caller's URL was changed to %v", tc.method, tc.target, r.URL)
		}
	}
}

// TestWithCleanPathAllocatesNothingForCleanPaths: every request passes
// through withCleanPath, and nearly all have a clean path.
func TestWithCleanPathAllocatesNothingForCleanPaths(t *testing.T) {
	for _, target := range []string{"/graphql?query=x", "/", "/graphql/"} {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		if n := testing.AllocsPerRun(100, func() { _ = withCleanPath(r) }); n != 0 {
			t.Errorf("withCleanPath(%s) allocates %v times", target, n)
		}
	}
}
