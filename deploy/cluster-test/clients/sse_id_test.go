package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestSSEEventIDMustBeTheCursor: the event-stream clients stand for
// EventSource, which resumes with Last-Event-ID set to the last event's
// "id:" field, not to extensions.cursor. An event whose id is missing or
// is not its cursor would make a browser resume from the wrong place, so
// the judge must flag it; it must accept an event whose id is its cursor.
func TestSSEEventIDMustBeTheCursor(t *testing.T) {
	payload := func(text, cursor string) string { return string(eventPayload(event{text, cursor})) }
	for _, tc := range []struct {
		name, stream string
		violations   int
	}{
		{"id is the cursor", "event: next\nid: c0\ndata: " + payload("r0:0", "c0") + "\n\n", 0},
		{"no id", "event: next\ndata: " + payload("r0:0", "c0") + "\n\n", 1},
		{"another event's id", "event: next\nid: c0\ndata: " + payload("r0:0", "c0") + "\n\nevent: next\nid: c0\ndata: " + payload("r0:1", "c1") + "\n\n", 1},
		{"a wrong id", "event: next\nid: seed\ndata: " + payload("r0:0", "c0") + "\n\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := testClient(t)
			body := io.NopCloser(strings.NewReader(tc.stream))
			c.readFrames(context.Background(), body, s, &sseFraming{c: c, s: s, conn: 1})
			if c.rep.count != tc.violations {
				t.Errorf("%d violations %q; want %d: an EventSource resumes with Last-Event-ID = the last event's id, so an id other than the event's cursor loses or repeats messages after a reconnect",
					c.rep.count, c.rep.violations, tc.violations)
			}
		})
	}
}
