package server

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestEventStreamTiesWithOtherTypes: an Accept header that
// prefers text/event-stream as much as another type (other than JSON,
// which the distinct-connections mode yields to) gets the event stream
// (acceptsEventStream: sse >= best), not 406.
func TestEventStreamTiesWithOtherTypes(t *testing.T) {
	r := newReplica(t, nil)
	h := http.Header{"Accept": {"text/event-stream, text/html"}}
	c, status, body := r.openSSE(sseRequest{method: http.MethodGet, query: `{ __typename }`, header: h})
	if c == nil {
		t.Fatalf("GET a query with Accept %q: %d %s, want 200 and an event stream", h.Get("Accept"), status, body)
	}
	if ev := c.next(); ev.event != "next" || !strings.Contains(ev.data, `"__typename":"Query"`) {
		t.Errorf("first event %q %s, want next with the query's result", ev.event, ev.data)
	}
}

// TestCompleteEventIsDispatched: the distinct-connections
// "complete" event carries a data field ("event: complete\ndata:\n\n"):
// an EventSource dispatches no event whose data buffer is empty (HTML,
// "dispatch the event": an event with no data line is dropped), so a
// complete without one would never reach a browser client, which would
// take the stream's end for an error and reconnect. The tests' own parser
// dispatches such events, hence this look at the raw body.
func TestCompleteEventIsDispatched(t *testing.T) {
	r := newReplica(t, nil)
	a := mustExchange(t, http.MethodGet, r.http.URL+"/graphql?query="+url.QueryEscape(`{ __typename }`),
		http.Header{"Accept": {"text/event-stream"}}, nil)
	if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET a query as an event stream: %d %s", a.status, a.body)
	}
	var complete string
	for _, block := range strings.Split(strings.ReplaceAll(a.body, "\r\n", "\n"), "\n\n") {
		if strings.Contains("\n"+block+"\n", "\nevent: complete\n") {
			complete = block
		}
	}
	if complete == "" {
		t.Fatalf("no complete event in %q", a.body)
	}
	hasData := false
	for _, line := range strings.Split(complete, "\n") {
		if line == "data" || strings.HasPrefix(line, "data:") {
			hasData = true
		}
	}
	if !hasData {
		t.Errorf("the complete event %q has no data line: an EventSource would not dispatch it", complete)
	}
}
