package main

// nginx's default large_client_header_buffers (4 8k) answered a GET whose
// query string was over ~8 KB itself, with an HTML 414, although Herald
// takes a query string up to --max-body-bytes (1 MiB) and an EventSource
// subscription can only be a GET; a header over 8 KB (a long JWT, many
// cookies) got an HTML 400 "Request Header Or Cookie Too Large" the same
// way. The shipped nginx.conf now takes a request line and header lines up
// to 64 KiB and answers beyond that with GraphQL errors (BAD_REQUEST), as
// deploy/README.md documents.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// graphQLErrorsOf decodes a GraphQL response holding only errors and
// returns its first error's extensions.code and message, or an error
// saying why the body is not one.
func graphQLErrorsOf(contentType string, body []byte) (code, msg string, err error) {
	if !strings.HasPrefix(contentType, "application/json") {
		return "", "", fmt.Errorf("Content-Type %q, not JSON: %.200s", contentType, body)
	}
	var resp struct {
		Errors []struct {
			Message    string `json:"message"`
			Extensions struct {
				Code string `json:"code"`
			} `json:"extensions"`
		} `json:"errors"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || len(resp.Errors) == 0 || resp.Data != nil {
		return "", "", fmt.Errorf("not a GraphQL response holding errors only (%v): %.200s", err, body)
	}
	return resp.Errors[0].Extensions.Code, resp.Errors[0].Message, nil
}

func TestNginxServesLongGETQueriesAndHeaders(t *testing.T) {
	cluster := startNginxCluster(t)
	hc := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	// get sends GET /graphql?query=<query padded by a comment to about
	// queryBytes> with an optional Cookie header of cookieBytes.
	get := func(base string, queryBytes, cookieBytes int) (int, string, []byte) {
		t.Helper()
		query := "{ __typename } #" + strings.Repeat("x", queryBytes)
		ctx, cancel := context.WithTimeout(cluster.ctx, 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+url.Values{"query": {query}}.Encode(), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("X-Herald-User", "alice")
		if cookieBytes > 0 {
			req.Header.Set("Cookie", "session="+strings.Repeat("c", cookieBytes))
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET with a %d-byte query and a %d-byte cookie: %v", queryBytes, cookieBytes, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, resp.Header.Get("Content-Type"), b
	}
	const answer = `{"data":{"__typename":"Query"}}`
	direct := fmt.Sprintf("http://127.0.0.1:%d/graphql", cluster.heraldPorts[0])

	// Under the limit: Herald answers, as it does without nginx.
	for _, tc := range []struct {
		name                    string
		queryBytes, cookieBytes int
	}{
		{"a 9 KB query string", 9000, 0},
		{"a 40 KB query string", 40000, 0},
		{"a 20 KB cookie", 0, 20000},
	} {
		if status, _, body := get(direct, tc.queryBytes, tc.cookieBytes); status != 200 || string(body) != answer {
			t.Fatalf("%s straight to a replica: HTTP %d %.200s", tc.name, status, body)
		}
		if status, ctype, body := get(cluster.front, tc.queryBytes, tc.cookieBytes); status != 200 || string(body) != answer {
			t.Errorf("%s through nginx: HTTP %d %q %.200s; want Herald's 200 %s", tc.name, status, ctype, body, answer)
		}
	}

	// Over nginx's limit (64 KiB a line): nginx's own answer, as a GraphQL
	// error, saying what to do instead.
	status, ctype, body := get(cluster.front, 70000, 0)
	code, msg, err := graphQLErrorsOf(ctype, body)
	if status != http.StatusRequestURITooLong || err != nil || code != "BAD_REQUEST" || !strings.Contains(msg, "POST") {
		t.Errorf("a 70 KB query string through nginx: HTTP %d, %v, code %q, %q; want 414 BAD_REQUEST telling to POST", status, err, code, msg)
	}
	status, ctype, body = get(cluster.front, 0, 70000)
	code, msg, err = graphQLErrorsOf(ctype, body)
	if status != http.StatusRequestHeaderFieldsTooLarge || err != nil || code != "BAD_REQUEST" {
		t.Errorf("a 70 KB cookie through nginx: HTTP %d, %v, code %q, %q; want 431 BAD_REQUEST", status, err, code, msg)
	}
}
