package auth

import (
	"context"
	"testing"
)

// TestAnnounce: a resolver's topic reaches the engine's Guard; without a
// Guard, Announce says nobody listens.
func TestAnnounce(t *testing.T) {
	if Announce(context.Background(), "room") {
		t.Fatal("Announce without a Guard reported an engine")
	}
	ctx, g := WithGuard(context.Background(), nil)
	if g.Topic() != "" {
		t.Fatalf("topic before Announce = %q", g.Topic())
	}
	if !Announce(ctx, "room") {
		t.Fatal("Announce with a Guard reported none")
	}
	if g.Topic() != "room" {
		t.Fatalf("topic = %q, want room", g.Topic())
	}
}

// TestOnJoin: a resolver's join hook reaches the engine's Guard.
func TestOnJoin(t *testing.T) {
	if OnJoin(context.Background(), func() {}) {
		t.Fatal("OnJoin without a Guard reported an engine")
	}
	ctx, g := WithGuard(context.Background(), nil)
	if g.Joined() != nil {
		t.Fatal("a join hook before OnJoin")
	}
	called := 0
	if !OnJoin(ctx, func() { called++ }) {
		t.Fatal("OnJoin with a Guard reported none")
	}
	g.Joined()()
	if called != 1 {
		t.Fatalf("hook called %d times, want 1", called)
	}
}
