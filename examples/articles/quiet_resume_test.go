package main

import (
	"testing"
	"time"
)

// TestQuietResumeJoinsTheSharedExecution resumes from the latest cursor
// while nothing more happens: there is nothing to replay, so the resumed
// subscriber should be on the shared execution of the live subscribers at
// once (eventmeta.CaughtUp), not keep a private replay (an execution and a
// library watcher of its own) until the next event, which in a quiet
// library may never come.
func TestQuietResumeJoinsTheSharedExecution(t *testing.T) {
	for _, sub := range []struct{ name, query string }{
		{"authorCreated", authorCreated},
		{"articleEvents", articleEvents},
	} {
		t.Run(sub.name, func(t *testing.T) {
			g := startGateway(t, t.TempDir())
			watcher := g.dial("watcher", false)
			watcher.start("w", sub.query, nil)
			watcher.sync()
			author := g.createAuthor("Ada", "Lovelace")
			g.addArticle(author, "Notes")
			var cursor string
			if sub.name == "authorCreated" {
				_, cursor = data[authorEvent](watcher, "w")
			} else {
				_, cursor = data[articleEvent](watcher, "w")
			}
			resumed := g.dial("reader", false)
			resumed.start("r", sub.query, map[string]any{"after": cursor})
			resumed.sync()
			const wait = 3 * time.Second
			for deadline := time.Now().Add(wait); g.metric("herald_shared_executions") != "1"; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("herald_shared_executions is %s %s after a resume from the latest cursor %s (nothing to replay), want 1: "+
						"the resumed subscriber keeps a private replay until the next event",
						g.metric("herald_shared_executions"), wait, cursor)
				}
			}
		})
	}
}
