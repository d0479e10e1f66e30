package server

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSlowRelayedStartIsTakenBack shows that a subscription relayed to the
// replica holding its stream, whose start takes longer than a relayed
// request may (relayServe), is taken back and answered 503, so that the
// client's retry starts it. The sender used to give up first (10 s, against
// the holder's 15 s) with a 502 "try again", while the holder started the
// operation anyway: the stream got its events, and the retry got 409.
func TestSlowRelayedStartIsTakenBack(t *testing.T) {
	relay := NewLocalRelay()
	hold := &heldStart{}
	a := newReplica(t, func(o *Options) {
		o.Relay = relay
		hold.ExecutableSchema = o.Schema
		o.Schema = hold
	})
	a.server.sseSingle.relayServe = time.Second
	b := newReplica(t, func(o *Options) { o.Relay = relay })
	room := a.room("slow-start")
	vars := map[string]any{"r": room}

	token := b.reserve("ann")
	c := a.openSingle(token, "ann") // the stream is on a
	hold.arm()
	type result struct {
		status int
		body   string
	}
	posted := make(chan result, 1)
	go func() {
		status, body := b.operation(token, "ann", "s1", postedSub, vars)
		posted <- result{status, body}
	}()
	select {
	case <-hold.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the operation's start was never held on the holder")
	}
	time.Sleep(1500 * time.Millisecond) // past relayServe
	close(hold.release)
	var first result
	select {
	case first = <-posted:
	case <-time.After(10 * time.Second):
		t.Fatal("the relayed POST was never answered")
	}
	if first.status != http.StatusServiceUnavailable || !strings.Contains(first.body, "try again") {
		t.Fatalf("a start that outlasted relayServe: %d %s, want 503 saying to try again", first.status, strings.TrimSpace(first.body))
	}
	waitFor(t, "the taken-back operation to leave its execution", func() bool { return a.members() == 0 })

	// The retry the 503 asks for starts it, and it gets the room's events.
	b.mustOperate(token, "ann", "s1", postedSub, vars)
	waitFor(t, "s1 to join", func() bool { return a.members() == 1 })
	a.post(room, "bob", "after the retry")
	if got := c.expect("next", "s1").text(t); got != "after the retry" {
		t.Fatalf("s1 got %q, want the post after the retry", got)
	}
}

// TestReservedStreamIsNotFoundForAnotherUser shows that an operation on a
// reservation not yet opened is answered 404 for another user, as for any
// token held for another user, here and through the relay: it answered 409
// ("reserved but not open") before authenticating, so anyone holding the
// token learnt that it was reserved. Its user still gets 409.
func TestReservedStreamIsNotFoundForAnotherUser(t *testing.T) {
	relay := NewLocalRelay()
	shared := func(o *Options) { o.Relay = relay }
	a, b := newReplica(t, shared), newReplica(t, shared)
	token := a.reserve("ann")
	for name, r := range map[string]*replica{"holder": a, "through the relay": b} {
		if status, body := r.operation(token, "bob", "x", `{ __typename }`, nil); status != http.StatusNotFound {
			t.Errorf("%s: bob's POST on ann's reservation: %d %s, want 404", name, status, strings.TrimSpace(body))
		}
		if status, body := r.do(singleReq{method: http.MethodDelete, token: token, user: "bob", query: "operationId=x"}); status != http.StatusNotFound {
			t.Errorf("%s: bob's DELETE on ann's reservation: %d %s, want 404", name, status, strings.TrimSpace(body))
		}
		if status, body := r.operation(token, "ann", "x", `{ __typename }`, nil); status != http.StatusConflict {
			t.Errorf("%s: ann's POST on her unopened reservation: %d %s, want 409", name, status, strings.TrimSpace(body))
		}
	}
}

// TestClientCannotSendRelayClaim shows that a client cannot take over a
// reservation by sending the relay's own CLAIM method with a user of its
// choosing: any method but GET, POST, PUT and DELETE is answered 405 before
// a transport sees it, and the reservation stays its user's.
func TestClientCannotSendRelayClaim(t *testing.T) {
	relay := NewLocalRelay()
	shared := func(o *Options) { o.Relay = relay }
	a, b := newReplica(t, shared), newReplica(t, shared)
	token := a.reserve("ann")
	for _, m := range []string{"CLAIM", "claim"} {
		for _, user := range []string{"", "ann", "mallory"} {
			req, _ := http.NewRequest(m, b.http.URL+"/graphql", nil)
			req.Header.Set(streamTokenHeader, token)
			req.Header.Set(relayUserHeader, "mallory")
			req.Header.Set(relayMethodHeader, claimMethod)
			if user != "" {
				req.Header.Set("X-Herald-User", user)
			}
			resp, err := doBounded(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Fatalf("%s as %q: %d, want 405", m, user, resp.StatusCode)
			}
		}
	}
	a.openSingle(token, "ann") // the reservation is still there, ann's
}
