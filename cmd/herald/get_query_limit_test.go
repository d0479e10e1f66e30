package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestGetQueryStringHeldToMaxBodyBytes: a GET's query string is held to
// --max-body-bytes as a POST's body is. One within it is served even when
// it is larger than net/http's default header limit (1 MiB), which
// answered it with a bare text/plain 431; one over it gets Herald's own
// 414 with a GraphQL error.
func TestGetQueryStringHeldToMaxBodyBytes(t *testing.T) {
	const maxBody = 4 << 20
	cfg := testConfig(t, t.TempDir())
	cfg.MaxBodyBytes = maxBody
	a := startTestApp(t, cfg)
	base := "http://" + a.Addr() + "/graphql?query="
	client := &http.Client{Timeout: 30 * time.Second}
	for _, tt := range []struct {
		name     string
		size     int // of the query string
		wantCode int
		wantErr  string // extensions.code, "" for data
	}{
		{name: "2 MiB, within the limit", size: 2 << 20, wantCode: http.StatusOK},
		{name: "just over the limit", size: maxBody + 1024, wantCode: http.StatusRequestURITooLong, wantErr: "BAD_REQUEST"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// {rooms{totalCount}} followed by a comment: a valid query.
			prefix := url.QueryEscape("{rooms{totalCount}}#")
			resp, err := client.Get(base + prefix + strings.Repeat("x", tt.size-len("query=")-len(prefix)))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			var out struct {
				Data   json.RawMessage `json:"data"`
				Errors []gqlError      `json:"errors"`
			}
			_ = json.Unmarshal(body, &out)
			var code string
			if len(out.Errors) > 0 {
				code, _ = out.Errors[0].Extensions["code"].(string)
			}
			if resp.StatusCode != tt.wantCode || (tt.wantErr == "") != (out.Data != nil) || code != tt.wantErr {
				t.Errorf("GET with a query string of %d bytes (--max-body-bytes %d): %d %s %q; want %d with code %q",
					tt.size, maxBody, resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.wantCode, tt.wantErr)
			}
		})
	}
}
