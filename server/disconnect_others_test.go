package server

import (
	"testing"
	"time"
)

// TestDisconnectUserSparesOthers: DisconnectUser ends the named user's
// connections and no one else's (sessions.disconnectUser), with another
// signed-in user's socket open beside them.
func TestDisconnectUserSparesOthers(t *testing.T) {
	r := newReplica(t, nil)
	alice := r.dialTransport("alice")
	bob := r.dialTransport("bob")
	waitFor(t, "both sockets open", func() bool { return r.openSockets() == 2 })

	if n := r.server.DisconnectUser("alice"); n != 1 {
		t.Errorf("DisconnectUser(alice) = %d sessions, want 1", n)
	}
	alice.expectClose(closeForbidden, 5*time.Second)

	// bob's socket still answers.
	bob.send(map[string]any{"type": "ping"})
	for {
		f, err := bob.read(3 * time.Second)
		if err != nil {
			t.Fatalf("bob's socket, after DisconnectUser(alice): %v", err)
		}
		if f.Type == "pong" {
			break
		}
	}
}
