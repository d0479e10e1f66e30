package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// TestClientLeavingDuringRelayIsNotAnError: a client of graphql-sse's
// single connection mode that hangs up while its request looks for the
// stream's replica (for up to relayPatience) is no fault of the server's:
// it is counted as "canceled", not as an error of the relay (an alert on
// the error rate would fire on clients leaving pages), and logged at debug
// level only (anyone can make up tokens of the right form and hang up, one
// ERROR line per request). No log line, at any level, carries the stream
// token, the stream's credential.
func TestClientLeavingDuringRelayIsNotAnError(t *testing.T) {
	logs := &testrig.LogBuffer{}
	r := newReplica(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var tokens []string
	for i := range 4 {
		tok := madeUpStreamToken(t)
		tokens = append(tokens, tok)
		hangUpOnRelay(t, r, tok, i%2 == 1, 150*time.Millisecond)
	}
	canceled := `herald_sse_relayed_requests_total{outcome="canceled"}`
	waitFor(t, "the requests to be counted", func() bool { return metricsTestScrape(t, r)[canceled] == 4 })
	if got := metricsTestScrape(t, r)[`herald_sse_relayed_requests_total{outcome="error"}`]; got != 0 {
		t.Errorf(`outcome="error" = %v after clients hung up; want 0`, got)
	}
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			t.Errorf("a client hanging up was logged above debug: %s", line)
		}
		for _, tok := range tokens {
			if strings.Contains(line, tok) {
				t.Errorf("the log carries the stream token %s: %s", tok, line)
			}
		}
	}
}

// madeUpStreamToken makes a token of the stream tokens' form that no
// replica holds.
func madeUpStreamToken(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	if !validStreamToken(tok) {
		t.Fatalf("token %q is not of the stream tokens' form", tok)
	}
	return tok
}

// hangUpOnRelay sends a single-connection-mode request for token and hangs
// up after wait, as a browser leaving a page does: an operation (POST) or
// the stream's opening (GET with Accept: text/event-stream).
func hangUpOnRelay(t *testing.T, r *replica, token string, openStream bool, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	method, body := http.MethodPost, `{"query":"{ __typename }"}`
	if openStream {
		method, body = http.MethodGet, ""
	}
	req, err := http.NewRequestWithContext(ctx, method, r.http.URL+"/graphql", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if openStream {
		req.Header.Set("Accept", "text/event-stream")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(streamTokenHeader, token)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the request answered %d within %s; the test needs it still waiting for the stream's replica", resp.StatusCode, wait)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request: %v", err)
	}
}
