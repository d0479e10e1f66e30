package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size (as mount's size=, e.g. "8m") on a
// fresh directory and unmounts it when the test ends: a small disk to fill.
// The test is skipped where mounting is not allowed (not root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "heralddisk_")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		_ = os.Remove(dir)
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		// Registered before the replica's stop: that runs first, but
		// the kernel may take a moment to let the mount go.
		for range 50 {
			if err := exec.Command("umount", dir).Run(); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = os.Remove(dir)
	})
	return dir
}

// fillDisk writes a file in dir until its file system is full, and returns
// its path and size.
func fillDisk(t *testing.T, dir string) (string, int64) {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size int64
	for _, chunk := range []int{64 << 10, 512} {
		buf := make([]byte, chunk)
		for range 100000 {
			n, err := f.Write(buf)
			size += int64(n)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill: %v", err)
				}
				break
			}
		}
	}
	return name, size
}

// readyz returns /readyz's status and body.
func readyz(addr string) (int, string) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitReadyzFor polls /readyz until ok says its status and body are what is
// wanted, and returns the body; it fails the test after within.
func waitReadyzFor(t *testing.T, addr string, within time.Duration, what string, ok func(status int, body string) bool) string {
	t.Helper()
	deadline := time.Now().Add(within)
	var polls, unanswered int
	var slowest time.Duration
	lastAnswer := "none"
	for {
		began := time.Now()
		st, body := readyz(addr)
		took := time.Since(began)
		polls++
		slowest = max(slowest, took)
		if st == 0 {
			unanswered++
		} else {
			lastAnswer = fmt.Sprintf("%d %s", st, body)
		}
		if ok(st, body) {
			return body
		}
		if time.Now().After(deadline) {
			// Say whether /readyz hung (its checks have an 800 ms budget)
			// or answered "not yet": the two are different bugs.
			t.Fatalf("/readyz: not %s after %s: %d %s (%d polls, %d unanswered within 5s, slowest %s; last answer: %s)",
				what, within, st, body, polls, unanswered, slowest.Round(time.Millisecond), lastAnswer)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
