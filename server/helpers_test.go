package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/testrig"
)

const (
	ctJSON     = "application/json; charset=utf-8"
	ctResponse = "application/graphql-response+json; charset=utf-8"
	// acceptResponse is what the spec recommends clients send.
	acceptResponse = "application/graphql-response+json, application/json;q=0.9"
	// testMaxBody is small enough to exceed cheaply, large enough for the
	// test documents.
	testMaxBody = 512
)

// newTestServer returns a Server over the fake schema with the Dev
// authenticator, after letting edit adjust the options, and its log.
func newTestServer(t *testing.T, edit func(*Options)) (*Server, *testrig.LogBuffer) {
	t.Helper()
	logs := &testrig.LogBuffer{}
	opts := Options{
		Schema:        newFakeSchema(t),
		Authenticator: auth.Dev{},
		Readiness:     func(context.Context) []Check { return []Check{{Name: "fake", OK: true}} },
		MaxBodyBytes:  testMaxBody,
		Logger:        slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, logs
}

// request is one HTTP request a test sends.
type request struct {
	method string
	target string
	body   string
	header http.Header
}

// with returns a copy of q with header key set to value.
func (q request) with(key, value string) request {
	h := q.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(key, value)
	q.header = h
	return q
}

// accepting returns a copy of q with the Accept header the spec recommends.
func (q request) accepting() request { return q.with("Accept", acceptResponse) }

// post is a POST /graphql with a JSON body.
func post(body string) request {
	return request{method: http.MethodPost, target: "/graphql", body: body,
		header: http.Header{"Content-Type": {"application/json"}}}
}

// get is a GET /graphql with the given query parameters, in pairs.
func get(params ...string) request {
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		v.Set(params[i], params[i+1])
	}
	return request{method: http.MethodGet, target: "/graphql?" + v.Encode()}
}

// send serves q and returns the recorded response.
func send(t *testing.T, h http.Handler, q request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if q.body != "" {
		body = strings.NewReader(q.body)
	}
	r := httptest.NewRequest(q.method, q.target, body)
	for k, vs := range q.header {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// want is what a GraphQL response must be.
type want struct {
	status      int
	contentType string
	data        string            // exact JSON of "data"; "" means data must be absent
	err         string            // substring of the first error's message; "" means no errors
	code        string            // the first error's extensions.code; "" means none checked
	header      map[string]string // further response headers
}

// gqlError is one entry of a response's errors.
type gqlError struct {
	Message    string           `json:"message"`
	Path       []any            `json:"path"`
	Locations  []map[string]int `json:"locations"`
	Extensions map[string]any   `json:"extensions"`
}

// check asserts that w is the response described.
func check(t *testing.T, w *httptest.ResponseRecorder, exp want) {
	t.Helper()
	body := w.Body.String()
	if w.Code != exp.status {
		t.Errorf("status = %d, want %d; body %s", w.Code, exp.status, body)
	}
	if got := w.Header().Get("Content-Type"); got != exp.contentType {
		t.Errorf("Content-Type = %q, want %q", got, exp.contentType)
	}
	for k, v := range exp.header {
		if got := w.Header().Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatalf("body is not a JSON object: %v; body %s", err, body)
	}
	for k := range resp {
		if k != "data" && k != "errors" && k != "extensions" {
			t.Errorf("unexpected member %q in GraphQL response %s", k, body)
		}
	}
	checkData(t, resp, exp.data)
	checkErrors(t, resp, exp)
}

func checkData(t *testing.T, resp map[string]json.RawMessage, exp string) {
	t.Helper()
	got, present := resp["data"]
	switch {
	case exp == "" && present:
		t.Errorf("data = %s, want it absent", got)
	case exp != "" && !present:
		t.Errorf("data absent, want %s", exp)
	case exp != "" && !jsonEqual(t, got, exp):
		t.Errorf("data = %s, want %s", got, exp)
	}
}

func checkErrors(t *testing.T, resp map[string]json.RawMessage, exp want) {
	t.Helper()
	raw, present := resp["errors"]
	if exp.err == "" {
		if present {
			t.Errorf("errors = %s, want none", raw)
		}
		return
	}
	var errs []gqlError
	if err := json.Unmarshal(raw, &errs); err != nil || len(errs) == 0 {
		t.Fatalf("errors = %s, want a non-empty list of errors (%v)", raw, err)
	}
	for i, e := range errs {
		if e.Message == "" {
			t.Errorf("errors[%d] has no message: %s", i, raw)
		}
	}
	if !strings.Contains(errs[0].Message, exp.err) {
		t.Errorf("errors[0].message = %q, want it to contain %q", errs[0].Message, exp.err)
	}
	// Every error says what kind it is: a want with no code wants none.
	if got, _ := errs[0].Extensions["code"].(string); got != exp.code {
		t.Errorf("errors[0].extensions.code = %q, want %q", got, exp.code)
	}
}

func jsonEqual(t *testing.T, got json.RawMessage, exp string) bool {
	t.Helper()
	var a, b bytes.Buffer
	if err := json.Compact(&a, got); err != nil {
		t.Fatalf("compact %s: %v", got, err)
	}
	if err := json.Compact(&b, []byte(exp)); err != nil {
		t.Fatalf("compact %s: %v", exp, err)
	}
	return a.String() == b.String()
}
