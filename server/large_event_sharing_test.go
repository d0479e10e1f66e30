package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/chat"
)

// TestLargeEventIsSharedAcrossStalledClients: one large subscription
// result fanned out to clients that have not read it yet, over each
// transport. The result is encoded once and shared, and a client whose
// socket has not taken all of it holds a reference to the shared bytes
// and an offset, not a copy: the replica's live heap grows by a few copies
// of the event and a little per client, not by a copy (or two) per client
// as it did. Then every client reads the event whole, the same bytes for
// each, and none was a slow consumer.
func TestLargeEventIsSharedAcrossStalledClients(t *testing.T) {
	const clients = 16
	// On loopback the kernel grows a socket's send buffer to megabytes at
	// once; across a network it starts small and grows with the
	// connection's window. Accepted connections get a small send buffer
	// (withSmallSendBuffers), as a client far away would have them at
	// first, and the clients a small receive buffer.
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.Limits.MaxComplexity = 10000
		o.Limits.MaxDepth = 15
		o.WriteTimeout = time.Minute // the clients read only at the end
	}, withSmallSendBuffers)
	room := r.room("big")
	text := strings.Repeat("y", 3990)
	const messages = 50 // five pages of them: an event of ~1 MB
	for i := range messages {
		r.post(room, "writer", fmt.Sprintf("%04d %s", i, text))
	}
	page := fmt.Sprintf(`messages(last: %d) { nodes { text } }`, messages)
	query := fmt.Sprintf(`subscription($r: ID!) { messagePosted(roomId: $r) { room { a: %s b: %s c: %s d: %s e: %s } } }`,
		page, page, page, page, page)
	vars := map[string]any{"r": room}

	for _, tc := range []struct {
		name   string
		stream bool                           // an HTTP stream, parked once subscribed
		open   func(t *testing.T) eventClient // subscribes one client
	}{
		{"graphql-transport-ws", false, func(t *testing.T) eventClient { return r.rawWSEvent(t, wspTransport, query, vars) }},
		{"graphql-ws", false, func(t *testing.T) eventClient { return r.rawWSEvent(t, wspLegacy, query, vars) }},
		{"sse", true, func(t *testing.T) eventClient { return r.rawStreamEvent(t, acceptSSE, query, vars) }},
		{"multipart", true, func(t *testing.T) eventClient { return r.rawStreamEvent(t, acceptMultipart, query, vars) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := make([]eventClient, clients)
			for i := range cs {
				cs[i] = tc.open(t)
			}
			// The next subtest measures its own clients alone.
			defer func() {
				for _, c := range cs {
					_ = c.conn.Close()
				}
				waitFor(t, "the clients gone", func() bool { return r.members() == 0 })
			}()
			waitFor(t, "subscriptions", func() bool { return r.members() == clients })
			if tc.stream {
				waitFor(t, "the streams parked", func() bool { return r.server.ws.keeper.streamCount() == clients })
			}

			before := liveHeap()
			delivered := testutil.ToFloat64(r.server.ws.metrics.deliveries)
			r.post(room, "writer", "the event")
			deadline := time.Now().Add(30 * time.Second)
			for testutil.ToFloat64(r.server.ws.metrics.deliveries) < delivered+clients {
				if time.Now().After(deadline) {
					t.Fatalf("the event began on %v of %d clients within 30 s",
						testutil.ToFloat64(r.server.ws.metrics.deliveries)-delivered, clients)
				}
				time.Sleep(5 * time.Millisecond)
			}
			grown := int64(liveHeap()) - int64(before)

			var first []byte
			for i, c := range cs {
				got, err := c.read()
				if err != nil {
					t.Fatalf("client %d: %v", i, err)
				}
				if first == nil {
					first = got
				} else if !bytes.Equal(got, first) {
					t.Fatalf("client %d got other bytes than client 0", i)
				}
			}
			if !json.Valid(first) || !bytes.Contains(first, []byte(`"0049 yyy`)) {
				t.Fatalf("the event's payload is not the result: %.80q", first)
			}
			event := int64(len(first))
			t.Logf("event of %d KiB to %d clients: live heap grew by %d KiB (%.1f events' worth)",
				event>>10, clients, grown>>10, float64(grown)/float64(event))
			// A few copies of the event (the result being encoded, the
			// room's state) and a little per client (its queued rest, its
			// writer); it was more than one copy per client.
			if limit := 4*event + clients*64<<10; grown > limit {
				t.Errorf("one shared event of %d KiB held as %d KiB by the replica (%.1f copies for %d clients), want at most %d KiB",
					event>>10, grown>>10, float64(grown)/float64(event), clients, limit>>10)
			}
			if n := testutil.ToFloat64(r.server.ws.metrics.slowCloses); n != 0 {
				t.Fatalf("%v slow-consumer closes", n)
			}
		})
	}
}

// liveHeap is the live heap after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// eventClient is a client subscribed to a large event: read reads the
// event and returns its payload.
type eventClient struct {
	conn net.Conn
	read func() ([]byte, error)
}

// rawWSEvent subscribes to query on a socket of protocol p with a small
// receive buffer; the reader it returns reads the first event's message
// and returns its payload, checking the message around it.
func (r *replica) rawWSEvent(t *testing.T, p wspProto, query string, vars map[string]any) eventClient {
	t.Helper()
	c := r.dialRaw(p.name, 4096)
	c.start(p, query, vars)
	return eventClient{c.conn, func() ([]byte, error) {
		for {
			m, err := c.next(20 * time.Second)
			if err != nil {
				return nil, err
			}
			if m.op != rawText || bytes.Contains(m.payload, []byte(`"type":"ka"`)) {
				continue // a keepalive
			}
			start := fmt.Sprintf(`{"id":"s","type":%q,"payload":`, p.next)
			if !bytes.HasPrefix(m.payload, []byte(start)) || !bytes.HasSuffix(m.payload, []byte("}")) {
				return nil, fmt.Errorf("message %.80q…, want %s…}", m.payload, start)
			}
			return m.payload[len(start) : len(m.payload)-1], nil
		}
	}}
}

// rawStreamEvent subscribes to query by an HTTP stream of the format
// accept names, over a connection with a small receive buffer; the reader
// it returns reads the first event and returns its payload, checking the
// format's framing around it.
func (r *replica) rawStreamEvent(t *testing.T, accept, query string, vars map[string]any) eventClient {
	t.Helper()
	conn, err := tinyReceiveBuffer(t.Context(), "tcp", r.http.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAccept: %s\r\nX-Herald-User: raw\r\nContent-Length: %d\r\n\r\n%s",
		accept, len(body), body)
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("HTTP %d: %s", resp.StatusCode, b)
	}
	_ = conn.SetDeadline(time.Time{})
	br := bufio.NewReader(resp.Body) // the de-chunked body
	start, end := "data: ", "\n"
	if accept == acceptMultipart {
		start, end = `{"payload":`, "}"+multipartDelimiter
	}
	return eventClient{conn, func() ([]byte, error) {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				return nil, fmt.Errorf("reading the body: %w", err)
			}
			if len(line) < largePayload {
				continue // the framing, keepalives
			}
			if accept == acceptMultipart {
				// The delimiter's own line ends the part.
				rest, err := br.ReadBytes('\n')
				if err != nil {
					return nil, fmt.Errorf("reading the body: %w", err)
				}
				line = append(line, rest...)
			}
			if !bytes.HasPrefix(line, []byte(start)) || !bytes.HasSuffix(line, []byte(end)) {
				return nil, fmt.Errorf("event %.80q … %.40q, want %q … %q", line, line[max(len(line)-40, 0):], start, end)
			}
			return line[len(start) : len(line)-len(end)], nil
		}
	}}
}
