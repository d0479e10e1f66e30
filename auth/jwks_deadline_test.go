package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hangingJWKSServer serves a JWK Set until hang is set; from then on every
// request blocks until its client goes away (a provider that accepts
// connections but never answers: blackholed, overloaded).
type hangingJWKSServer struct {
	*httptest.Server
	hang     atomic.Bool
	requests atomic.Int32
}

func newHangingJWKSServer(t *testing.T, body []byte) *hangingJWKSServer {
	s := &hangingJWKSServer{}
	stop := make(chan struct{})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.hang.Load() {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		w.Write(body)
	}))
	var once sync.Once
	t.Cleanup(s.Close)                                    // runs second
	t.Cleanup(func() { once.Do(func() { close(stop) }) }) // runs first
	return s
}

// TestJWKSStaleSetOutlivesCallerDeadline shows that a set past CacheTTL
// keeps verifying the tokens of its keys while the provider hangs, for
// callers with deadlines shorter than FetchTimeout (a WebSocket's
// connection_init is checked within InitTimeout, 3 s by default; a fetch may
// take 10 s), and that the refetch their deadlines outlast counts against
// MinRefreshInterval. Before, each connection_init started a refetch of its
// own, every one failed with its context error (4408), and the provider got
// one request per attempt.
//
// The caller deadline is 300 ms and FetchTimeout 5 s, mirroring the 3 s and
// 10 s defaults.
func TestJWKSStaleSetOutlivesCallerDeadline(t *testing.T) {
	rsaKeys := testRSA()
	clock := newClock()
	srv := newHangingJWKSServer(t, jwksJSON(rsaJWK("a", &rsaKeys[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, FetchTimeout: 5 * time.Second, Now: clock.Now})
	tok := rsTok(t, 0, "a")

	// Fresh set: works.
	if _, ok, err := j.FromInitPayload(t.Context(), map[string]any{"Authorization": tok}); !ok || err != nil {
		t.Fatalf("fresh set: %v, %v", ok, err)
	}

	srv.hang.Store(true)
	clock.Advance(DefaultJWKSCacheTTL + time.Minute) // set is stale

	const attempts = 5
	failed := 0
	for i := range attempts {
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, ok, err := j.FromInitPayload(ctx, map[string]any{"Authorization": tok})
		cancel()
		if !ok || err != nil {
			failed++
			t.Logf("connection_init %d with a cached key: ok=%v err=%v", i, ok, err)
		}
	}
	fetches := int(srv.requests.Load())
	t.Logf("provider requests: %d (1 at start), failures %d/%d", fetches, failed, attempts)
	// At most one refetch within MinRefreshInterval (the clock does not
	// move), and the cached key keeps serving every caller, each of which
	// stops waiting for the refetch at its deadline.
	if fetches > 2 {
		t.Errorf("provider fetched %d times within one MinRefreshInterval, want at most 2 (start-up and one refetch)", fetches)
	}
	if failed > 0 {
		t.Errorf("%d of %d connection_inits with a valid token under a cached key failed while the provider hangs; want the cached keys to keep working", failed, attempts)
	}
}

// TestJWKSDeadlineCountsAgainstRateBound shows that tokens with made-up
// kids cost a provider slower than the callers' deadlines at most one
// request per MinRefreshInterval, as JWTOptions promises "whatever tokens
// clients present": a refetch that outlasts the callers' deadlines counts,
// as does one whose callers hang up (TestJWKSHangUpsCostOneFetch).
func TestJWKSDeadlineCountsAgainstRateBound(t *testing.T) {
	clock := newClock()
	srv := newHangingJWKSServer(t, jwksJSON(rsaJWK("a", &testRSA()[0].PublicKey)))
	j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, FetchTimeout: 5 * time.Second, Now: clock.Now})
	srv.hang.Store(true) // slower than any caller's deadline below
	clock.Advance(DefaultMinRefreshInterval)

	tok := rsTok(t, 0, "made-up")
	const attempts = 5
	for range attempts {
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		j.FromInitPayload(ctx, map[string]any{"Authorization": tok})
		cancel()
	}
	// The clock has not moved: one refetch at most after the start-up fetch.
	if n := int(srv.requests.Load()); n > 2 {
		t.Errorf("%d connection_inits with a made-up kid cost the provider %d requests within one MinRefreshInterval; want at most 2 (start-up and one refetch)", attempts, n)
	}
}
