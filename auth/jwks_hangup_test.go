package auth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestJWKSHangUpsCostOneFetch shows that clients presenting a made-up kid
// and leaving while the provider is slow cost it one request per
// MinRefreshInterval, however many of them there are and however they
// leave: the refetch the first one starts is shared by the later ones and
// is not cut when its starter goes away. Before, a hang-up (cancel) cut
// the fetch and uncounted it, so each hang-up bought another request.
func TestJWKSHangUpsCostOneFetch(t *testing.T) {
	for _, tc := range []struct {
		name string
		// deadline, if not 0, ends each caller's context; else the test
		// cancels it (the client hangs up) once the caller waits on the
		// refetch.
		deadline time.Duration
	}{
		{"hang-up", 0},
		{"deadline", 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			srv := newJWKSServer(t, jwksJSON(rsaJWK("a", &testRSA()[0].PublicKey)))
			j := newTestJWT(t, JWTOptions{JWKSURL: srv.URL, Now: clock.Now})
			clock.Advance(DefaultMinRefreshInterval)

			gate := make(chan struct{})
			srv.setGate(gate) // the provider is slow: nothing answers until gate
			var once sync.Once
			release := func() { once.Do(func() { close(gate) }) }
			defer release() // a failure must not leave the fetch hanging
			joined := make(chan struct{}, 100)
			j.jwks.joined = func() { joined <- struct{}{} }
			tok := rsTok(t, 0, "made-up")

			const callers = 8
			for i := range callers {
				ctx, cancel := context.WithCancel(t.Context())
				if tc.deadline != 0 {
					ctx, cancel = context.WithTimeout(t.Context(), tc.deadline)
				}
				done := make(chan error, 1)
				go func() {
					_, _, err := j.FromRequest(bearer(tok).WithContext(ctx))
					done <- err
				}()
				select {
				case <-joined:
				case <-time.After(10 * time.Second):
					t.Fatalf("caller %d never waited on a refetch", i)
				}
				if tc.deadline == 0 {
					cancel()
				}
				err := <-done
				// A client that hung up is not blamed for a token nobody
				// checked; one whose deadline ran out may also be told,
				// by a refetch that ended first, that the kid is unknown.
				unknownKid := errors.Is(err, ErrInvalidCredentials) && strings.Contains(err.Error(), `unknown key id "made-up"`)
				if gone := ctx.Err(); (gone == nil || !errors.Is(err, gone)) && !(tc.deadline != 0 && unknownKid) {
					t.Fatalf("caller %d, gone while the provider is slow, got %v; want its context error", i, err)
				}
				cancel()
				// Clients come one after another: give a fetch cut by
				// this one's leaving (as it was before) time to end.
				time.Sleep(10 * time.Millisecond)
			}
			if n := j.jwks.fetchCount(); n != 2 {
				t.Fatalf("%d callers with a made-up kid that left started %d fetches within one MinRefreshInterval; want 2 (start-up and one refetch)", callers, n)
			}

			// Once the provider answers, the kid is still unknown, and
			// asking again within MinRefreshInterval costs nothing more.
			srv.setGate(nil)
			release()
			_, _, err := j.FromRequest(bearer(tok))
			if !errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), `unknown key id "made-up"`) {
				t.Fatalf("caller after the provider answered got %v", err)
			}
			if n := srv.count(); n != 2 {
				t.Fatalf("JWKS fetched %d times, want 2", n)
			}
			clock.Advance(DefaultMinRefreshInterval)
			expect(t, j, srv, tok, `unknown key id "made-up"`, 3)
		})
	}
}
