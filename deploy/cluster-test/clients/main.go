// Command clients is the load and the judge of Herald's cluster failure test
// (the driver is deploy/cluster-test): it talks to Herald only through nginx,
// while the driver kills and restarts replicas and NATS nodes underneath.
//
//	clients [flags]            run the test (see -h); exit 0 only if it passed
//	clients ports N            print N free TCP ports on 127.0.0.1
//	clients leader STREAM URL...  print the name of the server leading STREAM,
//	                           asking the NATS monitoring endpoints URL...
//
// The test: it creates -rooms rooms and posts one seed message in each (whose
// cursor is where every subscription starts). -clients WebSocket clients
// (graphql-transport-ws, pings answered) each subscribe to -rooms-per-client
// rooms with messagePosted(roomId, after: cursor); -sse-clients event-stream
// clients and -multipart-clients Apollo multipart clients do the same with
// an HTTP stream per room (resumed by Last-Event-ID, or by $after in a new
// POST). One publisher per room
// posts "<room>:<n>" for n = 0, 1, ... at -rate per second for -publish,
// each with an idempotencyKey, retrying errors with backoff until it is
// stored; only then does it post n+1, so every room's log holds 0..N-1 once,
// in order. A client whose socket drops reconnects through nginx (bounded
// backoff) and subscribes every room again after the last cursor it got for
// that room. When the publishers are done, every client must have received
// exactly <room>:0 .. <room>:N-1 of each of its rooms, each once and in order;
// then it listens for -quiet more, and every replica must count N+1 messages
// per room. The run is bounded by -deadline.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "ports":
			os.Exit(cmdPorts(os.Args[2:]))
		case "leader":
			os.Exit(cmdLeader(ctx, os.Args[2:]))
		case "stream-of":
			os.Exit(cmdStreamOf(os.Args[2:]))
		}
	}
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "clients:", err)
		os.Exit(2)
	}
	os.Exit(runTest(ctx, cfg))
}
