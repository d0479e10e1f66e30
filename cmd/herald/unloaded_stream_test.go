package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartRefusesAStreamNATSCouldNotLoad: nats-server writes a stream's
// meta.inf, then its meta.sum; a crash (or a full disk) between the two
// leaves them mismatched, and nats-server then skips the stream with a
// warning. Herald must refuse to start, naming the stream's directory,
// rather than create the stream anew over its files: their entries would be
// kept under a new creation time, so every client's cursor would expire,
// and a lowered --room-history would pass unchecked. Once the files are
// repaired, it starts on the log as it was, and a cursor from before still
// resumes.
func TestStartRefusesAStreamNATSCouldNotLoad(t *testing.T) {
	data := t.TempDir()
	cfg := testConfig(t, data)
	cfg.RoomHistory = 100
	a := startTestApp(t, cfg)
	room := createRoom(t, a.Addr(), "alice", "seed")
	postMessage(t, a.Addr(), "alice", room, "hello")
	var page struct {
		Room struct{ Messages struct{ ResumeCursor string } }
	}
	gql(t, a.Addr(), "", `query($r: ID!) { room(id: $r) { messages(last: 5) { resumeCursor } } }`, map[string]any{"r": room}, &page)
	stopTestApp(t, a)

	streamDir := filepath.Join(data, "jetstream", "$G", "streams", "HERALD_P0")
	sumFile := filepath.Join(streamDir, "meta.sum")
	oldSum, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatal(err)
	}
	// --room-history is raised: Herald updates the stream's configuration
	// at start, and the server rewrites meta.inf, then meta.sum.
	cfg.RoomHistory = 200
	stopTestApp(t, startTestApp(t, cfg))
	newSum, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatal(err)
	}
	// The crash between the two writes: the new meta.inf, the old meta.sum.
	if err := os.WriteFile(sumFile, oldSum, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, history := range []int{200, 100} { // as it was, and lowered below what the stream keeps
		cfg.RoomHistory = history
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
		c, err := startApp(ctx, cfg, logger)
		cancel()
		if err == nil {
			stopTestApp(t, c)
			t.Fatalf("--room-history %d: Herald started on a data dir whose stream HERALD_P0 nats-server could not load", history)
		}
		for _, want := range []string{streamDir, `stream "HERALD_P0"`, "could not load"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("--room-history %d: start refused with %q; want it to say %q", history, err, want)
			}
		}
	}

	// Repaired: the log is the one it was, and so is its epoch.
	if err := os.WriteFile(sumFile, newSum, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.RoomHistory = 200
	c := startTestApp(t, cfg)
	defer stopTestApp(t, c)
	waitReady(t, c)
	s := subscribeRoomEvents(t, c.Addr(), "alice", room, page.Room.Messages.ResumeCursor)
	postMessage(t, c.Addr(), "alice", room, "after")
	typ, ev, err := s.next(5 * time.Second)
	if err != nil || ev == nil || ev.Text != "after" {
		t.Fatalf("after the repair, the cursor handed out before the crash gets: %s %v %v", typ, ev, err)
	}
}
