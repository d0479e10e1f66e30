package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestHealthcheck(t *testing.T) {
	ready := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = io.WriteString(w, `{"ready":false}`)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	env := func(k string) string {
		if k == "HERALD_ADDR" {
			return addr
		}
		return ""
	}
	if code := run([]string{"healthcheck"}, env, io.Discard); code != 0 {
		t.Fatalf("ready replica: exit %d, want 0", code)
	}
	ready = false
	var stderr strings.Builder
	if code := run([]string{"healthcheck"}, env, &stderr); code != 1 || !strings.Contains(stderr.String(), "503") {
		t.Fatalf("unready replica: exit %d, stderr %q", code, stderr.String())
	}
	if code := run([]string{"healthcheck", "--addr", freeAddr(t)}, func(string) string { return "" }, io.Discard); code != 1 {
		t.Fatalf("nothing listening: exit %d, want 1", code)
	}
	// Docker reserves exit code 2 of a HEALTHCHECK: unhealthy is 1.
	stderr.Reset()
	if code := run([]string{"healthcheck"}, func(k string) string {
		return map[string]string{"HERALD_ADDR": addr, "HERALD_AUTH": "none"}[k]
	}, &stderr); code != 1 || !strings.Contains(stderr.String(), "invalid configuration") {
		t.Fatalf("bad configuration: exit %d, stderr %q; want 1", code, stderr.String())
	}
}

func TestLocalAddr(t *testing.T) {
	for in, want := range map[string]string{
		":8080":          "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8080":      "127.0.0.1:8080",
		"10.1.2.3:9000":  "10.1.2.3:9000",
		"localhost:8080": "localhost:8080",
	} {
		if got := localAddr(in); got != want {
			t.Errorf("localAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHealthcheckIgnoresHTTPProxy: the replica checked is on this host,
// so `herald healthcheck` never asks it through HTTP_PROXY (which Docker
// passes into containers from the client's proxy settings). A proxy
// answering for an address it cannot reach, or for one nothing listens
// on, must not make an absent replica healthy.
func TestHealthcheckIgnoresHTTPProxy(t *testing.T) {
	asked := make(chan string, 10)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.URL.String()
		_, _ = io.WriteString(w, `{"ready":true}`)
	}))
	defer proxy.Close()
	for _, addr := range []string{"herald.invalid:8080", "192.0.2.1:8080"} {
		t.Run(addr, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "healthcheck", "--addr", addr)
			cmd.Env = append(os.Environ(), runAsHeraldEnv+"=1", "HTTP_PROXY="+proxy.URL, "http_proxy="+proxy.URL,
				"NO_PROXY=", "no_proxy=")
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("healthcheck of %s with nothing there: %v, want exit code 1; output %q", addr, err, out)
			}
			select {
			case u := <-asked:
				t.Errorf("healthcheck went through HTTP_PROXY for %s", u)
			default:
			}
		})
	}
}

// TestHealthcheckAddrForms runs `herald healthcheck --addr <form>` against
// a ready replica listening on that form of address: the wildcard hosts
// (empty, 0.0.0.0, ::) are asked on loopback, the others as given.
func TestHealthcheckAddrForms(t *testing.T) {
	readyz := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"ready":true}`)
	})
	for _, host := range []string{"", "0.0.0.0", "127.0.0.1", "[::]", "[::1]", "localhost", "[::1%lo]"} {
		t.Run(host, func(t *testing.T) {
			l, err := net.Listen("tcp", host+":0")
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", host, err)
			}
			srv := &http.Server{Handler: readyz}
			go func() { _ = srv.Serve(l) }()
			defer srv.Close()
			_, port, _ := net.SplitHostPort(l.Addr().String())
			addr := host + ":" + port
			var stderr strings.Builder
			if code := run([]string{"healthcheck", "--addr", addr}, func(string) string { return "" }, &stderr); code != 0 {
				t.Errorf("healthcheck --addr %s: exit %d, want 0: %s", addr, code, stderr.String())
			}
		})
	}
}

// TestHealthcheckRedirectIsNotReady: a /readyz that redirects (a proxy or
// another server on the port, answering for what it does not serve) is
// not readiness, even when the redirect's target answers 200.
func TestHealthcheckRedirectIsNotReady(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Redirect(w, r, "/login", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "welcome")
	}))
	defer srv.Close()
	var stderr strings.Builder
	code := run([]string{"healthcheck", "--addr", strings.TrimPrefix(srv.URL, "http://")}, noEnv, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "302") {
		t.Fatalf("/readyz redirecting to a page that answers 200: exit %d (%q), want 1 naming the 302", code, stderr.String())
	}
}
