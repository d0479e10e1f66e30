package main

import (
	"strings"
	"testing"
)

// TestStoreLimitRefusalIsUnavailable: a post JetStream refuses outright
// (its store at --max-store: "insufficient resources", nothing stored) is
// UNAVAILABLE, "nothing was stored; retry later", not OUTCOME_UNKNOWN,
// which README keeps for an event sent and not confirmed (read back before
// repeating).
func TestStoreLimitRefusalIsUnavailable(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MutationRate = 0
	cfg.MaxStore = 1 << 20
	a := startTestApp(t, cfg)
	addr := a.Addr()
	room := createRoom(t, addr, "alice", "bounded")
	text := strings.Repeat("😀", 4000) // 16 kB
	stored := 0
	var refused gqlResponse
	for ; len(refused.Errors) == 0; stored++ {
		if stored == 100 {
			t.Fatal("100 posts of 16 kB were stored under a --max-store of 1 MiB")
		}
		r, err := crashGQL(addr, "alice", storePost, map[string]any{"r": room, "t": text})
		if err != nil {
			t.Fatal(err)
		}
		refused = r
	}
	stored-- // the last one was refused
	if n := storeMessageCount(t, addr, room); n != stored {
		t.Fatalf("messageCount %d, want the %d posts acknowledged (the refused one was not stored)", n, stored)
	}
	msg := refused.Errors[0].Message
	if refused.code() != "UNAVAILABLE" || !strings.Contains(msg, "nothing was stored; retry later") {
		t.Errorf("a post the event log refused at its store limit answered %s %q; want UNAVAILABLE saying nothing was stored",
			refused.code(), msg)
	}
}
