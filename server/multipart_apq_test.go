package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMultipartPersistedQuery: Apollo's persisted queries link sends a
// subscription by its hash first; over the multipart Accept the unknown
// hash is answered as JSON (PERSISTED_QUERY_NOT_FOUND), the full query is
// then streamed, and the hash alone is streamed afterwards.
func TestMultipartPersistedQuery(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("mpTest-apq")
	sum := sha256.Sum256([]byte(postedSub))
	hash := hex.EncodeToString(sum[:])
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
	send := func(body map[string]any) (*http.Response, string) {
		b, _ := json.Marshal(body)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/graphql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", acceptApollo4)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/") {
			buf := make([]byte, 64)
			n, _ := io.ReadAtLeast(resp.Body, buf, len(multipartDelimiter))
			return resp, string(buf[:n])
		}
		b, _ = io.ReadAll(resp.Body)
		return resp, string(b)
	}
	vars := map[string]any{"r": room}
	resp, body := send(map[string]any{"variables": vars, "extensions": ext})
	t.Logf("hash only: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if !strings.Contains(body, "PERSISTED_QUERY_NOT_FOUND") && !strings.Contains(body, "PersistedQueryNotFound") {
		t.Errorf("hash only: %d %s", resp.StatusCode, body)
	}
	resp, body = send(map[string]any{"query": postedSub, "variables": vars, "extensions": ext})
	t.Logf("full: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if resp.Header.Get("Content-Type") != ctMultipart {
		t.Errorf("full query: %d %s", resp.StatusCode, body)
	}
	resp, body = send(map[string]any{"variables": vars, "extensions": ext})
	t.Logf("hash again: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	if resp.Header.Get("Content-Type") != ctMultipart {
		t.Errorf("hash again: %d %s", resp.StatusCode, body)
	}
}
