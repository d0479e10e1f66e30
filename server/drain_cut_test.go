package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestDrainDropCutsSingleConnectionStream: a drain past its deadline
// drops every session, and a session's
// drop "cuts the TCP connection at once" (session.drop, sessions.go).
// Server.Drain: "when ctx ends, the sessions not yet ended are ended at
// once and the connections of all that have not finished are dropped";
// ARCHITECTURE.md's goroutine table has an HTTP stream's loop stopped by
// "goAway/drop from the drain" and waited for "at most dropGrace, 1 s,
// after dropping it". The only write dropGrace's comment lets outlast a
// drop is an HTTP/2 stream's, whose connection is shared and cannot be cut.
//
// A graphql-sse single-connection-mode stream over HTTP/1.1 is never
// parked: its request's goroutine serves it (httpStream.loop). Its drop
// only closed st.cut; while loop was blocked writing to a client that
// stopped reading, nothing cut the connection or the write, which went on
// until Options.WriteTimeout. Drain then gave up on it ("gave up on 1
// connections ...") and returned with an error, the stream still holding
// its connection, its goroutine and its operations. Parked streams and
// WebSockets are cut at once (TestParkedStreamEnds, "a drain past its
// deadline cuts the connection"); drop now makes such a write fail at once.
//
// Deterministic: the client never reads, and the write timeout (30 s) is
// far beyond the drain's second of grace.
func TestDrainDropCutsSingleConnectionStream(t *testing.T) {
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.QueueMessages = 100000
		o.QueueBytes = 1 << 30
		o.WriteTimeout = 30 * time.Second
	}, func(l net.Listener) net.Listener { return &firstSendBufferSmall{Listener: l} })
	room := r.room("stuck")

	// The stream's connection is the replica's first (a 4 KiB send
	// buffer) and has a small receive buffer: the reservation is made on
	// it too, then the stream opened on it.
	conn, err := tinyReceiveBuffer(t.Context(), "tcp", r.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "PUT /graphql HTTP/1.1\r\nHost: x\r\nX-Herald-User: ann\r\nContent-Length: 0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	token := string(tok)
	if resp.StatusCode != http.StatusCreated || !validStreamToken(token) {
		t.Fatalf("PUT: %d %q", resp.StatusCode, token)
	}
	if _, err := io.WriteString(conn, fmt.Sprintf("GET /graphql HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nX-Herald-User: ann\r\n%s: %s\r\n\r\n",
		streamTokenHeader, token)); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the stream: %v %v", resp, err)
	}
	_ = conn.SetDeadline(time.Time{})
	r.mustOperate(token, "ann", "s1", postedSub, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })

	// The client reads nothing more: the stream's writes fill both buffers
	// and its goroutine blocks in a write, while events queue behind it.
	r.server.sseSingle.mu.Lock()
	st := r.server.sseSingle.held[token].st
	r.server.sseSingle.mu.Unlock()
	queued := func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.queue)
	}
	text := strings.Repeat("é", 3900)
	for i := 0; i < 400 && queued() < 5; i++ {
		r.post(room, "a", fmt.Sprint(i, "-", text))
	}
	waitFor(t, "events queued behind a blocked write", func() bool { return queued() >= 5 })

	ctx, cancel := context.WithCancel(t.Context())
	cancel() // the drain's deadline has passed: every session is dropped
	start := time.Now()
	err = r.server.Drain(ctx, 0)
	took := time.Since(start)
	if err != nil && strings.Contains(err.Error(), "gave up") {
		t.Fatalf("Drain after %v: %v\nthe dropped single-connection stream kept writing to a client that reads nothing; "+
			"its connection should have been cut at once, as a parked stream's is", took.Round(time.Millisecond), err)
	}
	if n := r.server.sessions.count(); n != 0 {
		t.Fatalf("%d sessions still open after the drain", n)
	}
}
