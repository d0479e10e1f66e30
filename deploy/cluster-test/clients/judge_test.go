package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// event is one delivery as the server would send it: its text and cursor.
type event struct{ text, cursor string }

func eventPayload(e event) json.RawMessage {
	b, _ := json.Marshal(map[string]any{
		"data":       map[string]any{"messagePosted": map[string]any{"text": e.text}},
		"extensions": map[string]any{"cursor": e.cursor},
	})
	return b
}

// TestDeliverFlagsGapsDuplicatesAndStrayMessages drives client.deliver
// with crafted event sequences: a gap, a duplicate, a reorder or a
// message of another room must each be exactly one violation, and the
// subscription must keep the cursor of the last message it accepted (the
// one it resumes after).
func TestDeliverFlagsGapsDuplicatesAndStrayMessages(t *testing.T) {
	for _, tc := range []struct {
		name       string
		events     []event
		violations int
		next       int
		cursor     string
		received   int
	}{
		{"in order", []event{{"r0:0", "c0"}, {"r0:1", "c1"}, {"r0:2", "c2"}}, 0, 3, "c2", 3},
		{"the last one again", []event{{"r0:0", "c0"}, {"r0:1", "c1"}, {"r0:1", "c1-again"}}, 1, 2, "c1", 2},
		{"an earlier one again, then on", []event{{"r0:0", "c0"}, {"r0:1", "c1"}, {"r0:2", "c2"}, {"r0:1", "c1-again"}, {"r0:3", "c3"}}, 1, 4, "c3", 4},
		{"a replay of two, then on", []event{{"r0:0", "c0"}, {"r0:1", "c1"}, {"r0:2", "c2"}, {"r0:1", "c1-again"}, {"r0:2", "c2-again"}, {"r0:3", "c3"}}, 2, 4, "c3", 4},
		{"swapped", []event{{"r0:0", "c0"}, {"r0:2", "c2"}, {"r0:1", "c1"}, {"r0:3", "c3"}}, 2, 4, "c3", 3},
		{"one missing", []event{{"r0:0", "c0"}, {"r0:2", "c2"}}, 1, 3, "c2", 2},
		{"one missing, then on", []event{{"r0:0", "c0"}, {"r0:2", "c2"}, {"r0:3", "c3"}, {"r0:4", "c4"}}, 1, 5, "c4", 4},
		{"the first missing", []event{{"r0:1", "c1"}}, 1, 2, "c1", 1},
		{"another room's message", []event{{"r1:0", "x0"}}, 1, 0, "seed", 0},
		{"the seed replayed", []event{{"r0:seed", "cs"}}, 1, 0, "seed", 0},
		{"no cursor", []event{{"r0:0", ""}}, 1, 1, "seed", 1},
		{"no cursor, then on", []event{{"r0:0", "c0"}, {"r0:1", ""}, {"r0:2", "c2"}}, 1, 3, "c2", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := testClient(t)
			s.cursor = "seed"
			for _, e := range tc.events {
				c.deliver(s, 1, eventPayload(e))
			}
			if c.rep.count != tc.violations {
				t.Errorf("%d violations %q; want %d", c.rep.count, c.rep.violations, tc.violations)
			}
			if s.next != tc.next || s.cursor != tc.cursor || s.received != tc.received {
				t.Errorf("after the events: next %d, cursor %q, received %d; want next %d, cursor %q, received %d",
					s.next, s.cursor, s.received, tc.next, tc.cursor, tc.received)
			}
		})
	}
}

// TestDeliverFlagsEventWithoutMessage: an event that carries no message
// is a violation, not a silent skip.
func TestDeliverFlagsEventWithoutMessage(t *testing.T) {
	for name, payload := range map[string]string{
		"data null":          `{"data":null}`,
		"messagePosted null": `{"data":{"messagePosted":null},"extensions":{"cursor":"c0"}}`,
		"not JSON":           `{"data":`,
	} {
		t.Run(name, func(t *testing.T) {
			c, s := testClient(t)
			c.deliver(s, 1, json.RawMessage(payload))
			if c.rep.count != 1 || s.next != 0 {
				t.Errorf("violations %q, next %d; want one violation and next still 0", c.rep.violations, s.next)
			}
		})
	}
}

// TestAllReceivedWantsExactlyWhatWasPosted: the settle loop ends early
// only when every subscription has exactly what was posted, and leaves
// every client unlocked.
func TestAllReceivedWantsExactlyWhatWasPosted(t *testing.T) {
	clients := func(posted int64, nexts ...int) []*client {
		r := &room{label: "r0"}
		r.posted.Store(posted)
		var cs []*client
		for i, n := range nexts {
			cs = append(cs, &client{n: i, subs: []*sub{{room: r, next: n}}})
		}
		return cs
	}
	for _, tc := range []struct {
		name    string
		clients []*client
		want    bool
	}{
		{"all complete", clients(5, 5, 5), true},
		{"nothing posted, nothing received", clients(0, 0), true},
		{"one behind", clients(5, 5, 4), false},
		{"one ahead of what was posted", clients(5, 6, 5), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := allReceived(tc.clients); got != tc.want {
				t.Errorf("allReceived = %v; want %v", got, tc.want)
			}
			for _, c := range tc.clients {
				if !c.mu.TryLock() {
					t.Fatalf("allReceived left client %d locked; want every client unlocked", c.n)
				}
				c.mu.Unlock()
			}
		})
	}
}

// countServer answers messageCount for each room ID from counts (absent:
// room null).
func countServer(t *testing.T, counts map[string]int) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Variables map[string]any `json:"variables"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		id, _ := req.Variables["id"].(string)
		w.Header().Set("Content-Type", "application/json")
		if n, ok := counts[id]; ok {
			_, _ = io.WriteString(w, `{"data":{"room":{"messageCount":`+strconv.Itoa(n)+`}}}`)
			return
		}
		_, _ = io.WriteString(w, `{"data":{"room":null}}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestCheckCountsWantsPostedPlusSeedEverywhere: every target (nginx and
// each replica) must count exactly posted+1 messages in every room; one
// stored twice or not at all anywhere is a violation. A wrong count is
// retried for 10 s before it counts, hence the parallel subtests.
func TestCheckCountsWantsPostedPlusSeedEverywhere(t *testing.T) {
	good := map[string]int{"A": 11, "B": 6}
	for _, tc := range []struct {
		name          string
		nginx, direct map[string]int
		violations    int
		word          string
	}{
		{"all right", good, good, 0, ""},
		{"a replica stored one twice", good, map[string]int{"A": 12, "B": 6}, 1, "twice"},
		{"a replica lacks one", good, map[string]int{"A": 11, "B": 5}, 1, "not at all"},
		{"nginx's answer stored one twice", map[string]int{"A": 11, "B": 7}, good, 1, "twice"},
		{"a replica lacks the room", good, map[string]int{"A": 11}, 1, "room not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			nginx, direct := countServer(t, tc.nginx), countServer(t, tc.direct)
			ra, rb := &room{label: "r0", id: "A"}, &room{label: "r1", id: "B"}
			ra.posted.Store(10)
			rb.posted.Store(5)
			rep := testReport(t)
			cfg := config{url: nginx.URL, direct: []string{direct.URL}}
			ok := checkCounts(context.Background(), cfg, &httpClient{base: nginx.URL, c: nginx.Client()}, []*room{ra, rb}, rep)
			if ok != (tc.violations == 0) || rep.count != tc.violations {
				t.Fatalf("checkCounts = %v with violations %q; want %v with %d", ok, rep.violations, tc.violations == 0, tc.violations)
			}
			if tc.word != "" && !strings.Contains(rep.violations[0], tc.word) {
				t.Errorf("violation %q; want it to say %q", rep.violations[0], tc.word)
			}
		})
	}
}
