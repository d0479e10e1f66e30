package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const storePost = `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`

// storeMessageCount reads a room's messageCount.
func storeMessageCount(t *testing.T, addr, room string) int {
	t.Helper()
	var out struct{ Room struct{ MessageCount int } }
	gql(t, addr, "", `query($r: ID!) { room(id: $r) { messageCount } }`, map[string]any{"r": room}, &out)
	return out.Room.MessageCount
}

// TestEmbeddedStoreHealsWhenSpaceIsFreed: the disk under the embedded NATS
// data dir fills up while Herald runs. nats-server then keeps the
// partition's write error for as long as it runs; Herald stops its
// JetStream, so that /readyz fails naming the data dir and the write error
// and mutations fail at once with UNAVAILABLE rather than wait for
// --apply-timeout, and once space is freed it starts the server again:
// /readyz turns 200, writes resume, and what was stored before is there.
func TestEmbeddedStoreHealsWhenSpaceIsFreed(t *testing.T) {
	dir := mountTmpfs(t, "16m")
	cfg := testConfig(t, dir)
	cfg.MutationRate = 0
	cfg.ApplyTimeout = 3 * time.Second
	a := startTestApp(t, cfg)
	addr := a.Addr()
	room := createRoom(t, addr, "alice", "full")
	postMessage(t, addr, "alice", room, "before")

	filler, _ := fillDisk(t, dir)
	text := strings.Repeat("x", 1000)
	stored := 1
	for i := 0; ; i++ {
		if i == 60 {
			t.Fatal("60 posts of 1000 bytes on a full disk were all stored: the disk did not fill")
		}
		r, err := crashGQL(addr, "alice", storePost, map[string]any{"r": room, "t": text})
		if err != nil {
			t.Fatalf("post while the disk is full: %v", err)
		}
		if len(r.Errors) > 0 {
			t.Logf("the post that filled the disk: %s %q", r.code(), r.Errors[0].Message)
			break
		}
		stored++
	}

	body := waitReadyzFor(t, addr, 5*time.Second, "503 naming the data dir and the write error", func(st int, body string) bool {
		return st == http.StatusServiceUnavailable && strings.Contains(body, dir) &&
			strings.Contains(body, "write error") && strings.Contains(body, "no space left on device")
	})
	t.Logf("/readyz while full: %s", body)
	start := time.Now()
	r, err := crashGQL(addr, "alice", storePost, map[string]any{"r": room, "t": "while full"})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); len(r.Errors) == 0 || r.code() != "UNAVAILABLE" || took > cfg.ApplyTimeout/2 {
		t.Fatalf("a post while the store is stopped answered %s %v after %s; want UNAVAILABLE at once", r.code(), r.Errors, took)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitReadyzFor(t, addr, 15*time.Second, "200 once space is freed", func(st int, _ string) bool { return st == http.StatusOK })
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := crashGQL(addr, "alice", storePost, map[string]any{"r": room, "t": "after"})
		if err != nil {
			t.Fatalf("post after freeing space: %v", err)
		}
		if len(r.Errors) == 0 {
			stored++
			break
		}
		if time.Now().After(deadline) {
			st, body := readyz(addr)
			t.Fatalf("space was freed and /readyz is %d %s, but posts still fail: %s %q", st, body, r.code(), r.Errors[0].Message)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if n := storeMessageCount(t, addr, room); n != stored {
		t.Fatalf("messageCount %d after the store healed, want %d (every post acknowledged)", n, stored)
	}
}

// TestEmbeddedStartOnNearlyFullDisk: on a full disk Herald refuses to
// start, naming the data dir and its free space; started with a little
// space free, its store limit does not stay fixed at what was free then
// (nats-server's own default, 75% of it): once space is freed, it stores
// more than that.
func TestEmbeddedStartOnNearlyFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "8m")
	data := filepath.Join(dir, "data")
	first := startTestApp(t, testConfig(t, data))
	room := createRoom(t, first.Addr(), "alice", "seed")
	postMessage(t, first.Addr(), "alice", room, "hello")
	stopTestApp(t, first)

	filler, size := fillDisk(t, dir)
	cfg := testConfig(t, data)
	cfg.MutationRate = 0
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := startApp(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		stopTestApp(t, a)
		t.Fatal("Herald started on a full disk")
	}
	for _, want := range []string{"--data-dir", data, "free"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("the start on a full disk failed without naming %q: %v", want, err)
		}
	}

	const free = 3 << 19 // 1.5 MiB, above the minimum to start
	if err := os.Truncate(filler, size-free); err != nil {
		t.Fatal(err)
	}
	a = startTestApp(t, cfg)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// 100 posts of 16 kB: more than 75% of what was free at the start.
	text := strings.Repeat("😀", 4000)
	for i := range 100 {
		r, err := crashGQL(a.Addr(), "alice", storePost, map[string]any{"r": room, "t": text})
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		if len(r.Errors) > 0 {
			t.Fatalf("post %d of 16 kB, with space freed since the start, was refused: %s %q", i, r.code(), r.Errors[0].Message)
		}
	}
}

// TestEmbeddedDataDirRemovedStopsWrites: the data dir is deleted or moved
// away under a running replica. Its server would go on acknowledging
// writes to files no path names, lost at the next start, and its lock
// file would no longer keep a second Herald off the path: /readyz fails,
// naming the data dir and its lock file, and writes are refused. A data dir
// put back as it was (the same lock file) makes the replica whole again.
func TestEmbeddedDataDirRemovedStopsWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remove func(data string) error
		// restore puts the data dir back; nil: it cannot be.
		restore func(data string) error
	}{
		{name: "deleted", remove: os.RemoveAll},
		{
			name:    "moved away and back",
			remove:  func(data string) error { return os.Rename(data, data+".moved") },
			restore: func(data string) error { return os.Rename(data+".moved", data) },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			cfg := testConfig(t, data)
			a := startTestApp(t, cfg)
			room := createRoom(t, a.Addr(), "alice", "seed")
			postMessage(t, a.Addr(), "alice", room, "hello")
			if err := tc.remove(data); err != nil {
				t.Fatal(err)
			}
			body := waitReadyzFor(t, a.Addr(), 5*time.Second, "503 naming the data dir and its lock file", func(st int, body string) bool {
				return st == http.StatusServiceUnavailable && strings.Contains(body, data) && strings.Contains(body, "herald.lock")
			})
			t.Logf("/readyz: %s", body)
			r, err := crashGQL(a.Addr(), "bob", `mutation { createRoom(name: "after-remove") { id } }`, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Errors) == 0 || r.code() != "UNAVAILABLE" {
				t.Fatalf("createRoom with the data dir gone: %s %v, want UNAVAILABLE", r.Data, r.Errors)
			}

			if tc.restore == nil {
				return
			}
			if err := tc.restore(data); err != nil {
				t.Fatal(err)
			}
			waitReadyzFor(t, a.Addr(), 15*time.Second, "200 with the data dir back", func(st int, _ string) bool { return st == http.StatusOK })
			deadline := time.Now().Add(10 * time.Second)
			for {
				r, err := crashGQL(a.Addr(), "alice", storePost, map[string]any{"r": room, "t": "back"})
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Errors) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the data dir is back and posts still fail: %s %q", r.code(), r.Errors[0].Message)
				}
				time.Sleep(200 * time.Millisecond)
			}
			stopTestApp(t, a)
			b := startTestApp(t, testConfig(t, data))
			if n := storeMessageCount(t, b.Addr(), room); n != 2 {
				t.Fatalf("after a restart the room has %d messages, want the 2 acknowledged", n)
			}
		})
	}
}
