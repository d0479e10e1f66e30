package server

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Limits that another transport, or another method, got around.

// A mutation sent as an event stream (graphql-sse sends every operation
// so) to a replica holding its --max-connections was refused with 503
// before it ran, yet spent the user's mutation tokens: they were taken
// before the stream was admitted. A client retrying 503s wore down its
// allowance with nothing run. They are given back now.
func TestRefusedStreamMutationSpendsNoTokens(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.Limits.MaxConnections = 1
		o.Limits.MutationRate = 0.01 // one token per 100 s: no refill within the test
		o.Limits.MutationBurst = 2
	})
	room := r.room("full-sse")
	const post = `mutation($r: ID!) { postMessage(roomId: $r, text: "hi") { id } }`
	vars := map[string]any{"r": room}

	// Another user's socket takes the replica's one place.
	r.dialTransport("holder")
	waitFor(t, "the socket to hold its place", func() bool { return r.placesTaken() == 1 })

	h := http.Header{"X-Herald-User": {"alice"}}
	for i := range 2 {
		c, status, body := r.openSSE(sseRequest{method: http.MethodPost, query: post, vars: vars, header: h})
		if c != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "UNAVAILABLE") {
			t.Fatalf("SSE mutation %d on a full replica: status %d body %s; want 503 UNAVAILABLE", i, status, body)
		}
	}
	// Nothing ran: alice's burst of 2 is intact.
	status, header, body := r.graphqlPost("alice", post, vars, nil)
	if status != http.StatusOK || errorCode(body) != "" {
		t.Fatalf("alice's first mutation that actually runs: %d (Retry-After %q) %v; "+
			"want 200: the two SSE mutations refused with 503 ran nothing but spent her mutation tokens",
			status, header.Get("Retry-After"), body)
	}
}

// --max-body-bytes bounds what a request may make the replica read and
// parse. The same document sent with GET, in the query string, was read
// and run whatever its size (up to net/http's 1 MiB on headers): 414 now.
func TestGETQueryStringIsHeldToTheBodyLimit(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.MaxBodyBytes = 1024 })
	doc := "{ rooms(first: 1) { totalCount } } #" + strings.Repeat("x", 64<<10)

	status, _, _ := r.graphqlPost("", doc, nil, nil)
	if status != http.StatusRequestEntityTooLarge {
		t.Fatalf("POST of a %d-byte document with --max-body-bytes 1024: %d, want 413", len(doc), status)
	}
	resp, err := getBounded(r.http.URL + "/graphql?" + url.Values{"query": {doc}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestURITooLong || firstErrorCode(t, body) != codeBadRequest {
		t.Fatalf("GET of the same %d-byte document: %d %.200s; want 414 BAD_REQUEST like the POST's 413, "+
			"not read and run past --max-body-bytes", len(doc), resp.StatusCode, body)
	}
}

// graphql-sse's single connection mode reserves a stream with a PUT, which
// anyone may send and which holds a place for 30 s. A replica held at most
// 10,000 reservations, whoever made them: one client sending PUTs in a
// loop took them all (10,000 in under 2 s), and every other user's
// reservation was refused for as long as it went on. One user holds at
// most maxUserReservations not yet opened, and anonymous clients together
// maxAnonymousReservations, each refused beyond with 429 and Retry-After.
func TestReservationsAreBoundedPerUser(t *testing.T) {
	r := newReplica(t, nil)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	put := func(user string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, r.http.URL+"/graphql", nil)
		if user != "" {
			req.Header.Set("X-Herald-User", user)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	for _, tc := range []struct {
		user  string
		limit int
	}{{"alice", maxUserReservations}, {"", maxAnonymousReservations}} {
		for i := range tc.limit {
			if status, _ := put(tc.user); status != http.StatusCreated {
				t.Fatalf("user %q: reservation %d refused with %d, within the %d allowed", tc.user, i+1, status, tc.limit)
			}
		}
		status, retry := put(tc.user)
		if secs, err := strconv.Atoi(retry); status != http.StatusTooManyRequests || err != nil || secs < 1 {
			t.Fatalf("user %q: reservation %d answered %d, Retry-After %q; want 429 with a wait", tc.user, tc.limit+1, status, retry)
		}
	}
	if status, _ := put("bob"); status != http.StatusCreated {
		t.Fatalf("bob's reservation after alice's and the anonymous clients' were refused: %d, want 201", status)
	}
}
