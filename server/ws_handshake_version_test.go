package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestWebSocketOtherVersionRefusedFirst: a handshake of a WebSocket
// version Herald does not speak is refused naming the one it does
// (Sec-WebSocket-Version: 13, RFC 6455 section 4.2.2) whatever else is
// wrong with it or the replica: a client of another version cannot tell
// what else to change until it knows to retry with version 13.
func TestWebSocketOtherVersionRefusedFirst(t *testing.T) {
	type condition int
	const (
		none condition = iota
		draining
		full
		authUnavailable
	)
	v8 := wsHandshake(http.MethodGet).with("Sec-WebSocket-Version", "8")
	withBody := v8
	withBody.body = `{"query":"{ whoami }"}`
	cases := []struct {
		name string
		when condition
		req  request
	}{
		{"version 8", none, v8},
		{"versions 7 and 8", none, v8.with("Sec-WebSocket-Version", "7, 8")},
		{"an empty version", none, v8.with("Sec-WebSocket-Version", "")},
		{"no subprotocol", none, v8.with("Sec-WebSocket-Protocol", "")},
		{"an unknown subprotocol", none, v8.with("Sec-WebSocket-Protocol", "mqtt")},
		{"a body", none, withBody},
		{"POST", none, func() request { q := v8; q.method = http.MethodPost; return q }()},
		{"a draining replica", draining, v8},
		{"a full replica", full, v8},
		{"authentication unavailable", authUnavailable, v8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, func(o *Options) {
				switch tc.when {
				case full:
					o.Limits.MaxConnections = 1
				case authUnavailable:
					o.Authenticator = failing{}
				}
			})
			switch tc.when {
			case draining:
				s.StartDrain()
			case full:
				if s.sessions.admit() != admitted {
					t.Fatal("the first connection was not admitted")
				}
				defer s.sessions.done()
			}
			check(t, send(t, s, tc.req), want{status: http.StatusBadRequest, contentType: ctJSON,
				err: "unsupported version", code: codeBadRequest, header: map[string]string{"Sec-WebSocket-Version": "13"}})
		})
	}
}

// TestWebSocketVersionListWith13: a handshake naming several versions, 13
// among them, is upgraded.
func TestWebSocketVersionListWith13(t *testing.T) {
	r := newReplica(t, nil)
	for _, versions := range []string{"13", "8, 13", "13, 8", "7,13"} {
		t.Run(versions, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", r.http.Listener.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "GET /graphql HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
				"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: %s\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
				versions, subprotocolTransportWS)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Errorf("answered %s, want 101", resp.Status)
			}
		})
	}
}
