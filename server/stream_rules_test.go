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
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUnparkedMultipartDrainSaysShuttingDown: a multipart stream that is
// not parked (HTTP/1.0, HTTP/2: served by its request's goroutine,
// httpStream.loop) ends in a drain as a parked one does: with what was
// queued, then the SHUTTING_DOWN part and the close delimiter, so that
// Apollo Client subscribes again rather than reporting a bare network
// error.
func TestUnparkedMultipartDrainSaysShuttingDown(t *testing.T) {
	open := map[string]func(t *testing.T, r *replica, body []byte) io.Reader{
		"HTTP/1.0": func(t *testing.T, r *replica, body []byte) io.Reader {
			conn, err := net.DialTimeout("tcp", r.http.Listener.Addr().String(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(conn, "POST /graphql HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nAccept: %s\r\nContent-Length: %d\r\n\r\n%s",
				acceptApollo4, len(body), body)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("response %v, %v", resp, err)
			}
			return resp.Body
		},
		"HTTP/2": func(t *testing.T, r *replica, body []byte) io.Reader {
			hs := httptest.NewUnstartedServer(r.server)
			hs.EnableHTTP2 = true
			hs.StartTLS()
			t.Cleanup(hs.Close)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			t.Cleanup(cancel)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", acceptApollo4)
			resp, err := hs.Client().Do(req)
			if err != nil || resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
				t.Fatalf("response %v, %v", resp, err)
			}
			t.Cleanup(func() { resp.Body.Close() })
			return resp.Body
		},
	}
	for name, openStream := range open {
		t.Run(name, func(t *testing.T) {
			r := newReplica(t, nil)
			room := r.room("unparked-drain")
			b, _ := json.Marshal(map[string]any{"query": postedSub, "variables": map[string]any{"r": room}})
			body := openStream(t, r, b)
			waitFor(t, "the subscription", func() bool { return r.members() == 1 })
			if n := r.server.ws.keeper.streamCount(); n != 0 {
				t.Fatalf("%d parked streams, want the stream served by its request's goroutine", n)
			}
			var mu sync.Mutex
			var raw strings.Builder
			ended := make(chan error, 1)
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := body.Read(buf)
					mu.Lock()
					raw.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						ended <- err
						return
					}
				}
			}()
			sofar := func() string {
				mu.Lock()
				defer mu.Unlock()
				return raw.String()
			}
			r.post(room, "a", "before the drain")
			waitFor(t, "the event", func() bool { return strings.Contains(sofar(), "before the drain") })
			drained := make(chan error, 1)
			go func() { drained <- r.server.Drain(t.Context(), 0) }()
			var err error
			select {
			case err = <-ended:
			case <-time.After(20 * time.Second):
				t.Fatal("the drained stream did not end within 20s")
			}
			if err := <-drained; err != nil {
				t.Fatalf("Drain: %v", err)
			}
			got := sofar()
			event := strings.Index(got, "before the drain")
			away := strings.Index(got, `"code":"SHUTTING_DOWN"`)
			if event < 0 || away < event || !strings.HasSuffix(got, "\r\n--graphql--\r\n") {
				t.Fatalf("a drained %s multipart stream sent %q (%v); want the event queued before the drain, then a SHUTTING_DOWN part and the close delimiter", name, got, err)
			}
		})
	}
}

// TestParkedCompletedStreamDrainSendsNoGoAway: a parked multipart stream
// whose subscription completed just as the drain came ends with its
// completion alone: nothing follows the close delimiter (a SHUTTING_DOWN
// part after it is not Apollo's protocol).
func TestParkedCompletedStreamDrainSendsNoGoAway(t *testing.T) {
	r := newReplica(t, nil)
	s := r.openRaw(acceptMultipart, r.room("completed-drain"))
	waitFor(t, "the stream parked", func() bool { return r.server.ws.keeper.streamCount() == 1 })
	st := theOpenStream(t, r)
	if st.parked.Load() == nil {
		t.Fatal("the stream is not parked")
	}
	st.mu.Lock()
	st.completed = true // streamEnded, up to its signal
	st.mu.Unlock()
	if err := r.server.Drain(t.Context(), 0); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	body, _ := s.readToEnd()
	if strings.Contains(body, "SHUTTING_DOWN") || !strings.HasSuffix(body, "\r\n--graphql--\r\n") || strings.Count(body, "--graphql--") != 1 {
		t.Fatalf("a completed stream drained sent %q; want its completion and one close delimiter, no SHUTTING_DOWN after it", body)
	}
}

// TestOperationIDAtItsBound: a single-connection-mode stream takes an
// operation id of maxOperationIDBytes (256) bytes; one byte more is
// refused with 400.
func TestOperationIDAtItsBound(t *testing.T) {
	r := newReplica(t, nil)
	token := r.reserve("ann")
	c := r.openSingle(token, "ann")
	id := strings.Repeat("i", maxOperationIDBytes)
	if status, body := r.operation(token, "ann", id, "{ __typename }", nil); status != http.StatusAccepted {
		t.Fatalf("operation id of %d bytes: %d %s, want 202", maxOperationIDBytes, status, body)
	}
	c.expect("next", id)
	c.expect("complete", id)
	if status, _ := r.operation(token, "ann", id+"i", "{ __typename }", nil); status != http.StatusBadRequest {
		t.Fatalf("operation id of %d bytes: %d, want 400", maxOperationIDBytes+1, status)
	}
}

// TestJoinAfterCloseEndsTheSubscription: a subscription that starts once
// the shared executions are closed (the drain's end) is ended at once (its
// stream completes), not left open with no execution to feed it.
func TestJoinAfterCloseEndsTheSubscription(t *testing.T) {
	r := newReplica(t, nil)
	if n := r.server.execs.close(t.Context(), 5*time.Second); n != 0 {
		t.Fatalf("%d executions still running", n)
	}
	s := r.openRaw(acceptSSE, r.room("after-close"))
	body, err := s.readToEnd()
	if err != nil || !strings.Contains(body, "event: complete") {
		t.Fatalf("a subscription started after the executions closed: body %q, %v; want its stream to complete at once", body, err)
	}
}
