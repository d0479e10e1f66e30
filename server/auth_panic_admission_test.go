package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/heraldhq/herald/auth"
)

// upgradePanickingAuthenticator is auth.Dev whose check of a request's
// credentials panics when the request carries X-Test-Panic.
type upgradePanickingAuthenticator struct{ auth.Dev }

func (a upgradePanickingAuthenticator) FromRequest(r *http.Request) (auth.Identity, bool, error) {
	if r.Header.Get("X-Test-Panic") != "" {
		panic("the authenticator panicked on the upgrade request")
	}
	return a.Dev.FromRequest(r)
}

// TestUpgradeAuthPanicReleasesItsAdmission: an upgrade whose
// credentials check panics is refused, and the place it was admitted to
// under --max-connections is given back; otherwise every such upgrade
// takes a place until restart, and the replica refuses every WebSocket
// and stream once they add up to the limit.
func TestUpgradeAuthPanicReleasesItsAdmission(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxConnections = 2
		o.Authenticator = upgradePanickingAuthenticator{}
	})
	for i := range 2 {
		d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
		conn, resp, err := d.Dial(r.wsURL, http.Header{"X-Test-Panic": {"1"}})
		if err == nil {
			_ = conn.Close()
			t.Fatalf("upgrade %d whose credentials check panicked was accepted", i)
		}
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			t.Logf("upgrade %d whose credentials check panicked: %d %s", i, resp.StatusCode, strings.TrimSpace(string(b)))
		}
	}
	// Nothing is open: a socket and an event stream must both be admitted.
	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(r.wsURL, nil)
	if err != nil {
		status, body := 0, ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			status, body = resp.StatusCode, strings.TrimSpace(string(b))
		}
		t.Fatalf("a WebSocket on a replica with nothing open, after 2 upgrades whose credentials check panicked: %v, %d %s", err, status, body)
	}
	_ = conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.server.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with nothing open: %v", err)
	}
}

// TestRequestAuthPanicIsUnavailable: a plain request whose credentials
// check panics is answered as one whose credentials could not be checked
// (README: 503 with Retry-After), as a socket's connection_init (1013)
// and, with the fix, its upgrade are; not 500, which clients do not retry.
func TestRequestAuthPanicIsUnavailable(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Authenticator = upgradePanickingAuthenticator{} })
	req, err := http.NewRequest(http.MethodPost, r.http.URL+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Panic", "1")
	resp, err := doBounded(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a request whose credentials check panicked: %d (Retry-After %q) %s; want 503 with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), strings.TrimSpace(string(b)))
	}
}

// TestFullRefusalOfASocketNamesWhatHoldsTheLimit: --max-connections
// bounds WebSockets and HTTP streams together. A socket refused while
// streams hold the limit must not be told the replica holds its limit of
// WebSockets: it holds none, and an operator reading the 503 (or the
// client's log) would look for sockets that are not there.
func TestFullRefusalOfASocketNamesWhatHoldsTheLimit(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Limits.MaxConnections = 1 })
	room := r.room("full-message")
	c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatal(body)
	}
	defer c.resp.Body.Close()
	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, resp, err := d.Dial(r.wsURL, nil)
	if err == nil {
		_ = conn.Close()
		t.Fatal("a socket was admitted while a stream held the limit of 1")
	}
	if resp == nil {
		t.Fatalf("dial: %v, no response", err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "streams") {
		t.Fatalf("a socket refused while one event stream (no WebSocket) holds the limit: %d %s; want 503 saying the limit counts HTTP streams too",
			resp.StatusCode, strings.TrimSpace(string(b)))
	}
}
