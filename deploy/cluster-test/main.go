// Command cluster-test is Herald's cluster failure test: the production
// topology of deploy/compose.yaml as real processes on loopback, with parts
// of it killed and restarted while clients subscribe and publish through
// nginx. See deploy/README.md.
//
//	a 3-node NATS cluster with JetStream (nats-server built from the version
//	    go.mod pins), the event log R3 streams in 3 partitions;
//	3 Herald replicas, each with --nats-url listing all three nodes;
//	nginx (Debian's) running the shipped deploy/nginx.conf, with loopback
//	    versions of deploy/upstreams.conf and deploy/listen.conf;
//	deploy/cluster-test/clients: 30 WebSocket clients, 6 event-stream clients
//	    (graphql-sse, a stream per room resumed by Last-Event-ID), 6 multipart
//	    clients (Apollo's multipart subscriptions, a POST per room resubscribed
//	    with $after set to the last cursor) and 6 publishers, all through
//	    nginx, which judge that nothing was lost, duplicated or reordered.
//
// Failures, timed from the moment publishing starts (see schedule.go):
//
//	 +6s  SIGTERM replica 1 (drain; it must exit 0)
//	+12s  SIGKILL replica 2 (every client is now on replica 3)
//	+18s  restart replicas 1 and 2 (same ports)
//	+24s  SIGKILL the NATS node leading the first room's partition stream
//	      (posts stall until JetStream elects a new leader, several seconds),
//	      then SIGKILL replica 1 and start it again at once: it starts
//	      during the election, and must wait it out
//	+32s  restart that NATS node (same ports and store directory)
//	+38s  SIGTERM replica 3 (its clients move to the restarted ones)
//	+42s  restart replica 3
//
// Publishing ends at +50s; the clients then check every subscription.
//
// Then the presence check (presence.go), with every replica up again:
// users present in a room through each replica, on sockets straight to it,
// and roomPresence subscribers on replicas 1 and 3; replica 2 is SIGKILLed,
// and its user must leave both subscribers' presence within 10s while
// everyone present through a survivor stays.
//
// Usage: go run ./deploy/cluster-test [flags of the clients program, e.g. -clients 60]
// (make cluster-test runs it). -resume=false makes clients resubscribe
// without their cursor: a negative control of the judge, which must then
// fail.
//
// HERALD_CLUSTER_TEST_TIMEOUT bounds the whole run in seconds (default 300).
// HERALD_CLUSTER_TEST_KEEP=1 keeps the work directory (logs, data).
// GO names the go command that builds the binaries (default go).
// Needs go and nginx (apt-get install -y nginx). Loopback only. Every
// process it starts leads a process group of its own, and the driver stops
// them all (and whatever they started) when the run ends, fails, times out
// or is interrupted (SIGINT, SIGTERM; a second signal skips the grace
// periods); it removes its temporary directory.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run is the whole command; it returns the exit status.
func run(clientArgs []string) int {
	d := &driver{began: time.Now(), clientArgs: clientArgs, procs: map[string]*testrig.Proc{}}
	budget := 300 * time.Second
	if v := os.Getenv("HERALD_CLUSTER_TEST_TIMEOUT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			d.logf("HERALD_CLUSTER_TEST_TIMEOUT=%q is not a number of seconds", v)
			return 2
		}
		budget = time.Duration(n) * time.Second
	}
	d.budget = budget
	if err := d.findTools(); err != nil {
		d.logf("%v", err)
		return 1
	}

	sigCtx, hurry, stopSignals := testrig.NotifySignals(context.Background())
	defer stopSignals()
	ctx, cancel := context.WithTimeoutCause(sigCtx, budget,
		fmt.Errorf("the run took longer than %s (HERALD_CLUSTER_TEST_TIMEOUT); stopping it", budget))
	defer cancel()

	work, err := os.MkdirTemp("", "herald-cluster.")
	if err != nil {
		d.logf("FAIL: make the work directory: %v", err)
		return 1
	}
	d.work = work
	keep := os.Getenv("HERALD_CLUSTER_TEST_KEEP") == "1"
	defer func() {
		if keep {
			d.logf("kept %s (HERALD_CLUSTER_TEST_KEEP=1)", work)
			return
		}
		if err := os.RemoveAll(work); err != nil {
			d.logf("remove %s: %v", work, err)
		}
	}()

	rig, err := testrig.New(ctx, testrig.Options{Logf: d.logf})
	if err != nil {
		d.logf("FAIL: %v", err)
		return 1
	}
	d.rig = rig
	err = d.test(rig.Context())
	if cause := context.Cause(rig.Context()); err != nil && cause != nil {
		// The run ended under the test (a deadline, a process that
		// exited): that is the news, not what was being waited for.
		err = cause
	}

	var in *testrig.Interrupted
	switch {
	case errors.As(context.Cause(sigCtx), &in):
		d.logf("%s; stopping everything", in)
	case err != nil:
		d.logf("FAIL: %v; logs follow", err)
	}
	// Outside in: the clients and nginx, then the replicas (which drain
	// their NATS connections), then NATS; then whatever they left behind.
	closeCtx, cancelClose := context.WithTimeout(hurry, 2*time.Minute)
	defer cancelClose()
	if cerr := rig.Close(closeCtx); cerr != nil {
		d.logf("FAIL: stopping the processes: %v", cerr)
		if err == nil {
			err = cerr
		}
	}
	if err != nil || in != nil {
		d.printLogs()
	}
	if err != nil && in == nil {
		// Again after the logs, so that the tail of a CI run says why.
		d.logf("FAIL: %v (the logs are above)", err)
	}
	switch {
	case in != nil:
		return in.ExitCode()
	case err != nil:
		return 1
	}
	d.logf("PASS: no message lost, duplicated or reordered across the failures; the killed replica's user left presence in %.1fs (run took %s)",
		d.presenceLeft.Seconds(), d.elapsed())
	return 0
}

// findTools finds go and nginx, and the repository's root.
func (d *driver) findTools() error {
	d.goTool = os.Getenv("GO")
	if d.goTool == "" {
		d.goTool = "go"
	}
	if _, err := exec.LookPath(d.goTool); err != nil {
		return fmt.Errorf("%s is not installed: %w", d.goTool, err)
	}
	d.nginx = "/usr/sbin/nginx"
	if p, err := exec.LookPath("nginx"); err == nil {
		d.nginx = p
	} else if _, err := os.Stat(d.nginx); err != nil {
		return errors.New("nginx is not installed (Debian: apt-get install -y nginx)")
	}
	root, err := testrig.ModuleRoot()
	if err != nil {
		return err
	}
	d.root = root
	return nil
}
