// Command seed fills a Herald with rooms and messages through its public
// GraphQL HTTP API only, for the data-at-rest and traffic-elsewhere
// benchmarks (S6, S7 in bench/run). Herald must run with dev auth and
// --mutation-rate 0.
//
//	seed [seed] [flags]   create rooms and post a layout of messages; write a manifest
//	seed rate [flags]     post at a fixed rate into N rooms for a while
//	seed ids [flags]      print room ids of a manifest (for loadgen --room-ids)
//	seed ready [flags]    time a replica from its start to /readyz 200, then its idle RSS
//	seed cold [flags]     time the first query of rooms of a manifest
//
// Posting: each HTTP request carries several postMessage mutations to one
// room as aliases (m0: postMessage(...) m1: ...), and many requests are in
// flight at once. Every post carries an idempotency key, so a request that
// failed transiently (the log unavailable, a timeout, a dropped
// connection) is retried whole and each of its posts is stored once: the
// posts that had been stored return the first post. Any failure that is
// not transient, or that outlasts the retries, fails the run (exit 1):
// nothing is silently lost. After seeding, every room's messageCount is
// checked against the layout (--verify).
//
// Exit status: 0 done; 1 a mutation or a check failed; 2 bad flags.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: seed [seed|rate|ids|ready|cold] [flags]   (seed <command> -h for its flags)
`

func cli(args []string, stdout, stderr io.Writer) int {
	cmd := "seed"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd {
	case "seed":
		return seedCmd(ctx, args, stdout, stderr)
	case "rate":
		return rateCmd(ctx, args, stdout, stderr)
	case "ids":
		return idsCmd(args, stdout, stderr)
	case "ready":
		return readyCmd(ctx, args, stdout, stderr)
	case "cold":
		return coldCmd(ctx, args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "seed: unknown command %q\n%s", cmd, usage)
	return 2
}

// writeJSON writes v, indented, to path.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func readManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}
