// Command e2e runs Herald's end-to-end tests with real GraphQL clients
// (graphql-ws, subscriptions-transport-ws, graphql-sse, Apollo Client,
// GraphiQL in Chromium) against two real replicas on loopback: replica A
// embeds NATS and also listens for NATS clients, replica B joins A's NATS.
// The tests subscribe on one replica and post on the other. See README.md.
//
// Usage: go run ./e2e [test/FILE.test.js...] [node --test options, e.g. --test-name-pattern=dispose]
// (make e2e runs it; arguments ending in .test.js are test files, relative
// to the working directory or to e2e/, the others go to node --test).
//
// HERALD_BIN=/path/to/herald uses that binary instead of building ./cmd/herald.
// HERALD_E2E_TIMEOUT bounds the whole run in seconds (default 300);
// HERALD_E2E_READY_TIMEOUT each replica's start (default 20).
// GO names the go command that builds herald (default go).
// Needs go, node (20 or later) and npm; test/graphiql.test.js also needs
// Debian's chromium at /usr/bin/chromium (it fails without it).
//
// Every process it starts leads a process group of its own, and the driver
// stops them all (and whatever they started: a test's own replica, the
// browser) when the run ends, fails, times out or is interrupted (SIGINT,
// SIGTERM; a second signal skips the grace periods); it removes its
// temporary directory.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// grace is how long a process has between SIGTERM and SIGKILL when the
// driver stops it.
const grace = 5 * time.Second

// Layers of the rig: Close stops the highest first.
const (
	layerReplicas = iota
	layerTools    // go build, npm, node
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// driver runs the e2e tests once.
type driver struct {
	args         []string
	root, here   string // the repository, and its e2e directory
	work         string
	goTool       string
	heraldBin    string // HERALD_BIN
	readyTimeout time.Duration
	rig          *testrig.Rig
	replicas     []string // names of the replicas started, for their logs
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "e2e: %s\n", fmt.Sprintf(format, args...))
}

// run is the whole command; it returns the exit status.
func run(args []string) int {
	d := &driver{args: args, heraldBin: os.Getenv("HERALD_BIN")}
	budget, err := seconds("HERALD_E2E_TIMEOUT", 300)
	if err == nil {
		d.readyTimeout, err = seconds("HERALD_E2E_READY_TIMEOUT", 20)
	}
	if err != nil {
		logf("%v", err)
		return 2
	}
	if err := d.findTools(); err != nil {
		logf("%v", err)
		return 1
	}

	sigCtx, hurry, stopSignals := testrig.NotifySignals(context.Background())
	defer stopSignals()
	ctx, cancel := context.WithTimeoutCause(sigCtx, budget,
		fmt.Errorf("the run took longer than %s (HERALD_E2E_TIMEOUT); stopping it", budget))
	defer cancel()

	d.work, err = os.MkdirTemp("", "herald-e2e.")
	if err != nil {
		logf("make the work directory: %v", err)
		return 1
	}
	defer func() {
		if err := os.RemoveAll(d.work); err != nil {
			logf("remove %s: %v", d.work, err)
		}
	}()
	d.rig, err = testrig.New(ctx, testrig.Options{Logf: logf})
	if err != nil {
		logf("%v", err)
		return 1
	}
	err = d.test(d.rig.Context())
	if cause := context.Cause(d.rig.Context()); err != nil && cause != nil {
		// The run ended under the test (a deadline, a replica that
		// exited): that is the news, not what was being waited for.
		var failed *testsFailed
		if !errors.As(err, &failed) {
			err = cause
		}
	}

	var in *testrig.Interrupted
	var failed *testsFailed
	switch {
	case errors.As(context.Cause(sigCtx), &in):
		logf("%s; stopping everything", in)
	case errors.As(err, &failed):
		logf("tests failed (exit %d); replica logs follow", failed.code)
	case err != nil:
		logf("FAIL: %v", err)
	}
	closeCtx, cancelClose := context.WithTimeout(hurry, time.Minute)
	defer cancelClose()
	if cerr := d.rig.Close(closeCtx); cerr != nil {
		logf("FAIL: stopping the processes: %v", cerr)
		if err == nil {
			err = cerr
		}
	}
	if (err != nil || in != nil) && len(d.replicas) > 0 {
		d.printLogs()
		if err != nil && in == nil {
			// Again after the logs, so that the tail of a CI run says why.
			logf("FAIL: %v (node's report and the replica logs are above)", err)
		}
	}
	switch {
	case in != nil:
		return in.ExitCode()
	case failed != nil:
		return failed.code
	case err != nil:
		return 1
	}
	// Nothing is printed after node's summary on success: CI reads its
	// closing lines.
	return 0
}

// testsFailed is node --test's failure.
type testsFailed struct{ code int }

func (e *testsFailed) Error() string { return fmt.Sprintf("tests failed (exit %d)", e.code) }

func seconds(name string, def int) (time.Duration, error) {
	v := os.Getenv(name)
	if v == "" {
		return time.Duration(def) * time.Second, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s=%q is not a number of seconds", name, v)
	}
	return time.Duration(n) * time.Second, nil
}

// findTools checks for node (20 or later), npm and, unless HERALD_BIN is
// set, go; and finds the repository.
func (d *driver) findTools() error {
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed", tool)
		}
	}
	d.goTool = os.Getenv("GO")
	if d.goTool == "" {
		d.goTool = "go"
	}
	if d.heraldBin == "" {
		if _, err := exec.LookPath(d.goTool); err != nil {
			return fmt.Errorf("%s is not installed", d.goTool)
		}
	}
	root, err := testrig.ModuleRoot()
	if err != nil {
		return err
	}
	d.root, d.here = root, filepath.Join(root, "e2e")
	return nil
}

// test is the run, from the build to node's verdict; the caller stops the
// processes.
func (d *driver) test(ctx context.Context) error {
	var version bytes.Buffer
	if err := d.rig.Run(ctx, testrig.Spec{Name: "node --version", Path: "node", Args: []string{"-p", "process.versions.node"},
		Stdout: &version, Layer: layerTools}); err != nil {
		return fmt.Errorf("check node's version: %w", err)
	}
	major, _, _ := strings.Cut(strings.TrimSpace(version.String()), ".")
	if n, err := strconv.Atoi(major); err != nil || n < 20 {
		return fmt.Errorf("node 20 or later is needed, found %s", strings.TrimSpace(version.String()))
	}

	herald := filepath.Join(d.work, "herald")
	if d.heraldBin != "" {
		logf("using the herald binary %s (HERALD_BIN)", d.heraldBin)
		if err := copyFile(d.heraldBin, herald); err != nil {
			return err
		}
	} else {
		logf("building herald")
		if err := d.rig.Run(ctx, testrig.Spec{Name: "go build", Path: d.goTool, Args: []string{"build", "-C", d.root, "-o", herald, "./cmd/herald"},
			Stdout: os.Stdout, Stderr: os.Stderr, Layer: layerTools}); err != nil {
			return fmt.Errorf("build herald: %w", err)
		}
	}

	ports, err := testrig.FreePorts(3)
	if err != nil {
		return err
	}
	urlA := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	urlB := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	natsListen := fmt.Sprintf("127.0.0.1:%d", ports[2])
	natsURL := "nats://" + natsListen

	logf("starting replica A on %s (embedded NATS, clients on %s)", urlA, natsListen)
	if err := d.startReplica(ctx, "a", herald, urlA, "--addr", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--data-dir", filepath.Join(d.work, "a"), "--nats-listen", natsListen); err != nil {
		return err
	}
	logf("starting replica B on %s (joins %s)", urlB, natsURL)
	if err := d.startReplica(ctx, "b", herald, urlB, "--addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--data-dir", filepath.Join(d.work, "b"), "--nats-url", natsURL); err != nil {
		return err
	}
	logf("both replicas are ready")

	if err := d.installPackages(ctx); err != nil {
		return err
	}

	logf("running the tests")
	opts, files := splitArgs(d.args, func(p string) bool { _, err := os.Stat(p); return err == nil })
	if len(files) == 0 {
		files, err = filepath.Glob(filepath.Join(d.here, "test", "*.test.js"))
		if err != nil {
			return err
		}
		for i, f := range files {
			files[i], _ = filepath.Rel(d.here, f)
		}
		slices.Sort(files)
	}
	testReplicas := filepath.Join(d.work, "test-replicas")
	if err := os.MkdirAll(testReplicas, 0o755); err != nil {
		return err
	}
	// For tests that start (and stop) a replica of their own: the binary,
	// A's NATS, and where its data goes. Such a replica is node's
	// descendant, in node's process group.
	env := append(os.Environ(), "HERALD_A="+urlA, "HERALD_B="+urlB,
		"HERALD_E2E_BIN="+herald, "HERALD_E2E_NATS_URL="+natsURL, "HERALD_E2E_DATA="+testReplicas)
	err = d.rig.Run(ctx, testrig.Spec{
		Name: "node --test", Path: "node", Args: append(append([]string{"--test", "--test-reporter=spec"}, opts...), files...),
		Dir: d.here, Env: env, Stdout: os.Stdout, Stderr: os.Stderr, Layer: layerTools,
	})
	var exit *testrig.ExitError
	if errors.As(err, &exit) && exit.ExitCode() > 0 {
		return &testsFailed{code: exit.ExitCode()}
	}
	return err
}

// startReplica starts a replica (only its flags configure it: the caller's
// HERALD_* variables are not passed on), logging to NAME.log, and waits
// until it answers 200 on /readyz.
func (d *driver) startReplica(ctx context.Context, name, herald, url string, args ...string) error {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	log, err := os.Create(filepath.Join(d.work, name+".log"))
	if err != nil {
		return fmt.Errorf("start replica %s: %w", strings.ToUpper(name), err)
	}
	defer log.Close() // the replica has its own copy
	p, err := d.rig.Start(testrig.Spec{
		Name: "replica " + strings.ToUpper(name), Path: herald,
		Args: append([]string{"--auth", "dev", "--log-level", "debug", "--drain-timeout", "1s"}, args...),
		Env:  env, Stdout: log, Stderr: log, Service: true, Layer: layerReplicas, Grace: grace,
	})
	if err != nil {
		return fmt.Errorf("start replica %s: %w", strings.ToUpper(name), err)
	}
	d.replicas = append(d.replicas, name)
	if _, err := testrig.WaitHTTP(ctx, testrig.HTTPCheck{URL: url + "/readyz", Timeout: d.readyTimeout, Proc: p}); err != nil {
		if p.Exited() {
			return fmt.Errorf("replica %s (pid %d) exited before becoming ready: %w", strings.ToUpper(name), p.Pid(), err)
		}
		return fmt.Errorf("replica %s did not become ready: %w", strings.ToUpper(name), err)
	}
	return nil
}

// installPackages installs the pinned npm packages with npm ci when
// node_modules does not match package-lock.json (whose hash it records in
// node_modules/.lockhash).
func (d *driver) installPackages(ctx context.Context) error {
	lock, err := os.ReadFile(filepath.Join(d.here, "package-lock.json"))
	if err != nil {
		return fmt.Errorf("install the npm packages: %w", err)
	}
	sum := sha256.Sum256(lock)
	hash := hex.EncodeToString(sum[:])
	stamp := filepath.Join(d.here, "node_modules", ".lockhash")
	if b, err := os.ReadFile(stamp); err == nil && strings.TrimSpace(string(b)) == hash {
		return nil
	}
	logf("installing the pinned npm packages (npm ci)")
	if err := d.rig.Run(ctx, testrig.Spec{Name: "npm ci", Path: "npm", Args: []string{"ci", "--prefix", d.here, "--no-audit", "--no-fund", "--loglevel=error"},
		Stdout: os.Stdout, Stderr: os.Stderr, Layer: layerTools}); err != nil {
		return fmt.Errorf("install the npm packages: %w", err)
	}
	if err := os.WriteFile(stamp, []byte(hash+"\n"), 0o644); err != nil {
		return fmt.Errorf("install the npm packages: %w", err)
	}
	return nil
}

// splitArgs splits the command's arguments into node --test options and
// test files (ending in .test.js): a file that exists relative to the
// working directory is made absolute, others are left relative to e2e/.
func splitArgs(args []string, exists func(string) bool) (opts, files []string) {
	for _, a := range args {
		if !strings.HasSuffix(a, ".test.js") {
			opts = append(opts, a)
			continue
		}
		if exists(a) {
			if abs, err := filepath.Abs(a); err == nil {
				a = abs
			}
		}
		files = append(files, a)
	}
	return opts, files
}

// printLogs prints the replicas' logs.
func (d *driver) printLogs() {
	for _, name := range d.replicas {
		path := filepath.Join(d.work, name+".log")
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "----- replica %s log (%s) -----\n", strings.ToUpper(name), path)
		os.Stderr.Write(b)
	}
	fmt.Fprintln(os.Stderr, "----- end of replica logs -----")
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	return nil
}
