package server

import (
	"net/http"
	"strings"
	"testing"
)

// TestSSEMutationOverBurstIsAnEvent: README ("Subscriptions over
// Server-Sent Events"): only errors in the request itself get a JSON answer
// with a status; errors found when the operation is checked arrive as a
// next event, since an EventSource (and graphql-sse's client) cannot read
// anything but an event stream. A mutation with more root fields than
// MutationBurst is refused with LIMIT_EXCEEDED "as a validation error"
// (runner.mutationAllowed). Over a stream it must be a next event, not a
// 200 application/json body that the client, which asked only for
// text/event-stream, parses as an empty event stream.
func TestSSEMutationOverBurstIsAnEvent(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) {
		o.Limits.MutationRate = 1
		o.Limits.MutationBurst = 1
	})
	req := post(`{"query":"mutation { a: bump b: bump }"}`).
		with("Accept", "text/event-stream").with("X-Herald-User", "ann")
	w := send(t, s, req)
	ct := w.Header().Get("Content-Type")
	if !strings.HasPrefix(ct, mediaEventStream) {
		t.Fatalf("Accept: text/event-stream, a mutation beyond the burst: status %d, Content-Type %q, body %s; "+
			"want an event stream whose next event holds the LIMIT_EXCEEDED error", w.Code, ct, w.Body)
	}
	body := w.Body.String()
	if !strings.Contains(body, "event: next\n") || !strings.Contains(body, codeLimitExceeded) ||
		!strings.Contains(body, "event: complete\n") {
		t.Fatalf("stream %q: want a next event with %s, then complete", body, codeLimitExceeded)
	}
}

// TestSingleStreamOfAnotherUserIsNotFound: README (single
// connection mode): "a token held for another user is answered as if it
// did not exist (404)". Another user who GETs a stream that is already
// open must get 404, as for a reservation (and as on another replica,
// where handOver checks the user first), not 409 "already open", which
// tells them the token is live.
func TestSingleStreamOfAnotherUserIsNotFound(t *testing.T) {
	r := newReplica(t, nil)
	token := r.reserve("ann")
	r.openSingle(token, "ann")
	status, body := r.do(singleReq{method: http.MethodGet, token: token, user: "bob", accept: "text/event-stream"})
	if status != http.StatusNotFound {
		t.Fatalf("bob GETs ann's open stream: %d %s, want 404 as for any token held for another user", status, body)
	}
}

// TestSSERequestErrorEventHasNoData: the GraphQL spec (Response, "data":
// if an error was raised before execution begins, the data entry should not
// be present) and Herald's own wireResponse ("omits data when there is
// none, as the spec requires for request errors"); graphql-sse's reference
// server emits {"errors":[...]} alone. Over an event stream a validation
// error's next event carries "data":null, which tells a client that
// execution began and failed.
func TestSSERequestErrorEventHasNoData(t *testing.T) {
	s, _ := newTestServer(t, nil)
	w := send(t, s, post(`{"query":"{ nope }"}`).with("Accept", "text/event-stream"))
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, mediaEventStream) {
		t.Fatalf("status %d Content-Type %q, want an event stream", w.Code, ct)
	}
	var data string
	for line := range strings.SplitSeq(w.Body.String(), "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok && strings.Contains(d, "errors") {
			data = d
		}
	}
	if data == "" {
		t.Fatalf("no next event with errors in %q", w.Body)
	}
	if strings.Contains(data, `"data"`) {
		t.Fatalf("validation error event data %s: want no data entry (the operation never executed)", data)
	}
}

// TestSSEResumeThroughRootFragment: README (Subscriptions over
// Server-Sent Events, Resume): a reconnecting EventSource sends
// Last-Event-ID and Herald puts it into the variable the subscription
// passes as `after`; only a subscription that does not pass it in a
// variable is refused. A subscription whose root field sits in an inline
// fragment (valid GraphQL: the single-root-field rule looks through
// fragments) does pass $after, yet findCursor looks at bare root fields
// only, so every reconnect is refused with BAD_USER_INPUT ("does not pass
// its after argument in a variable") instead of resuming.
func TestSSEResumeThroughRootFragment(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("frag")
	const fragSub = `subscription($r: ID!, $after: String) { ... on Subscription { messagePosted(roomId: $r, after: $after) { text } } }`
	c, status, body := r.openSSE(sseRequest{method: http.MethodGet, query: fragSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatalf("status %d: %s", status, body)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	r.post(room, "a", "m0")
	first := c.next()
	if first.postedText(t) != "m0" || first.id == "" {
		t.Fatalf("first event %+v, want m0 with its cursor as id", first)
	}
	_ = c.resp.Body.Close()
	waitFor(t, "the stream to go", func() bool { return r.members() == 0 })
	r.post(room, "a", "m1")

	// The EventSource reconnects with the id of the last event it got.
	c2, status, body := r.openSSE(sseRequest{method: http.MethodGet, query: fragSub, vars: map[string]any{"r": room},
		header: http.Header{"Last-Event-Id": {first.id}}})
	if c2 == nil {
		t.Fatalf("reconnect: status %d: %s", status, body)
	}
	ev := c2.next()
	if _, errs, _ := ev.result(t); len(errs) > 0 {
		t.Fatalf("reconnect with Last-Event-ID: got error %s, want m1 (the subscription passes $after)", ev.data)
	}
	if got := ev.postedText(t); got != "m1" {
		t.Fatalf("resumed stream got %q, want m1", got)
	}
}
