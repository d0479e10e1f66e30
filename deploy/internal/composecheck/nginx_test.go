package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// startShippedNginx runs nginx with the shipped deploy/nginx.conf on a
// loopback port, its upstream every server line of the shipped
// upstreams.conf pointed at upstream. It returns nginx's address.
func startShippedNginx(t *testing.T, upstream string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr != nil {
			// make test needs nginx anyway (the browser tests run behind
			// it); .ci/run installs it. A skip here would hide the check.
			t.Fatal("nginx not found on PATH or at /usr/sbin/nginx: apt-get install nginx")
		}
		bin = "/usr/sbin/nginx"
	}
	deploy, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	dir := t.TempDir()
	conf := filepath.Join(dir, "conf")
	for _, d := range []string{filepath.Join(conf, "conf.d"), filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(deploy, "nginx.conf"), filepath.Join(conf, "nginx.conf")); err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(deploy, "upstreams.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var ups strings.Builder
	server := regexp.MustCompile(`^server herald[0-9]+:8080 `)
	for line := range strings.Lines(string(shipped)) {
		if server.MatchString(line) {
			fmt.Fprintf(&ups, "server %s max_fails=1 fail_timeout=5s;\n", upstream)
		}
	}
	if ups.Len() == 0 {
		t.Fatalf("no 'server heraldN:8080' lines in upstreams.conf:\n%s", shipped)
	}
	var paths strings.Builder
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&paths, "%s_temp_path %s/tmp/%s;\n", p, dir, p)
	}
	files := map[string]string{
		"upstreams.conf":         ups.String(),
		"listen.conf":            "listen " + addr + ";\n",
		"conf.d/test-paths.conf": paths.String(),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Workers may run as nobody when the test runs as root.
	for _, d := range []string{filepath.Dir(dir), dir, filepath.Join(dir, "tmp")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-p", dir+"/", "-c", "conf/nginx.conf", "-e", "stderr",
		"-g", "daemon off; pid "+dir+"/nginx.pid;")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return addr
		}
		select {
		case <-done:
			t.Fatalf("nginx exited:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not accept on %s:\n%s", addr, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNginxPassesTheHostWithItsPort: Herald's same-origin check (the
// default with --auth jwt) compares a request's Origin with its Host. A
// page served through nginx on a port other than 80 (http://localhost:8080
// in compose.yaml) sends Origin http://localhost:8080; nginx must pass
// Host: localhost:8080, not "localhost" ($host drops the port), or every
// same-origin POST and WebSocket upgrade is refused with 403.
func TestNginxPassesTheHostWithItsPort(t *testing.T) {
	hosts := make(chan string, 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts <- r.Host
		w.WriteHeader(http.StatusNoContent)
	}))
	defer up.Close()
	addr := startShippedNginx(t, strings.TrimPrefix(up.URL, "http://"))
	_, port, _ := net.SplitHostPort(addr)

	for _, host := range []string{addr, "localhost:" + port, "chat.example.com"} {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/graphql", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Origin", "http://"+host)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST through nginx with Host %s: status %d", host, resp.StatusCode)
		}
		if got := <-hosts; got != host {
			t.Errorf("client sent Host %q through nginx, Herald saw %q: its Origin %q is then cross-origin", host, got, "http://"+host)
		}
	}
}
