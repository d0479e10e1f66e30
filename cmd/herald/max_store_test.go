package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestConfigMaxStore: --max-store is 0 (no bound but the disk) or at
// least 1 MiB, and applies to the embedded NATS server only.
func TestConfigMaxStore(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want int64
		err  string
	}{
		{want: 0},
		{args: []string{"--max-store", "1048576"}, want: 1 << 20},
		{env: map[string]string{"HERALD_MAX_STORE": "10737418240"}, want: 10 << 30},
		{args: []string{"--max-store", "-1"}, err: "--max-store (HERALD_MAX_STORE): must not be negative"},
		{args: []string{"--max-store", "1000"}, err: "--max-store (HERALD_MAX_STORE): must be 0 (no bound but the disk) or at least 1048576"},
		{args: []string{"--max-store", "1048576", "--nats-url", "nats://x:4222"}, err: "applies to the embedded NATS server only"},
		{args: []string{"--nats-url", "nats://x:4222"}, want: 0},
	} {
		c, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%v %v: error %v, want one containing %q", tt.args, tt.env, err, tt.err)
			}
		case err != nil:
			t.Errorf("%v %v: %v", tt.args, tt.env, err)
		case c.MaxStore != tt.want:
			t.Errorf("%v %v: MaxStore %d, want %d", tt.args, tt.env, c.MaxStore, tt.want)
		}
	}
}

// TestMaxStoreBoundsTheLog: with --max-store, the embedded server refuses
// writes beyond it, storing none of them, and the replica stays ready:
// it can serve everything but more writes.
func TestMaxStoreBoundsTheLog(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MutationRate = 0
	cfg.MaxStore = 1 << 20
	a := startTestApp(t, cfg)
	room := createRoom(t, a.Addr(), "alice", "bounded")
	text := strings.Repeat("😀", 4000) // 16 kB
	stored := 0
	for ; ; stored++ {
		if stored == 100 {
			t.Fatal("100 posts of 16 kB were stored under a --max-store of 1 MiB")
		}
		r, err := crashGQL(a.Addr(), "alice", storePost, map[string]any{"r": room, "t": text})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Errors) > 0 {
			t.Logf("post %d refused: %s %q", stored, r.code(), r.Errors[0].Message)
			break
		}
	}
	if n := storeMessageCount(t, a.Addr(), room); n != stored {
		t.Fatalf("messageCount %d, want the %d posts acknowledged", n, stored)
	}
	if st, body := readyz(a.Addr()); st != http.StatusOK {
		t.Fatalf("/readyz %d at the store limit: %s", st, body)
	}
}
