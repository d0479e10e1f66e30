package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestReplicaReservationBound: a replica holds at most maxReservations
// (10,000) streams reserved and not yet opened, whoever made them: the
// 10,000th PUT is 201, the next one 503 with the reason, and not 429 (no
// one user is over its own allowance).
func TestReplicaReservationBound(t *testing.T) {
	s, _ := newTestServer(t, nil)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	put := request{method: http.MethodPut, target: "/graphql"}
	made := 0
	reserve := func(user string) {
		t.Helper()
		q := put
		if user != "" {
			q = put.with("X-Herald-User", user)
		}
		if w := send(t, s, q); w.Code != http.StatusCreated {
			t.Fatalf("reservation %d (user %q): %d %s, want 201 within the replica's bound of %d", made+1, user, w.Code, w.Body.String(), maxReservations)
		}
		made++
	}
	// The anonymous clients' allowance, then users' up to the bound.
	for range maxAnonymousReservations {
		reserve("")
	}
	for u := 0; made < maxReservations; u++ {
		for i := 0; i < maxUserReservations && made < maxReservations; i++ {
			reserve(fmt.Sprintf("user%d", u))
		}
	}
	w := send(t, s, put.with("X-Herald-User", "one-too-many"))
	check(t, w, want{status: http.StatusServiceUnavailable, contentType: ctJSON, err: "too many stream reservations", code: "UNAVAILABLE"})
}

// TestLateExpiryLeavesOpenStream: a reservation's expiry that fires as its
// stream opens (its timer already running when claim stopped it) forgets
// only a reservation still unopened: the open stream stays held, and
// takes operations.
func TestLateExpiryLeavesOpenStream(t *testing.T) {
	r := newReplica(t, nil)
	token := r.reserve("ann")
	c := r.openSingle(token, "ann")
	tr := r.server.sseSingle
	tr.mu.Lock()
	h := tr.held[token]
	tr.mu.Unlock()
	if h == nil || h.st == nil {
		t.Fatal("the open stream is not held")
	}
	tr.expire(h) // as if its timer had fired just before claim stopped it
	if status, body := r.operation(token, "ann", "after", "{ __typename }", nil); status != http.StatusAccepted {
		t.Fatalf("operation on an open stream after its reservation's late expiry: %d %s, want 202", status, body)
	}
	c.expect("next", "after")
	c.expect("complete", "after")
}
