package main

import (
	"context"
	"log/slog"
	"net"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// TestFailedStartStopsTheServer: when startApp fails after it built the
// HTTP handler (the address is taken, so is the pprof address), the
// handler's goroutines are stopped before startApp returns.
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
		{"address taken", func(c *config) { c.Addr = taken.Addr().String() }, "listen for HTTP on"},
		{"pprof address taken", func(c *config) { c.PprofAddr = taken.Addr().String() }, "listen for pprof on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir())
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
