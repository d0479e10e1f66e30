package server

import (
	"testing"
	"time"
)

// TestMultipartBadCursorStaysInPayload: a subscription refused by its own
// resolver (a malformed cursor) gets its error inside the payload (a
// CombinedGraphQLErrors for Apollo Client, not retried), then the close
// delimiter.
func TestMultipartBadCursorStaysInPayload(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("mpTest-cursor")
	for _, after := range []string{"garbage", "0-0-0"} {
		c, resp, body := r.openMultipart(mpRequest{query: postedSub, vars: map[string]any{"r": room, "after": after}})
		if c == nil {
			t.Logf("after %q: status %d: %s", after, resp.StatusCode, body)
			continue
		}
		p := c.next()
		t.Logf("after %q: %s", after, p.body)
		if string(p.payload) == "null" || len(p.errors) > 0 {
			t.Errorf("after %q: transport error %s", after, p.body)
		}
		c.expectEnd(5 * time.Second)
	}
}
