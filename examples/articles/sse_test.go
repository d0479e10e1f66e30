package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// openEventStream opens a graphql-sse distinct-connections stream (GET,
// as an EventSource sends it) of query, with Last-Event-ID if lastID is
// set, and returns a function that reads the next "next" event as
// (id, data), and a closer.
func openEventStream(t *testing.T, g *testGateway, query, lastID string) (next func() (string, string), stop func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	u := g.url + "/graphql?query=" + url.QueryEscape(query)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("SSE status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	next = func() (string, string) {
		t.Helper()
		var id, data, event string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if event == "next" {
					return id, data
				}
				if event == "complete" {
					t.Fatalf("stream completed")
				}
				id, data, event = "", "", ""
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return "", ""
	}
	return next, func() { cancel(); resp.Body.Close() }
}

// An EventSource that reconnects with Last-Event-ID resumes the example's
// subscription from its cursor (README, "Your own schema": the resume
// argument is filled from it): nothing lost, nothing twice.
func TestSSEResumesWithLastEventID(t *testing.T) {
	g := startGateway(t, t.TempDir())
	const q = `subscription($after: String) { authorCreated(after: $after) { id } }`
	next, stop := openEventStream(t, g, q, "")
	// The stream's head is sent once it has joined: a created author now
	// reaches it.
	a := g.createAuthor("A", "One")
	id1, d1 := next()
	b := g.createAuthor("B", "Two")
	_, d2 := next()
	stop()
	c := g.createAuthor("C", "Three")
	if !strings.Contains(d1, a) || !strings.Contains(d2, b) || id1 == "" {
		t.Fatalf("events %q %q (id %q), want %s then %s", d1, d2, id1, a, b)
	}
	next, stop = openEventStream(t, g, q, id1)
	defer stop()
	var got []string
	for range 2 {
		_, d := next()
		var r struct {
			Data struct{ AuthorCreated struct{ ID string } }
		}
		if err := json.Unmarshal([]byte(d), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Data.AuthorCreated.ID)
	}
	if got[0] != b || got[1] != c {
		t.Fatalf("resumed with Last-Event-ID after %s: got %q, want [%s %s]", a, got, b, c)
	}
}
