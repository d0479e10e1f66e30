package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// edgeServer is a Server over the fake schema behind an http.Server with
// cmd/herald's timeouts (app.go: ReadHeaderTimeout 10 s, ReadTimeout 30 s,
// IdleTimeout 120 s), on a loopback port. tune may shorten them.
type edgeServer struct {
	addr string
}

func newEdgeServer(t *testing.T, edit func(*Options), tune func(*http.Server)) *edgeServer {
	t.Helper()
	s, _ := newTestServer(t, edit)
	hs := httptest.NewUnstartedServer(s)
	hs.Config.ReadHeaderTimeout = 10 * time.Second
	hs.Config.ReadTimeout = 30 * time.Second
	hs.Config.IdleTimeout = 120 * time.Second
	if tune != nil {
		tune(hs.Config)
	}
	hs.Start()
	t.Cleanup(func() { hs.Close(); _ = s.Shutdown(t.Context()) })
	return &edgeServer{addr: hs.Listener.Addr().String()}
}

// dial opens a raw connection to the server, closed at the end of the test.
func (e *edgeServer) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, bufio.NewReader(c)
}

// rawResponse reads one response (head and body) from br.
func rawResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "/", nil)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

// TestOversizedBodyRefusedBeforeContinue: a POST whose Content-Length is
// already over --max-body-bytes and that asks "Expect: 100-continue" must
// get its 413 at once, not "100 Continue": the expectation exists so that a
// client learns from the header fields alone that its content will be
// refused, before it uploads it (RFC 9110 section 10.1.1). curl sends it
// for large bodies.
func TestOversizedBodyRefusedBeforeContinue(t *testing.T) {
	e := newEdgeServer(t, nil, nil)
	c, br := e.dial(t)
	if _, err := io.WriteString(c, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Content-Length: 100000000\r\nExpect: 100-continue\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to the headers: %v", err)
	}
	if !strings.HasPrefix(line, "HTTP/1.1 413") {
		t.Fatalf("a body of 100000000 bytes (limit %d) with Expect: 100-continue was answered %q, want 413 before any of it is sent",
			testMaxBody, strings.TrimSpace(line))
	}
}

// TestUpgradeWithBodyIsRefused: a WebSocket upgrade request that carries a
// body gets an HTTP status saying what is wrong, as every other refused
// upgrade does (400 with a JSON error), not a connection closed without a
// word.
func TestUpgradeWithBodyIsRefused(t *testing.T) {
	e := newEdgeServer(t, nil, nil)
	const head = "GET /graphql HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n"
	for name, raw := range map[string]string{
		"Content-Length": head + "Content-Length: 5\r\n\r\nhello",
		"chunked":        head + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := e.dial(t)
			if _, err := io.WriteString(c, raw); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			got, err := io.ReadAll(c)
			if len(got) == 0 {
				t.Fatalf("upgrade with a body (%s): connection closed with no HTTP response at all (read: %v); want 400", name, err)
			}
			if !bytes.HasPrefix(got, []byte("HTTP/1.1 400")) {
				t.Fatalf("upgrade with a body (%s): got %q, want 400", name, got)
			}
		})
	}
}

// TestSlowBodyIsARequestTimeout: a request body that does not arrive within the
// http.Server's ReadTimeout (cmd/herald: 30 s, shortened here) is answered
// 408 Request Timeout (RFC 9110 section 15.5.9), with a message that does
// not tell the client the server's own network address (behind a load
// balancer, the replica's internal IP and port).
func TestSlowBodyIsARequestTimeout(t *testing.T) {
	e := newEdgeServer(t, nil, func(hs *http.Server) { hs.ReadTimeout = time.Second })
	c, br := e.dial(t)
	if _, err := io.WriteString(c, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	// One byte every 300 ms: the body would take 30 s.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		for range 10 {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			if _, err := io.WriteString(c, " "); err != nil {
				return
			}
		}
	})
	resp, body := rawResponse(t, br, http.MethodPost)
	var problems []string
	if resp.StatusCode != http.StatusRequestTimeout {
		problems = append(problems, fmt.Sprintf("status %d, want 408", resp.StatusCode))
	}
	if strings.Contains(body, "127.0.0.1") {
		problems = append(problems, "the message names the server's and client's addresses")
	}
	if len(problems) > 0 {
		t.Fatalf("body one byte per 300 ms: %s: %s", strings.Join(problems, "; "), body)
	}
}

// TestContentEncodingIsRefused: a body with a content coding Herald does
// not decode (it decodes none) is refused as such, with 415 and a message
// naming the coding (RFC 9110 section 8.4.1 and 15.5.16), rather than
// parsed as if it were plain JSON: a gzip body is not "not valid UTF-8",
// and a body labelled br is not to be run as it stands.
func TestContentEncodingIsRefused(t *testing.T) {
	e := newEdgeServer(t, nil, nil)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"query":"{ whoami }"}`))
	_ = zw.Close()
	plain := `{"query":"mutation { bump }"}`
	for _, tc := range []struct{ coding, body string }{{"gzip", gz.String()}, {"br", plain}} {
		t.Run(tc.coding, func(t *testing.T) {
			c, br := e.dial(t)
			if _, err := fmt.Fprintf(c, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Herald-User: alice\r\n"+
				"Content-Encoding: %s\r\nContent-Length: %d\r\n\r\n%s", tc.coding, len(tc.body), tc.body); err != nil {
				t.Fatal(err)
			}
			resp, body := rawResponse(t, br, http.MethodPost)
			var out struct {
				Errors []gqlError `json:"errors"`
			}
			_ = json.Unmarshal([]byte(body), &out)
			if resp.StatusCode != http.StatusUnsupportedMediaType || len(out.Errors) == 0 || !strings.Contains(out.Errors[0].Message, tc.coding) {
				t.Fatalf("Content-Encoding: %s: %d %s; want 415 naming the coding", tc.coding, resp.StatusCode, body)
			}
		})
	}
}
