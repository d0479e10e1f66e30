package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoopbackUpstreams(t *testing.T) {
	shipped, err := os.ReadFile("../upstreams.conf")
	if err != nil {
		t.Fatal(err)
	}
	ports := []int{1001, 1002, 1003}
	tests := []struct {
		name    string
		in      string
		want    string // "" if it must fail
		wantErr string
	}{
		{"shipped", string(shipped),
			"server 127.0.0.1:1001 max_fails=1 fail_timeout=5s;\nserver 127.0.0.1:1002 max_fails=1 fail_timeout=5s;\nserver 127.0.0.1:1003 max_fails=1 fail_timeout=5s;\n" +
				"server 127.0.0.1:1001 backup max_fails=0;\nserver 127.0.0.1:1002 backup max_fails=0;\nserver 127.0.0.1:1003 backup max_fails=0;\n", ""},
		{"without resolve", "server herald1:8080 max_fails=1;\nserver herald2:8080 down;\n  # c\nserver herald3:8080 weight=2;\n",
			"server 127.0.0.1:1001 max_fails=1;\nserver 127.0.0.1:1002 down;\nserver 127.0.0.1:1003 weight=2;\n", ""},
		{"a fourth replica", string(shipped) + "server herald4:8080 resolve;\n", "", "no longer has the three"},
		{"two replicas", "server herald1:8080;\nserver herald2:8080;\n", "", "no longer has the three"},
		{"two replicas and a backup", "server herald1:8080;\nserver herald2:8080;\nserver herald3:8080 backup;\n", "", "no longer has the three"},
		{"another port", "server herald1:8080;\nserver herald2:8080;\nserver herald3:9090;\n", "", "no longer has the three"},
		{"resolve elsewhere", "server herald1:8080;\nserver herald2:8080;\nserver herald3:8080;\nzone x resolve\n", "", "no longer has the three"},
	}
	t.Run("shipped, two replicas", func(t *testing.T) {
		got, err := loopbackUpstreams(string(shipped), ports[:2])
		want := "server 127.0.0.1:1001 max_fails=1 fail_timeout=5s;\nserver 127.0.0.1:1002 max_fails=1 fail_timeout=5s;\n" +
			"server 127.0.0.1:1001 backup max_fails=0;\nserver 127.0.0.1:1002 backup max_fails=0;\n"
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loopbackUpstreams(tt.in, ports)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestLoopbackListen(t *testing.T) {
	shipped, err := os.ReadFile("../listen.conf")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"shipped", string(shipped), true},
		{"indented", "  listen 8080;\n", true},
		{"another port", "listen 80;\n", false},
		{"two listens", "listen 8080;\nlisten [::]:8080;\n", false},
		{"none", "# nothing\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loopbackListen(tt.in, 4242)
			if !tt.ok {
				if err == nil {
					t.Fatalf("got %q, want an error", got)
				}
				return
			}
			if err != nil || !strings.Contains(got, "listen 127.0.0.1:4242;") || strings.Contains(got, "8080") {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
}

func TestAccessLog(t *testing.T) {
	log := `127.0.0.1 [t] "GET /graphql HTTP/1.1" 101 5 rt=1 upstream=127.0.0.1:1 us=101 urt=1
127.0.0.1 [t] "POST /graphql HTTP/1.1" 200 5 rt=1 upstream=127.0.0.1:1, 127.0.0.1:2 us=502, 200 urt=1
127.0.0.1 [t] "POST /graphql HTTP/1.1" 200 5 rt=1 upstream=127.0.0.1:2 us=200 urt=1
127.0.0.1 [t] "POST /graphql HTTP/1.1" 502 5 rt=1 upstream=127.0.0.1:1, 127.0.0.1:2, 127.0.0.1:3 us=502, 502, 502 urt=1
`
	if got, want := accessSummary(log), "101 ×1, 200 ×2, 502 ×1; requests tried on more than one replica: 2"; got != want {
		t.Errorf("accessSummary = %q, want %q", got, want)
	}
	bad := notOK(log)
	if len(bad) != 1 || !strings.Contains(bad[0], `" 502 `) {
		t.Errorf("notOK = %q", bad)
	}
	if got := lastLines("a\nb\nc\n", 2); strings.Join(got, ",") != "b,c" {
		t.Errorf("lastLines = %q", got)
	}
	if got := lastLines("", 2); len(got) != 0 {
		t.Errorf("lastLines of nothing = %q", got)
	}
}

// TestReadStarted: the start of publishing is read from the pipe as soon
// as it is written; the clients' end, a deadline and a cancelled run end
// the wait.
func TestReadStarted(t *testing.T) {
	tests := []struct {
		name    string
		write   string
		close   bool
		timeout time.Duration
		cancel  bool
		want    string
		wantErr string
	}{
		{"started", "2026-01-01T00:00:00Z\nroom-1\nroom-2\n", false, 10 * time.Second, false, "room-1", ""},
		{"clients ended", "2026-01-01T00:00:00Z\n", true, 10 * time.Second, false, "", ""},
		{"deadline", "", false, 50 * time.Millisecond, false, "", "did not start publishing within 50ms"},
		{"cancelled", "", false, 10 * time.Second, true, "", "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			if _, err := w.WriteString(tt.write); err != nil {
				t.Fatal(err)
			}
			if tt.close {
				w.Close()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				cancel()
			}
			got, err := readStarted(ctx, r, tt.timeout)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %q, %v; want an error saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
