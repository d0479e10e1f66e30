package main

import (
	"context"
	"errors"
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
