package server

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestProtocolNegotiationAcrossHeaderLines: RFC 6455 section 11.3.4 lets the
// Sec-WebSocket-Protocol header appear several times in a handshake
// request, "which is logically the same as a single Sec-WebSocket-Protocol
// header field that contains all values". A client (or a proxy that
// splits or re-folds the list) offering graphql-transport-ws on a second
// header line must be served as if the list were on one line; Herald
// read only the first line (gorilla's websocket.Subprotocols uses
// Header.Get) and refused the upgrade with 400.
func TestProtocolNegotiationAcrossHeaderLines(t *testing.T) {
	r := newReplica(t, nil)
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"unknown first, graphql-transport-ws second", []string{"graphql-sse", subprotocolTransportWS}, subprotocolTransportWS},
		{"legacy first, graphql-transport-ws second", []string{subprotocolLegacy, subprotocolTransportWS}, subprotocolTransportWS},
		{"unknown first, legacy graphql-ws second", []string{"mqtt", subprotocolLegacy}, subprotocolLegacy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
			conn, resp, err := d.Dial(r.wsURL, http.Header{"Sec-Websocket-Protocol": tc.lines})
			if err != nil {
				var body []byte
				status := 0
				if resp != nil {
					status = resp.StatusCode
					body, _ = io.ReadAll(resp.Body)
				}
				t.Fatalf("offered %q on %d header lines: %v (HTTP %d %s), want %s negotiated",
					tc.lines, len(tc.lines), err, status, body, tc.want)
			}
			defer conn.Close()
			if got := conn.Subprotocol(); got != tc.want {
				t.Fatalf("negotiated %q, want %q", got, tc.want)
			}
		})
	}
}
