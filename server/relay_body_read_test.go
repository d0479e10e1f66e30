package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRelayedBodyReadErrors: an operation for a single-connection stream
// this replica does not hold is forwarded (sseSingleTransport.forward),
// its body read by relayRequest. A body that cannot be read is answered as
// every other is (bodyReadError): 408 for one that did not arrive within
// the server's read timeout, 400 for one cut short; and never with the
// read error's text, which names the server's and the client's addresses
// (a client behind a load balancer must not learn them).
func TestRelayedBodyReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		method     string
		cut        bool // the client closes its side after the head and a part of the body
		wantStatus int
		wantBody   string
	}{
		{"POST, stalled", http.MethodPost, false, http.StatusRequestTimeout, "did not arrive in time"},
		{"DELETE, stalled", http.MethodDelete, false, http.StatusRequestTimeout, "did not arrive in time"},
		{"POST, cut short", http.MethodPost, true, http.StatusBadRequest, "ended before its announced length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestServer(t, nil)
			hs := httptest.NewUnstartedServer(s)
			hs.Config.ReadTimeout = 300 * time.Millisecond
			hs.Start()
			t.Cleanup(hs.Close)

			conn, err := net.DialTimeout("tcp", hs.Listener.Addr().String(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			token := strings.Repeat("A", 22) // a valid token no replica holds
			_, err = io.WriteString(conn, tc.method+" /graphql?operationId=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
				streamTokenHeader+": "+token+"\r\nContent-Length: 100\r\n\r\n{\"query\":")
			if err != nil {
				t.Fatal(err)
			}
			if tc.cut {
				if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			} // else the rest of the body never comes
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("got %d %s, want %d and %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
			for _, addr := range []string{conn.LocalAddr().String(), hs.Listener.Addr().String()} {
				if strings.Contains(string(body), addr) {
					t.Fatalf("the answer %s names the address %s", body, addr)
				}
			}
		})
	}
}
