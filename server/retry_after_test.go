package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUnavailableCarriesRetryAfter: every 503 a client may retry (a
// draining or full replica, credentials that cannot be checked just then)
// says when with Retry-After (RFC 9110 section 10.2.3), on every
// transport: a WebSocket upgrade, an event stream, a multipart stream, a
// plain POST, a single-connection-mode reservation; and /readyz's 503.
func TestUnavailableCarriesRetryAfter(t *testing.T) {
	upgrade := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Sec-WebSocket-Protocol", subprotocolTransportWS)
		return r
	}
	stream := func(accept string) func() *http.Request {
		return func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"subscription { ticks }"}`))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Accept", accept)
			return r
		}
	}
	query := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"{ whoami }"}`))
		r.Header.Set("Content-Type", "application/json")
		return r
	}
	reserve := func() *http.Request { return httptest.NewRequest(http.MethodPut, "/graphql", nil) }
	readyz := func() *http.Request { return httptest.NewRequest(http.MethodGet, "/readyz", nil) }

	type condition int
	const (
		draining condition = iota
		full
		authUnavailable
		checkFailing // a readiness check
	)
	tests := []struct {
		name    string
		when    condition
		request func() *http.Request
	}{
		{"WebSocket upgrade while draining", draining, upgrade},
		{"WebSocket upgrade when full", full, upgrade},
		{"WebSocket upgrade, authentication unavailable", authUnavailable, upgrade},
		{"event stream while draining", draining, stream(mediaEventStream)},
		{"event stream when full", full, stream(mediaEventStream)},
		{"event stream, authentication unavailable", authUnavailable, stream(mediaEventStream)},
		{"multipart stream while draining", draining, stream(acceptMultipart)},
		{"multipart stream when full", full, stream(acceptMultipart)},
		{"multipart stream, authentication unavailable", authUnavailable, stream(acceptMultipart)},
		{"query, authentication unavailable", authUnavailable, query},
		{"stream reservation while draining", draining, reserve},
		{"readiness while draining", draining, readyz},
		{"readiness, a check failing", checkFailing, readyz},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, func(o *Options) {
				switch tt.when {
				case full:
					o.Limits.MaxConnections = 1
				case authUnavailable:
					o.Authenticator = failing{}
				case checkFailing:
					o.Readiness = func(context.Context) []Check { return []Check{{Name: "store", OK: false}} }
				}
			})
			switch tt.when {
			case draining:
				s.StartDrain()
			case full:
				if s.sessions.admit() != admitted {
					t.Fatal("the first connection was not admitted")
				}
				defer s.sessions.done()
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, tt.request())
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503: %s", w.Code, w.Body)
			}
			if got := w.Header().Get("Retry-After"); got != retryAfterUnavailable {
				t.Errorf("Retry-After %q, want %q", got, retryAfterUnavailable)
			}
		})
	}
}
