package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// nginxCluster is Herald replicas (three, the shipped layout, unless
// startNginxReplicas says otherwise) on loopback, the first embedding
// NATS for the others (README, "Two replicas on one machine"), behind nginx
// exactly as the cluster test runs it: the shipped nginx.conf and the
// shipped includes mapped to loopback. The tests of nginx.conf use it.
type nginxCluster struct {
	ctx         context.Context // the rig's: ends when the test's processes are stopped
	heraldPorts []int
	replicas    []*testrig.Proc
	front       string // nginx's /graphql
}

// startNginxCluster starts the cluster, each replica with flags besides
// its address, data directory and NATS; the test's cleanup stops it.
func startNginxCluster(t *testing.T, flags ...string) *nginxCluster {
	t.Helper()
	return startNginxReplicas(t, 3, flags...)
}

// startNginxReplicas is startNginxCluster with n replicas (1 to 3): the
// shipped upstreams.conf without the lines of the replicas beyond n.
func startNginxReplicas(t *testing.T, n int, flags ...string) *nginxCluster {
	t.Helper()
	rig, root, work := newNginxRig(t, 150*time.Second)
	c := &nginxCluster{ctx: rig.Context()}

	herald := filepath.Join(work, "herald")
	if err := rig.Run(c.ctx, testrig.Spec{Name: "go build", Path: "go", Args: []string{"build", "-C", root, "-o", herald, "./cmd/herald"},
		Stdout: os.Stderr, Stderr: os.Stderr, Layer: layerFront}); err != nil {
		t.Fatalf("build herald: %v", err)
	}
	ports, err := testrig.FreePorts(n + 2)
	if err != nil {
		t.Fatal(err)
	}
	c.heraldPorts = ports[:n]
	c.replicas = make([]*testrig.Proc, n)
	natsPort, nginxPort := ports[n], ports[n+1]
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	start := func(i int, nats ...string) {
		t.Helper()
		args := append([]string{"--auth", "dev", "--addr", fmt.Sprintf("127.0.0.1:%d", c.heraldPorts[i-1]),
			"--data-dir", filepath.Join(work, fmt.Sprintf("herald%d", i))}, append(nats, flags...)...)
		log, err := os.Create(filepath.Join(work, fmt.Sprintf("herald%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer log.Close()
		p, err := rig.Start(testrig.Spec{Name: fmt.Sprintf("herald%d", i), Path: herald, Args: args, Env: env,
			Stdout: log, Stderr: log, Service: true, Layer: layerHerald, Grace: grace})
		if err != nil {
			t.Fatal(err)
		}
		c.replicas[i-1] = p
	}
	waitReady := func(port int) {
		t.Helper()
		if last, err := testrig.WaitHTTP(c.ctx, testrig.HTTPCheck{URL: fmt.Sprintf("http://127.0.0.1:%d/readyz", port),
			Timeout: 40 * time.Second, Interval: 200 * time.Millisecond}); err != nil {
			t.Fatalf("127.0.0.1:%d not ready: %v (%s)", port, err, last)
		}
	}
	start(1, "--nats-listen", fmt.Sprintf("127.0.0.1:%d", natsPort))
	waitReady(c.heraldPorts[0])
	for i := 2; i <= n; i++ {
		start(i, "--nats-url", fmt.Sprintf("nats://127.0.0.1:%d", natsPort))
	}
	for _, port := range c.heraldPorts[1:] {
		waitReady(port)
	}

	startNginxFront(t, rig, root, work, c.heraldPorts, nginxPort)
	waitReady(nginxPort)
	c.front = fmt.Sprintf("http://127.0.0.1:%d/graphql", nginxPort)
	return c
}

// newNginxRig is a rig that runs for at most timeout, the module's root
// and a work directory; the test's cleanup stops the rig's processes and
// removes the directory.
func newNginxRig(t *testing.T, timeout time.Duration) (rig *testrig.Rig, root, work string) {
	t.Helper()
	root, err := testrig.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	work, err = os.MkdirTemp("", "herald-nginx.")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	rig, err = testrig.New(ctx, testrig.Options{Logf: t.Logf})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer ccancel()
		if err := rig.Close(cctx); err != nil {
			t.Errorf("stop the processes: %v", err)
		}
		cancel()
		_ = os.RemoveAll(work)
	})
	return rig, root, work
}

// startNginxFront starts Debian's nginx with the shipped nginx.conf, its
// includes mapped to the loopback upstream ports and listening on
// nginxPort, as a service of rig; its log is shown if the test fails.
func startNginxFront(t *testing.T, rig *testrig.Rig, root, work string, upstreams []int, nginxPort int) {
	t.Helper()
	nginxPath, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			t.Fatal("nginx not found on PATH or at /usr/sbin/nginx: apt-get install nginx")
		}
		nginxPath = "/usr/sbin/nginx"
	}
	ngx := filepath.Join(work, "nginx")
	if err := writeNginxPrefix(root, work, ngx, upstreams, nginxPort); err != nil {
		t.Fatal(err)
	}
	nginxLog, err := os.Create(filepath.Join(work, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer nginxLog.Close()
	if _, err := rig.Start(testrig.Spec{Name: "nginx", Path: nginxPath,
		Args:   []string{"-p", ngx + "/", "-c", "conf/nginx.conf", "-e", "stderr", "-g", "daemon off; pid " + ngx + "/nginx.pid;"},
		Stdout: nginxLog, Stderr: nginxLog, Service: true, Layer: layerFront, Grace: grace}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(work, "nginx.log"))
			t.Logf("nginx's log:\n%s", strings.Join(lastLines(string(b), 30), "\n"))
		}
	})
}
