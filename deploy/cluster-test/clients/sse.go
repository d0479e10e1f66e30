package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// sseRequest asks for one room's event stream (graphql-sse's distinct
// connections mode) as an EventSource does: a GET, resuming after cursor
// with Last-Event-ID, which Herald puts into the subscription's $after.
func (c *client) sseRequest(ctx context.Context, s *sub, cursor string) (*http.Request, error) {
	vars, err := json.Marshal(map[string]any{"r": s.room.id})
	if err != nil {
		return nil, fmt.Errorf("encode variables: %w", err)
	}
	q := url.Values{"query": {subscription}, "variables": {string(vars)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("X-Herald-User", fmt.Sprintf("client-%d", c.n))
	if cursor != "" {
		req.Header.Set("Last-Event-ID", cursor)
	}
	return req, nil
}

// sseFraming reads an event stream line by line and judges each event.
type sseFraming struct {
	c    *client
	s    *sub
	conn int

	event, data string // the event being read (handle's goroutine only)
	// lastID is the stream's last event ID, as an EventSource keeps it:
	// set by each "id:" line, kept by events without one. A browser
	// resumes with it as Last-Event-ID, so it must be the cursor of the
	// last event.
	lastID string
}

func (*sseFraming) next(br *bufio.Reader) (string, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func (f *sseFraming) handle(line string) (reason string, stop, done bool) {
	switch {
	case line == "":
		event, data := f.event, f.data
		f.event, f.data = "", ""
		if event != "" {
			return f.dispatch(event, data)
		}
	case strings.HasPrefix(line, "event:"):
		f.event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
	case strings.HasPrefix(line, "id:"):
		if id := strings.TrimPrefix(strings.TrimPrefix(line, "id:"), " "); !strings.ContainsRune(id, 0) {
			f.lastID = id
		}
	case strings.HasPrefix(line, "data:"):
		f.data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
	}
	return "", false, false
}

// dispatch handles one whole event.
func (f *sseFraming) dispatch(event, data string) (reason string, stop, done bool) {
	switch event {
	case "next":
		var p struct{ Extensions struct{ Cursor string } }
		if json.Unmarshal([]byte(data), &p) == nil && p.Extensions.Cursor != "" && p.Extensions.Cursor != f.lastID {
			f.c.rep.violation("client %d room %s connection %d: event with cursor %q has event ID %q: an EventSource would resume after %q (Last-Event-ID)",
				f.c.n, f.s.room.label, f.conn, p.Extensions.Cursor, f.lastID, f.lastID)
		}
		return f.c.result(f.s, f.conn, json.RawMessage(data))
	case "complete":
		reason, stop := f.c.completed(f.s)
		return reason, stop, true
	}
	f.c.rep.violation("client %d connection %d: unexpected event %q", f.c.n, f.conn, event)
	return "", false, false
}
