package main

import (
	"io"
	"net/http"
	"net/http/httptest"
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
