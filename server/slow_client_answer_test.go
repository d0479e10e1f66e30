package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// answerWriteTimeout is the Options.WriteTimeout of these tests: short,
// so that a stalled client is given up on quickly.
const answerWriteTimeout = 300 * time.Millisecond

// largeAnswers is a server whose plain answers can be made large, on a
// listener whose connections have small send buffers, so that an answer
// to a client that does not read blocks the server's write within a few
// KB. It reports each connection it closes.
type largeAnswers struct {
	http   *httptest.Server
	closed chan string // the client address of each connection closed
}

func newLargeAnswers(t *testing.T) *largeAnswers {
	t.Helper()
	metrics := prometheus.NewRegistry()
	// About 1 MB of /metrics.
	series := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "test_series", Help: "Series for a large /metrics."}, []string{"name"})
	metrics.MustRegister(series)
	for i := range 4000 {
		series.WithLabelValues(fmt.Sprintf("%04d%s", i, strings.Repeat("s", 230))).Set(float64(i))
	}
	s, _ := newTestServer(t, func(o *Options) {
		o.WriteTimeout = answerWriteTimeout
		o.MaxBodyBytes = 1 << 20
		o.Metrics = metrics
	})
	a := &largeAnswers{closed: make(chan string, 64)}
	a.http = httptest.NewUnstartedServer(s)
	a.http.Listener = withSmallSendBuffers(a.http.Listener)
	a.http.Config.ConnState = func(c net.Conn, state http.ConnState) {
		if state == http.StateClosed {
			select {
			case a.closed <- c.RemoteAddr().String():
			default: // more than the tests open: none of theirs
			}
		}
	}
	a.http.Start()
	t.Cleanup(func() {
		a.http.Close()
		_ = s.Shutdown(t.Context())
	})
	return a
}

// largeQueryBody is the body of a POST /graphql whose answer is about
// 64 × size bytes: 64 aliases of echo, each given the same string.
func largeQueryBody(size int) []byte {
	var q strings.Builder
	q.WriteString("query($s: String) {")
	for i := range 64 {
		fmt.Fprintf(&q, " a%d: echo(s: $s)", i)
	}
	q.WriteString(" }")
	body, _ := json.Marshal(map[string]any{"query": q.String(), "variables": map[string]any{"s": strings.Repeat("x", size)}})
	return body
}

// largeQuery is a POST /graphql whose answer is about 1 MB.
func largeQuery(addr string) string {
	body := largeQueryBody(16 << 10)
	return fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(body), body)
}

// getRequest is a GET of target.
func getRequest(addr, target string) string {
	return fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, addr)
}

// graphiQLScript is the path of GraphiQL's script (about 1 MB), as its
// page names it.
func graphiQLScript(t *testing.T, client *http.Client, base string) string {
	t.Helper()
	resp, err := client.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`src="\./(graphiql/[0-9a-f]+/graphiql\.min\.js)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("GraphiQL's page names no graphiql.min.js: %.300s", page)
	}
	return "/" + string(m[1])
}

// answerCases are large plain answers of each kind: a query's result (the
// GraphQL transports' writer), a GraphiQL file and /metrics (handlers
// whose bodies the server does not write itself).
func answerCases(t *testing.T, a *largeAnswers) []struct{ name, request string } {
	addr := a.http.Listener.Addr().String()
	return []struct{ name, request string }{
		{"query result", largeQuery(addr)},
		{"GraphiQL script", getRequest(addr, graphiQLScript(t, a.http.Client(), a.http.URL))},
		{"metrics", getRequest(addr, "/metrics")},
	}
}

// dialWith sends request on a new connection with a receive buffer of
// rcvbuf bytes.
func dialWith(t *testing.T, addr string, rcvbuf int, request string) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.(*net.TCPConn).SetReadBuffer(rcvbuf)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	return conn
}

// TestStalledClientOfLargeAnswerIsDropped: a client that asks for a large
// plain answer and stops reading it is dropped once a write has waited
// Options.WriteTimeout on it, which frees the handler, its connection and
// the answer. The server's http.Server has no WriteTimeout (it would cut
// streams), and these answers were written with no deadline of their own:
// the server waited for such a client for as long as it liked.
func TestStalledClientOfLargeAnswerIsDropped(t *testing.T) {
	a := newLargeAnswers(t)
	for _, tc := range answerCases(t, a) {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialWith(t, a.http.Listener.Addr().String(), 4096, tc.request)
			// Read nothing; the server must give up on the connection.
			wait := time.After(20 * answerWriteTimeout)
			for dropped := false; !dropped; {
				select {
				case addr := <-a.closed:
					dropped = addr == conn.LocalAddr().String()
				case <-wait:
					t.Fatalf("a client that read nothing of the answer was still connected after %v (WriteTimeout %v): "+
						"the server waits on it with no write deadline", 20*answerWriteTimeout, answerWriteTimeout)
				}
			}
			// What was on its way is all the client gets: not the answer.
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				return // dropped before the header reached the client
			}
			body, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("the dropped client read the whole answer (%s, %d bytes) after all", resp.Status, len(body))
			}
		})
	}
}

// TestSlowReadingClientGetsLargeAnswer: a client that reads a large plain
// answer steadily but slowly, taking longer than Options.WriteTimeout for
// the whole of it, gets all of it: the deadline is renewed for every part
// written (answerChunk), it is not one for the whole answer.
func TestSlowReadingClientGetsLargeAnswer(t *testing.T) {
	a := newLargeAnswers(t)
	for _, tc := range answerCases(t, a) {
		t.Run(tc.name, func(t *testing.T) {
			// A receive buffer of 64 KB, so that the reader, not TCP's
			// acknowledgements of a tiny window, sets the pace.
			conn := dialWith(t, a.http.Listener.Addr().String(), 64<<10, tc.request)
			start := time.Now()
			resp, err := http.ReadResponse(bufio.NewReader(slowReader{conn}), nil)
			if err != nil {
				t.Fatalf("the answer's header: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			took := time.Since(start)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("after %v (WriteTimeout %v), reading slowly: %s, %d bytes, error %v; want all of a 200",
					took, answerWriteTimeout, resp.Status, len(body), err)
			}
			if len(body) < 900_000 {
				t.Fatalf("the answer is %d bytes; want one of about 1 MB", len(body))
			}
			if took < answerWriteTimeout {
				t.Fatalf("the slow reader took %v for %d bytes, less than WriteTimeout %v: it shows nothing", took, len(body), answerWriteTimeout)
			}
		})
	}
}

// slowReader reads at most 8 KB every 5 ms: about 1.6 MB/s, so that a
// 1 MB answer takes longer than answerWriteTimeout as a whole, while each
// answerChunk is read well within it.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 8<<10)])
}

// TestStalledHTTP2ClientOfLargeAnswerIsReset: over HTTP/2 the write
// deadline is the stream's: a client that stops reading a large answer
// has that stream reset once a write has waited Options.WriteTimeout on
// it, and the connection serves other requests meanwhile.
func TestStalledHTTP2ClientOfLargeAnswerIsReset(t *testing.T) {
	s, _ := newTestServer(t, func(o *Options) {
		o.WriteTimeout = answerWriteTimeout
		o.MaxBodyBytes = 1 << 20
	})
	hs := httptest.NewUnstartedServer(s)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(func() {
		hs.Close()
		_ = s.Shutdown(t.Context())
	})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// About 6 MB: more than the 4 MB the client's HTTP/2 transport takes
	// of a stream before it is read.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/graphql", bytes.NewReader(largeQueryBody(96<<10)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s; want an HTTP/2 200", resp.Proto, resp.Status)
	}
	time.Sleep(5 * answerWriteTimeout) // read nothing
	// The connection still serves: a small answer, over the same client.
	ok, err := hs.Client().Get(hs.URL + "/healthz")
	if err != nil {
		t.Fatalf("/healthz beside the stalled stream: %v", err)
	}
	_, _ = io.Copy(io.Discard, ok.Body)
	ok.Body.Close()
	if ok.ProtoMajor != 2 || ok.StatusCode != http.StatusOK {
		t.Fatalf("/healthz beside the stalled stream: %s %s", ok.Proto, ok.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("a client that read nothing of the answer for %v (WriteTimeout %v) then read all of it (%d bytes): "+
			"the server waited on its stream with no write deadline", 5*answerWriteTimeout, answerWriteTimeout, len(body))
	}
	t.Logf("after the stall: %d bytes, then %v", len(body), err)
}
