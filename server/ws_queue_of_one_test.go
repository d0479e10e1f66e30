package server

import (
	"strings"
	"testing"
)

// TestQueueOfOneAnswersQueries: --ws-queue 1, the smallest value the
// config accepts, still answers queries on both subprotocols. A query's
// answer is its result and its complete back to back; the queue once took
// a complete past its byte limit but not past its item limit, so every
// query closed its socket with 1013 "slow consumer".
func TestQueueOfOneAnswersQueries(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.QueueMessages = 1 })
	for _, tc := range []struct {
		name, start, result string
		dial                func(string) *wsClient
	}{
		{"graphql-transport-ws", "subscribe", "next", r.dialTransport},
		{"graphql-ws", "start", "data", r.dialLegacy},
	} {
		// No subtests: the harness's clients fail the test they were
		// dialled for.
		c := tc.dial("ann")
		for i := range 3 {
			c.subscribe(tc.start, "q", `{ rooms { totalCount } }`, nil)
			if f := c.next(); f.Type != tc.result || !strings.Contains(string(f.Payload), "totalCount") {
				t.Fatalf("%s, query %d: got %s, want its %s", tc.name, i, f.raw, tc.result)
			}
			if f := c.next(); f.Type != "complete" {
				t.Fatalf("%s, query %d: got %s after the result, want its complete", tc.name, i, f.raw)
			}
		}
	}
}
