package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

const (
	publishFor = 50 * time.Second
	partitions = 3
	// grace is how long a process has between SIGTERM and SIGKILL when the
	// driver stops it: a replica drains its sockets, then its NATS
	// connection.
	grace = 15 * time.Second
	// drainWait bounds a replica's exit after the schedule's SIGTERM.
	drainWait   = 25 * time.Second
	natsReady   = 30 * time.Second
	heraldReady = 30 * time.Second
	nginxReady  = 15 * time.Second
	startedWait = 60 * time.Second
)

// Layers of the rig: Close stops the highest first.
const (
	layerNATS = iota
	layerHerald
	layerFront // nginx, the clients, builds
)

// driver runs one cluster test.
type driver struct {
	began      time.Time
	budget     time.Duration
	clientArgs []string
	goTool     string
	nginx      string
	root       string // the repository
	work       string // temporary: binaries, data, logs
	rig        *testrig.Rig

	natsPort, routePort, monPort, heraldPort [4]int // [1..3]
	nginxPort                                int
	heraldFlags                              []string
	heraldEnv                                []string

	procs      map[string]*testrig.Proc // "nats1", "herald2", "nginx", "clients": the latest of each
	natsKilled int                      // the NATS node the schedule killed
	// presenceLeft is how long the killed replica's user took to leave
	// the other replicas' presence (the slowest watcher).
	presenceLeft time.Duration
}

func (d *driver) elapsed() string {
	return fmt.Sprintf("%.1fs", time.Since(d.began).Seconds())
}

// logf prints a progress line; safe from several goroutines (one write).
func (d *driver) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cluster-test [+%s]: %s\n", d.elapsed(), fmt.Sprintf(format, args...))
}

func (d *driver) bin(name string) string { return filepath.Join(d.work, "bin", name) }

// test is the run, from the build to the verdict; the caller stops the
// processes.
func (d *driver) test(ctx context.Context) error {
	if err := d.build(ctx); err != nil {
		return err
	}
	if err := d.allocatePorts(); err != nil {
		return err
	}
	if err := d.configureHerald(ctx); err != nil {
		return err
	}
	if err := d.configureNginx(ctx); err != nil {
		return err
	}

	d.logf("starting a 3-node NATS cluster (client ports %d %d %d)", d.natsPort[1], d.natsPort[2], d.natsPort[3])
	for i := 1; i <= 3; i++ {
		if err := d.startNATS(i); err != nil {
			return err
		}
	}
	for i := 1; i <= 3; i++ {
		if err := d.waitNATS(ctx, i); err != nil {
			return err
		}
	}
	d.logf("starting herald1 (creates the R3 stream), then herald2 and herald3 (ports %d %d %d)",
		d.heraldPort[1], d.heraldPort[2], d.heraldPort[3])
	if err := d.startHerald(1); err != nil {
		return err
	}
	if err := d.waitHerald(ctx, 1); err != nil {
		return err
	}
	for i := 2; i <= 3; i++ {
		if err := d.startHerald(i); err != nil {
			return err
		}
	}
	for i := 2; i <= 3; i++ {
		if err := d.waitHerald(ctx, i); err != nil {
			return err
		}
	}
	d.logf("starting nginx on 127.0.0.1:%d with deploy/nginx.conf", d.nginxPort)
	if err := d.startNginx(ctx); err != nil {
		return err
	}
	if err := d.runClients(ctx); err != nil {
		return err
	}
	left, err := d.presenceCheck(ctx)
	if err != nil {
		return err
	}
	d.presenceLeft = left
	return nil
}

// build builds herald, nats-server (go.mod's version) and the clients.
func (d *driver) build(ctx context.Context) error {
	d.logf("building herald, nats-server (the version go.mod pins) and the test clients")
	if err := os.MkdirAll(d.bin(""), 0o755); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	err := d.rig.Run(ctx, testrig.Spec{
		Name: "go build", Path: d.goTool, Layer: layerFront, Grace: grace,
		Args:   []string{"build", "-C", d.root, "-o", d.bin("") + "/", "./cmd/herald", "github.com/nats-io/nats-server/v2", "./deploy/cluster-test/clients"},
		Stdout: os.Stdout, Stderr: os.Stderr,
	})
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	out, err := d.output(ctx, "nats-server --version", d.bin("nats-server"), "--version")
	if err != nil {
		return err
	}
	d.logf("%s", strings.TrimSpace(out))
	return nil
}

// output runs a short command and returns its output (stdout and stderr).
func (d *driver) output(ctx context.Context, name, path string, args ...string) (string, error) {
	var out bytes.Buffer
	err := d.rig.Run(ctx, testrig.Spec{Name: name, Path: path, Args: args, Stdout: &out, Stderr: &out, Layer: layerFront})
	if err != nil {
		return out.String(), fmt.Errorf("run %s: %w: %s", name, err, out.String())
	}
	return out.String(), nil
}

func (d *driver) allocatePorts() error {
	ports, err := testrig.FreePorts(13)
	if err != nil {
		return err
	}
	for i := 1; i <= 3; i++ {
		d.natsPort[i] = ports[i-1]
		d.routePort[i] = ports[3+i-1]
		d.monPort[i] = ports[6+i-1]
		d.heraldPort[i] = ports[9+i-1]
	}
	d.nginxPort = ports[12]
	return nil
}

// logFile opens NAME.log in the work directory for appending, with a line
// that marks this start (a restarted process appends to the same file).
func (d *driver) logFile(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(d.work, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	fmt.Fprintf(f, "===== cluster-test: starting %s at +%s =====\n", name, d.elapsed())
	return f, nil
}

// startService starts a process that runs until the driver stops it, its
// output appended to NAME.log.
func (d *driver) startService(name, path string, layer int, env []string, args ...string) error {
	f, err := d.logFile(name)
	if err != nil {
		return err
	}
	// The child has its own copy of the descriptor.
	defer f.Close()
	p, err := d.rig.Start(testrig.Spec{
		Name: name, Path: path, Args: args, Env: env,
		Stdout: f, Stderr: f, Service: true, Layer: layer, Grace: grace,
	})
	if err != nil {
		return err
	}
	d.procs[name] = p
	return nil
}

// ---- NATS ----------------------------------------------------------------

func (d *driver) natsURLs() string {
	var urls []string
	for i := 1; i <= 3; i++ {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", d.natsPort[i]))
	}
	return strings.Join(urls, ",")
}

func (d *driver) startNATS(i int) error {
	var routes []string
	for j := 1; j <= 3; j++ {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", d.routePort[j]))
		}
	}
	store := filepath.Join(d.work, fmt.Sprintf("nats%d", i))
	if err := os.MkdirAll(store, 0o755); err != nil {
		return fmt.Errorf("start nats node %d: %w", i, err)
	}
	err := d.startService(fmt.Sprintf("nats%d", i), d.bin("nats-server"), layerNATS, nil,
		"-a", "127.0.0.1", "-p", fmt.Sprint(d.natsPort[i]), "-m", fmt.Sprint(d.monPort[i]), "-n", fmt.Sprintf("nats%d", i),
		"-js", "-sd", store, "--cluster_name", "herald", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", d.routePort[i]),
		"--routes", strings.Join(routes, ","))
	if err != nil {
		return fmt.Errorf("start nats node %d: %w", i, err)
	}
	return nil
}

// waitNATS waits until the node's /healthz is 200 (JetStream up and current).
func (d *driver) waitNATS(ctx context.Context, i int) error {
	name := fmt.Sprintf("nats%d", i)
	_, err := testrig.WaitHTTP(ctx, testrig.HTTPCheck{
		URL: fmt.Sprintf("http://127.0.0.1:%d/healthz", d.monPort[i]), Timeout: natsReady, Interval: 200 * time.Millisecond,
		Proc: d.procs[name],
	})
	if err != nil {
		return fmt.Errorf("%s not healthy: %w", name, err)
	}
	return nil
}

// ---- Herald ----------------------------------------------------------------

// configureHerald sets the replicas' flags and environment (without the
// caller's HERALD_* variables: only the flags configure them).
func (d *driver) configureHerald(ctx context.Context) error {
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			d.heraldEnv = append(d.heraldEnv, kv)
		}
	}
	d.heraldFlags = []string{"--auth", "dev", "--log-level", "info", "--nats-url", d.natsURLs(),
		"--stream-replicas", "3", "--partitions", fmt.Sprint(partitions), "--ws-ping-interval", "5s"}
	// herald -h exits 0 (flag.ErrHelp is handled), or 2 with older flag
	// handling: only its text matters.
	var out bytes.Buffer
	_ = d.rig.Run(ctx, testrig.Spec{Name: "herald -h", Path: d.bin("herald"), Args: []string{"-h"}, Env: d.heraldEnv,
		Stdout: &out, Stderr: &out, Layer: layerFront})
	if err := context.Cause(ctx); err != nil {
		return err
	}
	if strings.Contains(out.String(), "-drain-timeout") {
		d.heraldFlags = append(d.heraldFlags, "--drain-timeout", "2s")
	} else {
		d.logf("note: this herald has no --drain-timeout flag; using its default drain")
	}
	return nil
}

func (d *driver) startHerald(i int) error {
	args := append(append([]string{}, d.heraldFlags...),
		"--addr", fmt.Sprintf("127.0.0.1:%d", d.heraldPort[i]), "--data-dir", filepath.Join(d.work, fmt.Sprintf("herald%d", i)))
	if err := d.startService(fmt.Sprintf("herald%d", i), d.bin("herald"), layerHerald, d.heraldEnv, args...); err != nil {
		return fmt.Errorf("start herald replica %d: %w", i, err)
	}
	return nil
}

// waitHerald waits until the replica's /readyz is 200. A slow start is
// reported with the last answer that was not.
func (d *driver) waitHerald(ctx context.Context, i int) error {
	name := fmt.Sprintf("herald%d", i)
	began := time.Now()
	last, err := testrig.WaitHTTP(ctx, testrig.HTTPCheck{
		URL: fmt.Sprintf("http://127.0.0.1:%d/readyz", d.heraldPort[i]), Timeout: heraldReady, Interval: 200 * time.Millisecond,
		Proc: d.procs[name],
	})
	if err != nil {
		return fmt.Errorf("%s not ready: %w", name, err)
	}
	if took := time.Since(began); took > 2*time.Second {
		if last == "" {
			last = "nothing"
		}
		d.logf("note: %s took %s to become ready; before that /readyz said: %s", name, took.Truncate(time.Second), last)
	}
	return nil
}

// ---- nginx ----------------------------------------------------------------

func (d *driver) nginxDir() string { return filepath.Join(d.work, "nginx") }

func (d *driver) nginxArgs() []string {
	ngx := d.nginxDir()
	return []string{"-p", ngx + "/", "-c", "conf/nginx.conf", "-e", "stderr", "-g", "daemon off; pid " + ngx + "/nginx.pid;"}
}

// configureNginx writes nginx's prefix directory (writeNginxPrefix); then
// nginx -t must accept it.
func (d *driver) configureNginx(ctx context.Context) error {
	if err := writeNginxPrefix(d.root, d.work, d.nginxDir(), []int{d.heraldPort[1], d.heraldPort[2], d.heraldPort[3]}, d.nginxPort); err != nil {
		return err
	}
	var out bytes.Buffer
	err := d.rig.Run(ctx, testrig.Spec{Name: "nginx -t", Path: d.nginx, Args: append([]string{"-t", "-q"}, d.nginxArgs()...),
		Stdout: &out, Stderr: &out, Layer: layerFront})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		_ = os.WriteFile(filepath.Join(d.work, "nginx-test.log"), out.Bytes(), 0o644)
		return fmt.Errorf("nginx -t rejects the shipped deploy/nginx.conf: %w:\n%s", err, out.String())
	}
	return nil
}

// startNginx starts nginx (its access log on stdout, its error log on
// stderr) and waits until it answers /readyz (through a replica).
func (d *driver) startNginx(ctx context.Context) error {
	access, err := os.Create(filepath.Join(d.work, "nginx-access.log"))
	if err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	defer access.Close()
	errLog, err := os.Create(filepath.Join(d.work, "nginx-error.log"))
	if err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	defer errLog.Close()
	p, err := d.rig.Start(testrig.Spec{
		Name: "nginx", Path: d.nginx, Args: d.nginxArgs(),
		Stdout: access, Stderr: errLog, Service: true, Layer: layerFront, Grace: grace,
	})
	if err != nil {
		return fmt.Errorf("start nginx: %w", err)
	}
	d.procs["nginx"] = p
	_, err = testrig.WaitHTTP(ctx, testrig.HTTPCheck{
		URL: fmt.Sprintf("http://127.0.0.1:%d/readyz", d.nginxPort), Timeout: nginxReady, Interval: 200 * time.Millisecond, Proc: p,
	})
	if err != nil {
		b, _ := os.ReadFile(errLog.Name())
		return fmt.Errorf("nginx did not answer /readyz: %w\n%s", err, b)
	}
	return nil
}

// ---- failures ----------------------------------------------------------------

// drain SIGTERMs a replica, which must exit 0 within drainWait.
func (d *driver) drain(ctx context.Context, name string) error {
	p := d.procs[name]
	d.logf("failure: SIGTERM %s (pid %d)", name, p.Pid())
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM %s: %w", name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, drainWait)
	defer cancel()
	if err := p.Wait(wctx); err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		status := "still running"
		if p.Exited() {
			status = err.Error()
		} else {
			status += "; " + d.stuckIn(ctx, name, p)
		}
		return fmt.Errorf("%s did not exit 0 within %s of SIGTERM (status: %s)", name, drainWait, status)
	}
	d.logf("%s exited 0 after SIGTERM", name)
	return nil
}

// stuckIn asks a replica that does not exit where it waits: SIGQUIT has
// the Go runtime print every goroutine's stack to its log and exit. It
// sums the dump up in one line (which a CI log's tail shows): the first
// frame of Herald's own code in each goroutine, with its state, and how
// many goroutines are there, most first.
func (d *driver) stuckIn(ctx context.Context, name string, p *testrig.Proc) string {
	if err := p.Signal(syscall.SIGQUIT); err != nil {
		return fmt.Sprintf("SIGQUIT for its goroutines: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = p.Wait(wctx)
	b, err := os.ReadFile(filepath.Join(d.work, name+".log"))
	if err != nil {
		return fmt.Sprintf("read its goroutine dump: %v", err)
	}
	return "its goroutines wait in: " + summarizeStacks(string(b), "github.com/heraldhq/herald/", 8)
}

// summarizeStacks counts the goroutines of the last dump in log by their
// first frame in a function under prefix (and their state), and lists the
// top most common.
func summarizeStacks(log, prefix string, top int) string {
	if i := strings.LastIndex(log, "SIGQUIT: quit"); i >= 0 {
		log = log[i:]
	} else {
		return "no goroutine dump in the log"
	}
	counts := map[string]int{}
	state := ""
	found := true
	for _, line := range strings.Split(log, "\n") {
		switch {
		case strings.HasPrefix(line, "goroutine "):
			// goroutine 7 [chan receive, 2 minutes]:
			state, found = "", false
			if a, b := strings.Index(line, "["), strings.LastIndex(line, "]"); a >= 0 && b > a {
				state, _, _ = strings.Cut(line[a+1:b], ",")
			}
		case !found && strings.HasPrefix(line, prefix):
			fn := strings.TrimPrefix(line, prefix)
			if i := strings.LastIndex(fn, "("); i > 0 {
				fn = fn[:i] // the arguments
			}
			counts[fn+" ["+state+"]"]++
			found = true
		}
	}
	if len(counts) == 0 {
		return "no goroutine in Herald's code"
	}
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		return cmp.Or(counts[b]-counts[a], strings.Compare(a, b))
	})
	var parts []string
	for _, k := range keys[:min(top, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	return strings.Join(parts, "; ")
}

// kill SIGKILLs a process and waits for it.
func (d *driver) kill(ctx context.Context, name, why string) error {
	p := d.procs[name]
	d.logf("failure: SIGKILL %s (pid %d)%s", name, p.Pid(), why)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("SIGKILL %s: %w", name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Wait(wctx); !p.Exited() {
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return fmt.Errorf("SIGKILL %s: %w", name, err)
	}
	return nil
}

// ---- logs ----------------------------------------------------------------

// printLogs prints the end of every process's log and nginx's requests
// that were not answered 200 or 101.
func (d *driver) printLogs() {
	w := os.Stderr
	for _, name := range []string{"herald1", "herald2", "herald3", "nats1", "nats2", "nats3", "nginx-error"} {
		b, err := os.ReadFile(filepath.Join(d.work, name+".log"))
		if err != nil {
			continue
		}
		fmt.Fprintf(w, "----- %s.log (last 150 lines) -----\n", name)
		writeLines(w, lastLines(string(b), 150))
	}
	if b, err := os.ReadFile(filepath.Join(d.work, "nginx-access.log")); err == nil {
		fmt.Fprintln(w, "----- nginx access log: requests not answered 200/101 (last 60) -----")
		writeLines(w, lastLines(strings.Join(notOK(string(b)), "\n"), 60))
	}
	fmt.Fprintln(w, "----- end of logs -----")
}

func writeLines(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// writeNginxPrefix writes the nginx prefix directory ngx, inside work: the
// shipped nginx.conf of root/deploy, unchanged (a symlink), loopback
// versions of its two includes derived from the shipped ones (the
// replicas on heraldPorts, nginx on nginxPort), and temporary paths in ngx
// (not Debian's /var/lib/nginx).
func writeNginxPrefix(root, work, ngx string, heraldPorts []int, nginxPort int) error {
	deploy := filepath.Join(root, "deploy")
	conf := filepath.Join(ngx, "conf")
	for _, dir := range []string{filepath.Join(conf, "conf.d"), filepath.Join(ngx, "tmp")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("configure nginx: %w", err)
		}
	}
	if err := os.Symlink(filepath.Join(deploy, "nginx.conf"), filepath.Join(conf, "nginx.conf")); err != nil {
		return fmt.Errorf("configure nginx: %w", err)
	}
	upstreams, err := os.ReadFile(filepath.Join(deploy, "upstreams.conf"))
	if err != nil {
		return fmt.Errorf("configure nginx: %w", err)
	}
	up, err := loopbackUpstreams(string(upstreams), heraldPorts)
	if err != nil {
		return err
	}
	listen, err := os.ReadFile(filepath.Join(deploy, "listen.conf"))
	if err != nil {
		return fmt.Errorf("configure nginx: %w", err)
	}
	li, err := loopbackListen(string(listen), nginxPort)
	if err != nil {
		return err
	}
	files := map[string]string{
		"upstreams.conf":                 up,
		"listen.conf":                    li,
		"conf.d/cluster-test-paths.conf": tempPaths(filepath.Join(ngx, "tmp")),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(text), 0o644); err != nil {
			return fmt.Errorf("configure nginx: %w", err)
		}
	}
	// Workers may run as another user (nobody) when this runs as root.
	for dir, mode := range map[string]os.FileMode{work: 0o711, ngx: 0o755, filepath.Join(ngx, "tmp"): 0o755} {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("configure nginx: %w", err)
		}
	}
	return nil
}
