package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/chat"
)

// rawStream is a subscription's HTTP stream opened over a plain TCP
// connection: no client goroutine, so that what a test measures in the
// process is the server's. Its body is read only when the test asks.
type rawStream struct {
	conn net.Conn
	resp *http.Response
	body *bufio.Reader // the decoded (de-chunked) body
}

// Accept headers of the two stream formats.
const (
	acceptSSE       = "text/event-stream"
	acceptMultipart = `multipart/mixed;subscriptionSpec="1.0", application/json`
)

// openRaw POSTs postedSub for room with accept and reads the response's
// head.
func (r *replica) openRaw(accept, room string) *rawStream {
	r.t.Helper()
	conn, err := net.DialTimeout("tcp", r.http.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		r.t.Fatal(err)
	}
	return r.openRawOn(conn, accept, room)
}

// openRawOn is openRaw on a connection the test dialed.
func (r *replica) openRawOn(conn net.Conn, accept, room string) *rawStream {
	r.t.Helper()
	r.t.Cleanup(func() { _ = conn.Close() })
	body, _ := json.Marshal(map[string]any{"query": postedSub, "variables": map[string]any{"r": room}})
	req := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: %s\r\nX-Herald-User: raw\r\nContent-Length: %d\r\n\r\n%s",
		accept, len(body), body)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		r.t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	_ = conn.SetDeadline(time.Time{})
	return &rawStream{conn: conn, resp: resp, body: bufio.NewReader(resp.Body)}
}

// readUntil reads the body until it holds want, within 5 s; it fails the
// test if the body ends first.
func (s *rawStream) readUntil(t *testing.T, want string) string {
	t.Helper()
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer func() { _ = s.conn.SetReadDeadline(time.Time{}) }()
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		line, err := s.body.ReadString('\n')
		got.WriteString(line)
		if err != nil {
			t.Fatalf("reading for %q: %v after %q", want, err, got.String())
		}
	}
	return got.String()
}

// readToEnd reads the body until it ends, within 5 s, and returns it and
// how it ended (nil: a proper end of the chunked body).
func (s *rawStream) readToEnd() (string, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(s.body)
	return string(b), err
}

// TestIdleStreamCost guards what an idle subscription's HTTP stream costs
// in goroutines once parked: none, as an idle WebSocket (the parker
// watches its connection for the client's end), or where there is no
// parker one, on the 2 KiB stack it started with. Served by its request's
// goroutine it had two, one of them with an 8 KiB stack, and net/http's
// 10 KiB of buffers. The streams still work afterwards, and end when
// their clients go.
func TestIdleStreamCost(t *testing.T) {
	for _, tc := range []struct{ name, accept, event string }{
		{"sse", acceptSSE, "event: next"},
		{"multipart", acceptMultipart, `{"payload":`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, nil)
			room := r.room("idle")
			const streams = 300
			goroutines, stack := settledStack(t)
			opened := make([]*rawStream, 0, streams)
			for range streams {
				opened = append(opened, r.openRaw(tc.accept, room))
			}
			waitFor(t, "every subscription live", func() bool { return r.members() == streams })
			waitFor(t, "every stream parked", func() bool { return r.server.ws.keeper.streamCount() == streams })
			goroutinesAfter, stackAfter := settledStack(t)
			perStream := float64(goroutinesAfter-goroutines) / streams
			perStreamStack := float64(stackAfter-stack) / streams
			t.Logf("%.2f goroutines and %.0f bytes of stack per idle stream", perStream, perStreamStack)
			wantGoroutines, wantStack := 0.05, 512.0 // the room's execution and the runtime account for a few
			if !parksSockets {
				wantGoroutines, wantStack = 1.1, 3072
			}
			if perStream > wantGoroutines {
				t.Errorf("%.2f goroutines per idle stream, want at most %.2f", perStream, wantGoroutines)
			}
			// The race detector enlarges stack frames: the goroutine count
			// says enough there.
			if !raceEnabled && perStreamStack > wantStack {
				t.Errorf("%.0f bytes of goroutine stack per idle stream; want at most %.0f", perStreamStack, wantStack)
			}
			r.post(room, "u1", "still here")
			for _, s := range opened[:3] {
				if got := s.readUntil(t, "still here"); !strings.Contains(got, tc.event) {
					t.Errorf("got %q, want %q", got, tc.event)
				}
			}
			for _, s := range opened {
				_ = s.conn.Close()
			}
			waitFor(t, "every stream released once its client went", func() bool {
				return r.server.sessions.count() == 0 && r.server.ws.keeper.streamCount() == 0 && r.members() == 0
			})
		})
	}
}

// TestParkedStreamEnds: a parked stream ends as one served by its request
// did: when the client goes, when its subscription completes, and in a
// drain, each time with a proper end of the chunked body, and releasing
// its place among the connections.
func TestParkedStreamEnds(t *testing.T) {
	t.Run("the client goes", func(t *testing.T) {
		r := newReplica(t, nil)
		s := r.openRaw(acceptSSE, r.room("gone"))
		waitFor(t, "the stream parked", func() bool { return r.server.ws.keeper.streamCount() == 1 })
		// Bytes from the client (a body's rest nobody read) do not end it,
		// a few or many (read on in 64-byte pieces before parking again).
		if _, err := s.conn.Write([]byte("\r\n" + strings.Repeat("x", 10000))); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		if n := r.server.sessions.count(); n != 1 {
			t.Fatalf("%d sessions after the client wrote, want 1", n)
		}
		_ = s.conn.Close()
		waitFor(t, "the stream released", func() bool {
			return r.server.sessions.count() == 0 && r.server.ws.keeper.streamCount() == 0 && r.members() == 0
		})
	})
	t.Run("the subscription completes", func(t *testing.T) {
		// On a room that does not exist, with the resolver's error.
		r := newReplica(t, nil)
		s := r.openRaw(acceptMultipart, "no-such-room")
		body, err := s.readToEnd()
		if err != nil || !strings.Contains(body, "NOT_FOUND") || !strings.HasSuffix(body, "\r\n--graphql--\r\n") {
			t.Fatalf("body %q, %v; want the close delimiter and the end of the chunked body", body, err)
		}
		waitFor(t, "the stream released", func() bool { return r.server.sessions.count() == 0 && r.server.ws.keeper.streamCount() == 0 })
	})
	t.Run("a drain past its deadline cuts the connection", func(t *testing.T) {
		r := newReplica(t, nil)
		s := r.openRaw(acceptSSE, r.room("cut"))
		waitFor(t, "the stream parked", func() bool { return r.server.ws.keeper.streamCount() == 1 })
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		// The stream is dropped, which closes its connection under the
		// parked reader: it must wake to release the stream, or Drain
		// waits for ever.
		done := make(chan error, 1)
		go func() { done <- r.server.Drain(ctx, 0) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Drain did not return within 10s of dropping a parked stream")
		}
		if _, err := s.readToEnd(); errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the dropped stream's connection is still open")
		}
		if n := r.server.sessions.count(); n != 0 {
			t.Fatalf("%d sessions after the drain, want 0", n)
		}
	})
	for _, tc := range []struct{ name, accept, end string }{
		{"a drain ends an event stream", acceptSSE, ":\n\n"},
		{"a drain ends a multipart stream with SHUTTING_DOWN", acceptMultipart, "SHUTTING_DOWN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, nil)
			s := r.openRaw(tc.accept, r.room("drain"))
			waitFor(t, "the stream parked", func() bool { return r.server.ws.keeper.streamCount() == 1 })
			if err := r.server.Drain(t.Context(), 0); err != nil {
				t.Fatalf("Drain: %v", err)
			}
			body, err := s.readToEnd()
			if err != nil || !strings.Contains(body, tc.end) {
				t.Fatalf("body %q, %v; want %q and the end of the chunked body", body, err, tc.end)
			}
		})
	}
}

// TestParkedStreamDirectWritesUnderBackpressure: events are written to a
// parked stream by the goroutine fanning them out, without waiting (see
// parkedStream.writeNow). When the client stops reading, such a write
// takes only part of a chunk and the stream's writer must send the rest
// before anything else; the client, reading again, gets every event
// whole and in order in a well-formed chunked body.
func TestParkedStreamDirectWritesUnderBackpressure(t *testing.T) {
	for _, accept := range []string{acceptSSE, acceptMultipart} {
		t.Run(accept, func(t *testing.T) {
			// The stream's connection is the replica's first, with a 4 KiB
			// send buffer: with the system's, the kernel would take
			// megabytes before a write is cut short.
			r := newReplicaListening(t, chat.Options{}, func(o *Options) {
				o.QueueMessages = 1024
				o.QueueBytes = 64 << 20
				o.WriteTimeout = 20 * time.Second
			}, func(l net.Listener) net.Listener { return &firstSendBufferSmall{Listener: l} })
			room := r.room("direct")
			conn, err := tinyReceiveBuffer(t.Context(), "tcp", r.http.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			s := r.openRawOn(conn, accept, room)
			waitFor(t, "the stream parked", func() bool { return r.server.ws.keeper.streamCount() == 1 })
			text := strings.Repeat("é", 3900) // 7,800 bytes: more than the send buffer
			const events = 300
			for i := range events {
				r.post(room, "a", fmt.Sprint(i, "-", text))
			}
			_ = s.conn.SetReadDeadline(time.Now().Add(15 * time.Second))
			for i := range events {
				want := fmt.Sprint(i, "-", text)
				for {
					line, err := s.body.ReadString('\n')
					if err != nil {
						t.Fatalf("reading event %d: %v", i, err)
					}
					if !strings.Contains(line, `"text":"`) {
						continue // SSE's event lines, multipart's boundaries and headers
					}
					if !strings.Contains(line, `"text":"`+want+`"`) {
						t.Fatalf("event %d: got %.80q…, want the text %.20q…", i, line, want)
					}
					break
				}
			}
			if n := testutil.ToFloat64(r.server.ws.metrics.slowCloses); n != 0 {
				t.Fatalf("%v slow-consumer closes", n)
			}
		})
	}
}

// TestParkedStreamKeepalive: the keeper writes a parked stream's
// keepalives.
func TestParkedStreamKeepalive(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.PingInterval = 50 * time.Millisecond })
	s := r.openRaw(acceptMultipart, r.room("quiet"))
	waitFor(t, "the stream parked", func() bool { return r.server.ws.keeper.streamCount() == 1 })
	heartbeat := multipartPartHead + multipartHeartbeat + multipartDelimiter
	if got := s.readUntil(t, heartbeat+heartbeat+heartbeat); strings.Contains(got, "payload") {
		t.Fatalf("got %q", got)
	}
}

// TestChunkedConn: each Flush is one chunk of what was written since.
func TestChunkedConn(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes [][]string // the writes before each Flush
		want   string
	}{
		{"one write", [][]string{{"hello"}}, "5\r\nhello\r\n"},
		{"writes make one chunk", [][]string{{"ab", "", "cdef"}}, "6\r\nabcdef\r\n"},
		{"two flushes", [][]string{{"x"}, {strings.Repeat("y", 26)}}, "1\r\nx\r\n1a\r\n" + strings.Repeat("y", 26) + "\r\n"},
		{"a flush with nothing written sends nothing", [][]string{{}, {"z"}}, "1\r\nz\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w bytes.Buffer
			c := &chunkedConn{conn: &fakeConn{w: &w}}
			for _, batch := range tc.writes {
				for _, s := range batch {
					if _, err := c.Write([]byte(s)); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if w.String() != tc.want {
				t.Fatalf("wrote %q, want %q", w.String(), tc.want)
			}
		})
	}
}

// TestChunkedConnDeadline: a deadline is passed on only once less than
// half of the one set is left.
func TestChunkedConnDeadline(t *testing.T) {
	fc := &fakeConn{w: io.Discard}
	c := &chunkedConn{conn: fc}
	now := time.Now()
	steps := []struct {
		deadline time.Time
		passed   bool
	}{
		{now.Add(10 * time.Second), true},
		{now.Add(10*time.Second + time.Millisecond), false}, // 10 s left of 10 s
		{now.Add(-time.Second), false},                      // never shortened
	}
	for i, st := range steps {
		before := fc.deadlines
		_ = c.SetWriteDeadline(st.deadline)
		if passed := fc.deadlines > before; passed != st.passed {
			t.Fatalf("step %d: passed on %v, want %v", i, passed, st.passed)
		}
	}
	c.deadline = now.Add(time.Second) // 1 s left of a new 10 s
	_ = c.SetWriteDeadline(now.Add(10 * time.Second))
	if fc.deadlines != 2 {
		t.Fatalf("%d deadlines passed on, want 2", fc.deadlines)
	}
}

// fakeConn records what is written and how many write deadlines are set.
type fakeConn struct {
	net.Conn
	w         io.Writer
	deadlines int
}

func (f *fakeConn) Write(b []byte) (int, error)      { return f.w.Write(b) }
func (f *fakeConn) SetWriteDeadline(time.Time) error { f.deadlines++; return nil }
func (f *fakeConn) Close() error                     { return errors.New("not closable") }

// streamCount is the number of parked streams.
func (k *keeper) streamCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.streams)
}
