package server

import (
	"net/http"
	"testing"
)

// TestHandOverChecksTheUser: a reservation made on one
// replica is handed over the relay only to its own user (handOver). Another
// user who opens the stream with its token on another replica gets 404, as
// on the reservation's own replica, and the reservation stays its user's,
// who can still open it (TestSSESingleRequestErrors checks the rule on one
// replica). Otherwise anyone holding the token would take the stream, and
// its user would be told that it does not exist.
func TestHandOverChecksTheUser(t *testing.T) {
	relay := NewLocalRelay()
	shared := func(o *Options) { o.Relay = relay }
	a, b := newReplica(t, shared), newReplica(t, shared)

	token := b.reserve("ann")
	h := http.Header{streamTokenHeader: {token}, "X-Herald-User": {"bob"}}
	if c, status, body := a.openSSE(sseRequest{method: http.MethodGet, header: h}); c != nil || status != http.StatusNotFound {
		if c != nil {
			_ = c.resp.Body.Close()
		}
		t.Fatalf("bob opening ann's reservation on another replica: %d %s (stream opened: %v), want 404", status, body, c != nil)
	}
	c := a.openSingle(token, "ann") // still ann's
	_ = c.resp.Body.Close()
}
