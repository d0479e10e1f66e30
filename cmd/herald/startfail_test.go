package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// TestFailedStartStopsTheServer: when a listen address is taken (--addr,
// --pprof, --nats-listen), startApp fails at once with an error naming the flag and the
// address, before it started embedded NATS (whose data directory it would
// have created) or the HTTP handler; nothing of the handler is left
// running, and the other address is free again.
func TestFailedStartStopsTheServer(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		set  func(*config)
		want string
	}{
		{"address taken", func(c *config) { c.Addr = taken.Addr().String() },
			"--addr (HERALD_ADDR): listen for HTTP on " + taken.Addr().String() + ": "},
		{"pprof address taken", func(c *config) { c.PprofAddr = taken.Addr().String() },
			"--pprof (HERALD_PPROF): listen for pprof on " + taken.Addr().String() + ": "},
		{"nats listen address taken", func(c *config) { c.NATSListen, c.PprofAddr = taken.Addr().String(), "" },
			"--nats-listen (HERALD_NATS_LISTEN): listen for NATS clients on " + taken.Addr().String() + ": "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			cfg := testConfig(t, dataDir)
			other := freeAddr(t)
			cfg.Addr, cfg.PprofAddr = other, other
			tt.set(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			a, err := startApp(ctx, cfg, logger)
			if err == nil {
				stopTestApp(t, a)
				t.Fatal("startApp succeeded on a taken address")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the data directory exists (%v): embedded NATS was started before the listen failed", err)
			}
			// The address that was free was bound, and is released.
			if l, err := net.Listen("tcp", other); err != nil {
				t.Errorf("the other listen address is still bound after the failed start: %v", err)
			} else {
				l.Close()
			}
			// Nothing of the HTTP server may be left running.
			var stacks string
			for deadline := time.Now().Add(5 * time.Second); ; {
				var b strings.Builder
				_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
				stacks = b.String()
				if !strings.Contains(stacks, "heraldhq/herald/server.") {
					return
				}
				if time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			var leaked []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "heraldhq/herald/server.") {
					leaked = append(leaked, g)
				}
			}
			t.Fatalf("%d goroutines of the server left after a failed start:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
		})
	}
}

// TestTakenAddressExitsAtOnce runs Herald on a taken --addr, --pprof or
// --nats-listen: it exits with code 1 at once, its error naming the flag
// and the address, without starting embedded NATS (no data directory, no
// word of NATS in its log besides that error's).
func TestTakenAddressExitsAtOnce(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"address taken", []string{"--addr", taken.Addr().String()}, "--addr (HERALD_ADDR): listen for HTTP on " + taken.Addr().String()},
		{"pprof address taken", []string{"--pprof", taken.Addr().String()}, "--pprof (HERALD_PPROF): listen for pprof on " + taken.Addr().String()},
		{"nats listen address taken", []string{"--nats-listen", taken.Addr().String()},
			"--nats-listen (HERALD_NATS_LISTEN): listen for NATS clients on " + taken.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := filepath.Join(t.TempDir(), "data")
			// launchProcess gives a free --addr first; a later one wins.
			p := launchProcess(t, "herald", append([]string{"--data-dir", dataDir}, tt.args...)...)
			if code := p.exitCode(10 * time.Second); code != 1 {
				t.Fatalf("exit code %d, want 1:\n%s", code, p.logs.String())
			}
			logs := p.logs.String()
			if !strings.Contains(logs, "herald could not start: "+tt.want) || !strings.Contains(logs, "address already in use") {
				t.Errorf("no error naming %q and the address in use:\n%s", tt.want, logs)
			}
			if strings.Contains(strings.ReplaceAll(logs, tt.want, ""), "NATS") {
				t.Errorf("NATS was started before the listen failed:\n%s", logs)
			}
			if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the data directory exists (%v): embedded NATS was started before the listen failed", err)
			}
		})
	}
}

// TestDataDirInUseIsRefused: a second Herald with embedded NATS on the
// --data-dir a running one uses fails to start, naming the flag and the
// directory, in this process as in another (go run ./cmd/herald twice,
// the second on another --addr, or a new pod mounting the volume while
// the old one drains). It used to start a second JetStream server over
// the same files: each replica saw only its own rooms, and what the first
// stored was gone after a restart. The running one is left alone, and
// once it has stopped the directory can be used again.
func TestDataDirInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, err := startApp(ctx, testConfig(t, dir), logger)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, first)

	second, err := startApp(ctx, testConfig(t, dir), logger)
	if err == nil {
		stopTestApp(t, second)
		stopTestApp(t, first)
		t.Fatal("a second replica started with embedded NATS on the data directory a running replica uses")
	}
	if want := "--data-dir (HERALD_DATA_DIR)"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Errorf("err = %v, want it to name %s and %q", err, want, dir)
	}

	p := launchProcess(t, "second", "--data-dir", dir)
	if code := p.exitCode(20 * time.Second); code != 1 {
		t.Fatalf("a second process on the data directory: exit code %d, want 1:\n%s", code, p.logs.String())
	}
	if logs := p.logs.String(); !strings.Contains(logs, "in use by another embedded NATS server") {
		t.Errorf("the second process does not say the data directory is in use:\n%s", logs)
	}

	// The first goes on serving, and after it the directory is free.
	var out struct {
		CreateRoom struct{ ID string } `json:"createRoom"`
	}
	gql(t, first.Addr(), "alice", `mutation { createRoom(name: "still-here") { id } }`, nil, &out)
	stopTestApp(t, first)
	again, err := startApp(ctx, testConfig(t, dir), logger)
	if err != nil {
		t.Fatalf("the data directory is still refused once its replica stopped: %v", err)
	}
	defer stopTestApp(t, again)
	waitReady(t, again)
	if resp := gql(t, again.Addr(), "", `query($id: ID!) { room(id: $id) { name } }`, map[string]any{"id": out.CreateRoom.ID}, nil); !strings.Contains(string(resp.Data), "still-here") {
		t.Errorf("the room created before the restart: %s", resp.Data)
	}
}

// TestDataDirNotWritableNamesTheFlag: a --data-dir that cannot be created
// (below a file) fails the start naming the flag, its variable and the
// directory, not only in the log's words.
func TestDataDirNotWritableNamesTheFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := startApp(ctx, testConfig(t, dir), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil {
		stopTestApp(t, a)
		t.Fatal("started on a data directory below a file")
	}
	if want := "--data-dir (HERALD_DATA_DIR)"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), "not writable") {
		t.Errorf("err = %v, want it to name %s, %q and say it is not writable", err, want, dir)
	}
}
