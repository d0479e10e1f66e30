package server

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
)

// plain is an expected non-GraphQL response.
type plain struct {
	status      int
	contentType string
	body        string // exact JSON; "" skips the check
	header      map[string]string
}

func checkPlain(t *testing.T, q request, h http.Handler, exp plain) {
	t.Helper()
	w := send(t, h, q)
	if w.Code != exp.status {
		t.Errorf("status = %d, want %d; body %s", w.Code, exp.status, w.Body)
	}
	if got := w.Header().Get("Content-Type"); got != exp.contentType {
		t.Errorf("Content-Type = %q, want %q", got, exp.contentType)
	}
	for k, v := range exp.header {
		if got := w.Header().Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if exp.body != "" && !jsonEqual(t, w.Body.Bytes(), exp.body) {
		t.Errorf("body = %s, want %s", w.Body, exp.body)
	}
}

func TestOperationalRoutes(t *testing.T) {
	s, _ := newTestServer(t, nil)
	cases := []struct {
		name string
		req  request
		want plain
	}{
		{"healthz", request{method: http.MethodGet, target: "/healthz"},
			plain{200, "application/json", `{"status":"ok"}`, map[string]string{"Cache-Control": "no-store"}}},
		{"healthz HEAD", request{method: http.MethodHead, target: "/healthz"},
			plain{status: 200, contentType: "application/json"}},
		{"healthz POST", request{method: http.MethodPost, target: "/healthz"},
			plain{405, "application/json", `{"error":"method not allowed"}`, map[string]string{"Allow": "GET, HEAD"}}},
		{"readyz", request{method: http.MethodGet, target: "/readyz"},
			plain{200, "application/json", `{"ready":true,"checks":[{"name":"fake","ok":true}]}`, nil}},
		{"GraphiQL", request{method: http.MethodGet, target: "/"},
			plain{status: 200, contentType: "text/html; charset=utf-8"}},
		{"GraphiQL POST", request{method: http.MethodPost, target: "/"},
			plain{405, "application/json", `{"error":"method not allowed"}`, map[string]string{"Allow": "GET, HEAD"}}},
		{"GraphiQL asset POST", request{method: http.MethodPost, target: "/graphiql/x.js"},
			plain{405, "application/json", `{"error":"method not allowed"}`, map[string]string{"Allow": "GET, HEAD"}}},
		{"unknown GraphiQL asset", request{method: http.MethodGet, target: "/graphiql/x.js"},
			plain{404, "application/json", `{"error":"not found"}`, nil}},
		{"unknown path", request{method: http.MethodGet, target: "/nope"},
			plain{404, "application/json", `{"error":"not found"}`, nil}},
		{"below /graphql", request{method: http.MethodGet, target: "/graphql/x"},
			plain{404, "application/json", `{"error":"not found"}`, nil}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPlain(t, tc.req, s, tc.want)
		})
	}
}

func TestGraphiQLPointsAtGraphQL(t *testing.T) {
	s, _ := newTestServer(t, nil)
	w := send(t, s, request{method: http.MethodGet, target: "/"})
	body := w.Body.String()
	// Relative to the page, so that a path prefix a proxy strips is kept.
	if !strings.Contains(body, `data-endpoint="./graphql"`) || !strings.Contains(body, "<title>Herald</title>") {
		t.Errorf("GraphiQL page does not name Herald and ./graphql")
	}
	if !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("GraphiQL page has no strict Content-Security-Policy: %q", w.Header().Get("Content-Security-Policy"))
	}
	// The page's files are served from the binary, through the server's mux.
	srcs := regexp.MustCompile(`src="\.(/graphiql/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(srcs) == 0 {
		t.Fatalf("GraphiQL page loads no script from ./graphiql/")
	}
	for _, m := range srcs {
		w := send(t, s, request{method: http.MethodGet, target: m[1]})
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || w.Body.Len() == 0 {
			t.Errorf("GET %s: status %d, Content-Type %q, %d bytes", m[1], w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
	}
}

func TestReadiness(t *testing.T) {
	cases := []struct {
		name   string
		checks func(ctx context.Context) []Check
		want   plain
	}{
		{"all ok", func(context.Context) []Check {
			return []Check{{Name: "nats", OK: true}, {Name: "store", OK: true}}
		}, plain{200, "application/json", `{"ready":true,"checks":[{"name":"nats","ok":true},{"name":"store","ok":true}]}`,
			map[string]string{"Retry-After": ""}}},
		{"no checks", func(context.Context) []Check { return nil },
			plain{200, "application/json", `{"ready":true,"checks":[]}`, nil}},
		{"one failing", func(context.Context) []Check {
			return []Check{{Name: "nats", OK: true}, {Name: "store", OK: false, Detail: "connection refused"}}
		}, plain{503, "application/json",
			`{"ready":false,"checks":[{"name":"nats","ok":true},{"name":"store","ok":false,"detail":"connection refused"}]}`,
			map[string]string{"Retry-After": retryAfterUnavailable, "Cache-Control": "no-store"}}},
		{"bounded inside Kubernetes's default probe timeout of 1 s", func(ctx context.Context) []Check {
			deadline, ok := ctx.Deadline()
			if !ok || time.Until(deadline) > 900*time.Millisecond {
				return []Check{{Name: "deadline", OK: false, Detail: "no deadline within the timeout"}}
			}
			return []Check{{Name: "deadline", OK: true}}
		}, plain{200, "application/json", `{"ready":true,"checks":[{"name":"deadline","ok":true}]}`, nil}},
		{"a check that hangs answered as failing", func(ctx context.Context) []Check {
			<-ctx.Done()
			return []Check{{Name: "stream", OK: false, Detail: ctx.Err().Error()}}
		}, plain{503, "application/json", `{"ready":false,"checks":[{"name":"stream","ok":false,"detail":"context deadline exceeded"}]}`,
			map[string]string{"Retry-After": retryAfterUnavailable}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, func(o *Options) { o.Readiness = tc.checks })
			checkPlain(t, request{method: http.MethodGet, target: "/readyz"}, s, tc.want)
		})
	}
}

func TestNewValidatesOptions(t *testing.T) {
	valid := func() Options {
		return Options{
			Schema:        newFakeSchema(t),
			Authenticator: auth.Dev{},
			Readiness:     func(context.Context) []Check { return nil },
		}
	}
	cases := []struct {
		name string
		edit func(*Options)
		want string // substring of the error; "" means no error
	}{
		{"valid", func(*Options) {}, ""},
		{"no schema", func(o *Options) { o.Schema = nil }, "Options.Schema is required"},
		{"no authenticator", func(o *Options) { o.Authenticator = nil }, "Options.Authenticator is required"},
		{"no readiness", func(o *Options) { o.Readiness = nil }, "Options.Readiness is required"},
		{"negative body limit", func(o *Options) { o.MaxBodyBytes = -1 }, "Options.MaxBodyBytes is -1"},
		{"negative query cache", func(o *Options) { o.QueryCacheSize = -1 }, "Options.QueryCacheSize is -1"},
		{"negative APQ cache", func(o *Options) { o.APQCacheSize = -1 }, "Options.APQCacheSize is -1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := valid()
			tc.edit(&opts)
			s, err := New(opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.want == "" && s == nil:
				t.Fatal("New returned a nil Server")
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("New error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// challenger is an authenticator that names its WWW-Authenticate challenge.
type challenger struct{ auth.Dev }

func (challenger) Challenge() string { return `Herald-User realm="dev"` }

// failing is an authenticator that cannot check credentials.
type failing struct{ auth.Dev }

func (failing) FromRequest(*http.Request) (auth.Identity, bool, error) {
	return auth.Identity{}, false, context.DeadlineExceeded
}

func TestAuthenticatorVariants(t *testing.T) {
	bad := post(`{"query":"{ whoami }"}`).with("X-Herald-User", strings.Repeat("a", 100))
	t.Run("custom challenge", func(t *testing.T) {
		s, _ := newTestServer(t, func(o *Options) { o.Authenticator = challenger{} })
		check(t, send(t, s, bad), want{status: 401, contentType: ctJSON, err: "invalid credentials",
			code: "UNAUTHENTICATED", header: map[string]string{"WWW-Authenticate": `Herald-User realm="dev"`}})
	})
	t.Run("authenticator failure", func(t *testing.T) {
		s, logs := newTestServer(t, func(o *Options) { o.Authenticator = failing{} })
		w := send(t, s, post(`{"query":"{ whoami }"}`))
		check(t, w, want{status: 503, contentType: ctJSON, err: "authentication is unavailable", code: "UNAVAILABLE"})
		if strings.Contains(w.Body.String(), "deadline") {
			t.Errorf("internal error leaked to the client: %s", w.Body)
		}
		if !strings.Contains(logs.String(), "context deadline exceeded") {
			t.Errorf("log lacks the cause:\n%s", logs)
		}
	})
}

func TestNegotiate(t *testing.T) {
	cases := []struct {
		accept string
		want   mediaType // "" means not acceptable
	}{
		{"", mediaJSON},
		{"*/*", mediaJSON},
		{"application/*", mediaJSON},
		{"application/json", mediaJSON},
		{"application/graphql-response+json", mediaGraphQLResponse},
		{"application/graphql-response+json, application/json;q=0.9", mediaGraphQLResponse},
		{"application/json, application/graphql-response+json", mediaGraphQLResponse},
		{"application/graphql-response+json;q=0.5, application/json", mediaJSON},
		{"application/graphql-response+json;q=0.5, */*", mediaJSON},
		{"application/graphql-response+json, */*", mediaGraphQLResponse},
		{"application/graphql-response+json;charset=utf-8", mediaGraphQLResponse},
		{"text/html, application/xhtml+xml, */*;q=0.8", mediaJSON},
		{"application/graphql-response+json;q=0", ""},
		{"text/html", ""},
		{"application/json;q=0", ""},
		{"application/json;q=0, */*", mediaGraphQLResponse},
		{"application/*, application/json;q=0", mediaGraphQLResponse},
		{"*/*;q=0.3, application/json;q=0", mediaGraphQLResponse},
		{"application/json;q=0, application/*;q=0, */*", ""},
		{"application/json;q=0, application/graphql-response+json;q=0, */*", ""},
		{"application/json;q=oops", ""},
		{"application/graphql-response+json;q=0, application/json;q=0.1", mediaJSON},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest(http.MethodGet, "/graphql", nil)
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		got, ok := negotiate(r)
		if !ok {
			got = ""
		}
		if got != tc.want {
			t.Errorf("negotiate(Accept: %q) = %q, want %q", tc.accept, got, tc.want)
		}
	}
}

func TestJSONAsReadily(t *testing.T) {
	cases := []struct {
		accept string
		want   mediaType // "" means a stream is preferred, or JSON is not accepted
	}{
		{acceptURQL, mediaGraphQLResponse},
		{"text/event-stream, application/json", mediaJSON},
		{"text/event-stream;q=0.5, application/*", mediaJSON},
		{"application/graphql-response+json;q=0.5, text/event-stream;q=0.5", mediaGraphQLResponse},
		{"text/event-stream", ""},
		{"text/event-stream, multipart/mixed", ""},
		{"text/event-stream, application/json;q=0.9", ""},
		{"text/event-stream, */*", ""}, // a wildcard is no preference for JSON
		{"text/event-stream, application/json;q=0", ""},
	}
	for _, tc := range cases {
		r, _ := http.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Accept", tc.accept)
		got, ok := jsonAsReadily(r)
		if !ok {
			got = ""
		}
		if got != tc.want {
			t.Errorf("jsonAsReadily(Accept: %q) = %q, want %q", tc.accept, got, tc.want)
		}
	}
}
