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
