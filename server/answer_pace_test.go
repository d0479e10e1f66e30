package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// pipeListener is a net.Listener of in-memory connections (net.Pipe): a
// write on one end returns only once the other end has read all of it,
// with no kernel buffer or TCP window between them, so a test client's
// reads alone pace the server's writes, to the byte. Over loopback TCP,
// at a WriteTimeout short enough for a test, TCP's own pacing would decide
// instead: a receiver that reads slowly reopens its window only once half
// its buffer is free, and a sender facing a closed window waits for a
// probe 200 ms or more later.
type pipeListener struct {
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial opens a connection to the listener's server, closed when t ends.
func (l *pipeListener) dial(t *testing.T) net.Conn {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	select {
	case l.conns <- server:
		return client
	case <-l.closed:
		server.Close()
		t.Fatal("dial: the listener is closed")
	case <-time.After(5 * time.Second):
		server.Close()
		t.Fatal("dial: the server accepted no connection within 5 s")
	}
	return nil
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pacedReader reads at most step bytes every every: a client that keeps
// reading at step/every, never pausing longer than every.
type pacedReader struct {
	r     io.Reader
	step  int
	every time.Duration
}

func (p pacedReader) Read(b []byte) (int, error) {
	time.Sleep(p.every)
	return p.r.Read(b[:min(len(b), p.step)])
}

// TestAnswerDeadlineFollowsReader: the write deadline of a plain answer
// follows the client's progress, one part (answerChunk) at a time. A
// client that keeps reading, however slowly, gets all of a large answer as
// long as it takes a part within WriteTimeout; one slower than that is
// given up on. README: a client "that takes none of the next 4 KiB of it
// for 10 s is given up on […] while a client that keeps reading, however
// slowly, gets all of it". With a deadline for each 64 KiB, the clients
// below that read less than 64 KiB per WriteTimeout were cut, though they
// never paused for longer than a tenth of it.
//
// The WriteTimeout is a second, not answerWriteTimeout: at 300 ms the
// 1 KiB client had three times the 100 ms a part takes it, and on a
// loaded CI machine (go test -race ./... on 2 cores) its four reads, each
// after a 25 ms sleep, overran that and it was cut. The clients' speeds
// are scaled with it.
func TestAnswerDeadlineFollowsReader(t *testing.T) {
	const writeTimeout = time.Second
	s, _ := newTestServer(t, func(o *Options) {
		o.WriteTimeout = writeTimeout
		o.MaxBodyBytes = 64 << 10
	})
	pipes := newPipeListener()
	hs := httptest.NewUnstartedServer(s)
	hs.Listener = pipes
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		_ = s.Shutdown(t.Context())
	})
	// An answer of about 80 KB: more than one part, and more than one of
	// the former 64 KiB parts.
	body := largeQueryBody(5 << 8)
	request := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body)
	cases := []struct {
		name  string
		step  int
		every time.Duration
		whole bool // the client gets all of the answer; else it is cut
	}{
		// 40 KiB per WriteTimeout (1 s): the client of the README's
		// promise, a tenth of WriteTimeout between reads.
		{"4 KiB every 100 ms", 4 << 10, 100 * time.Millisecond, true},
		// 40 KiB per WriteTimeout: ten parts, less than one of the former
		// 64 KiB parts.
		{"1 KiB every 25 ms", 1 << 10, 25 * time.Millisecond, true},
		// 2 KiB per WriteTimeout: less than a part, so that a part waits
		// on it for longer than WriteTimeout.
		{"1 KiB every 500 ms", 1 << 10, 500 * time.Millisecond, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := pipes.dial(t)
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.WriteString(conn, request); err != nil {
				t.Fatalf("sending the request: %v", err)
			}
			start := time.Now()
			var got []byte
			resp, err := http.ReadResponse(bufio.NewReader(pacedReader{r: conn, step: tc.step, every: tc.every}), nil)
			if err == nil {
				got, err = io.ReadAll(resp.Body)
				if err == nil && resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: %.300s", resp.Status, got)
				}
			}
			took := time.Since(start)
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				t.Fatalf("the client's own deadline passed after %v, %d bytes read: the server neither finished nor gave up", took, len(got))
			}
			switch {
			case tc.whole && err != nil:
				t.Fatalf("a client reading %d bytes every %v was cut after %v (WriteTimeout %v), %d bytes read: %v; "+
					"want all of the answer: it takes %d bytes per WriteTimeout, never pausing longer than %v (a part, answerChunk, is %d)",
					tc.step, tc.every, took, writeTimeout, len(got), err,
					int(writeTimeout/tc.every)*tc.step, tc.every, answerChunk)
			case !tc.whole && err == nil:
				t.Fatalf("a client reading %d bytes every %v got all of the answer (%d bytes in %v); "+
					"want it given up on: it takes less than a part (%d bytes) per WriteTimeout %v",
					tc.step, tc.every, len(got), took, answerChunk, writeTimeout)
			}
			t.Logf("%d bytes in %v, then %v", len(got), took, err)
		})
	}
}
