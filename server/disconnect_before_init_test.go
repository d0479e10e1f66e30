package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDisconnectUserReachesSocketsAwaitingInit shows that DisconnectUser
// closes, with 4403, a socket whose upgrade request named the user
// (X-Herald-User here; a cookie or an Authorization header with the JWT
// authenticator) before its connection_init. It looked only at the
// identity stored at connection_ack, so such a socket was skipped, and
// then acknowledged as the disconnected user.
func TestDisconnectUserReachesSocketsAwaitingInit(t *testing.T) {
	r := newReplica(t, nil)
	d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial(r.wsURL, http.Header{"X-Herald-User": {"mallory"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	c := &wsClient{t: t, conn: conn}
	waitFor(t, "the socket to be open", func() bool { return r.openSockets() == 1 })

	n := r.server.DisconnectUser("mallory")
	c.send(map[string]any{"type": "connection_init"})
	f, err := c.read(3 * time.Second)
	if err == nil {
		t.Fatalf("DisconnectUser(mallory) ended %d sessions; mallory's socket, upgraded as mallory, then got %s", n, f.raw)
	}
	if ce, ok := err.(*websocket.CloseError); !ok || ce.Code != closeForbidden {
		t.Fatalf("socket ended with %v, want 4403", err)
	}
}
