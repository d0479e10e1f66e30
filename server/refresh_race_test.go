package server

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
)

// expiryAuth accepts any token as alice's, expiring at the instant the
// test named the token by.
type expiryAuth struct{ at map[string]time.Time }

func (expiryAuth) FromRequest(*http.Request) (auth.Identity, bool, error) {
	return auth.Identity{}, false, nil
}

func (expiryAuth) FromInitPayload(context.Context, map[string]any) (auth.Identity, bool, error) {
	return auth.Identity{}, false, nil
}

func (a expiryAuth) FromToken(_ context.Context, token string) (auth.Identity, bool, error) {
	return auth.Identity{UserID: "alice", ExpiresAt: a.at[token]}, true, nil
}

// TestConcurrentRefreshesKeepTheirExpiry: two refreshes at once on one
// socket (two refreshSession mutations in flight) leave the socket with
// the identity of one and the expiry of the same one. Otherwise the
// keeper would close the socket with 4403 when the token it no longer
// uses expires, or keep it open past the expiry of the one it does.
func TestConcurrentRefreshesKeepTheirExpiry(t *testing.T) {
	t0 := time.Now()
	authn := expiryAuth{at: map[string]time.Time{"soon": t0.Add(time.Minute), "late": t0.Add(time.Hour)}}
	c := &wsConn{t: &wsTransport{authn: authn, keeper: newKeeper(wsConfig{})}, slot: -1}
	c.identity.Store(&auth.Identity{UserID: "alice"})
	for round := range 5000 {
		var wg sync.WaitGroup
		for _, token := range []string{"soon", "late"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := c.Refresh(context.Background(), token); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if got, want := c.machine.expires.Load(), c.identity.Load().ExpiresAt.UnixNano(); got != want {
			t.Fatalf("round %d: the socket expires at %v, its identity's credentials at %v",
				round, time.Unix(0, got).Sub(t0), time.Unix(0, want).Sub(t0))
		}
	}
}
