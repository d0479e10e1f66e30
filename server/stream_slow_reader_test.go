package server

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

// TestSlowReadingClientGetsLargeStreamedResult: a query's result sent over
// an event stream reaches a client that reads it steadily but slowly,
// taking longer than Options.WriteTimeout for the whole of it, as the same
// result does as a plain answer (TestSlowReadingClientGetsLargeAnswer).
// graphql-sse's client sends every operation, queries included, over an
// event stream: in distinct connections mode each on a stream of its own,
// in single connection mode as results on the one stream.
func TestSlowReadingClientGetsLargeStreamedResult(t *testing.T) {
	a := newLargeAnswers(t)
	addr := a.http.Listener.Addr().String()
	query := largeQueryBody(16 << 10)

	for _, tc := range []struct {
		name string
		// open sends the request that opens the stream; then, if set,
		// run sends the query to run on it.
		open string
		run  func(t *testing.T, token string)
	}{
		{
			name: "distinct connections",
			open: fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s",
				addr, len(query), query),
		},
		{
			name: "single connection",
			open: "GET /graphql HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\n" + streamTokenHeader + ": %s\r\n\r\n",
			run: func(t *testing.T, token string) {
				var body map[string]any
				if err := json.Unmarshal(query, &body); err != nil {
					t.Fatal(err)
				}
				body["extensions"] = map[string]any{"operationId": "big"}
				b, _ := json.Marshal(body)
				status, answer := largeAnswersDo(t, a, http.MethodPost, token, b)
				if status != http.StatusAccepted {
					t.Fatalf("POST the query: %d %s, want 202", status, answer)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			request := tc.open
			token := ""
			if tc.run != nil {
				status, body := largeAnswersDo(t, a, http.MethodPut, "", nil)
				if status != http.StatusCreated {
					t.Fatalf("PUT: %d %s, want 201", status, body)
				}
				token = body
				request = fmt.Sprintf(request, token)
			}
			// A receive buffer of 64 KB, so that the reader, not TCP's
			// acknowledgements of a tiny window, sets the pace.
			conn := dialWith(t, addr, 64<<10, request)
			br := bufio.NewReader(slowReader{conn})
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the stream's header: %v", err)
			}
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("the stream: %s %s", resp.Status, b)
			}
			start := time.Now()
			if tc.run != nil {
				tc.run(t, token)
			}
			var got bytes.Buffer
			buf := make([]byte, 32<<10)
			for !strings.Contains(got.String(), "event: complete") {
				n, err := resp.Body.Read(buf)
				got.Write(buf[:n])
				if err != nil && !strings.Contains(got.String(), "event: complete") {
					t.Fatalf("after %v (WriteTimeout %v), reading slowly: the stream ended (%v) after %d bytes, before its complete; want all of the result",
						time.Since(start), answerWriteTimeout, err, got.Len())
				}
			}
			took := time.Since(start)
			if got.Len() < 900_000 {
				t.Fatalf("the stream is %d bytes; want a result of about 1 MB", got.Len())
			}
			if took < answerWriteTimeout {
				t.Fatalf("the slow reader took %v, less than WriteTimeout %v: it shows nothing", took, answerWriteTimeout)
			}
		})
	}
}

// largeAnswersDo sends a plain request of graphql-sse's single connection
// mode to a's server and returns its status and body.
func largeAnswersDo(t *testing.T, a *largeAnswers, method, token string, body []byte) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.http.URL+"/graphql", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set(streamTokenHeader, token)
	}
	resp, err := a.http.Client().Do(req)
	if err != nil {
		t.Fatalf("%s /graphql: %v", method, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStalledClientOfLargeStreamedResultIsDropped: paced as it is, a large
// result on an event stream still drops a client that reads none of it
// once a write has waited Options.WriteTimeout on it.
func TestStalledClientOfLargeStreamedResultIsDropped(t *testing.T) {
	a := newLargeAnswers(t)
	addr := a.http.Listener.Addr().String()
	query := largeQueryBody(16 << 10)
	request := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: %d\r\n\r\n%s",
		addr, len(query), query)
	conn := dialWith(t, addr, 4096, request)
	wait := time.After(20 * answerWriteTimeout)
	for dropped := false; !dropped; {
		select {
		case got := <-a.closed:
			dropped = got == conn.LocalAddr().String()
		case <-wait:
			t.Fatalf("a client that read nothing of the stream was still connected after %v (WriteTimeout %v)",
				20*answerWriteTimeout, answerWriteTimeout)
		}
	}
}

// TestSlowReadingClientGetsLargeReplay: an event stream (parked, HTTP/1.1)
// that resumes from Last-Event-ID over a backlog of about 1 MB reaches a
// client that reads steadily but slowly, taking longer than
// Options.WriteTimeout for the backlog as a whole: an EventSource back
// from a poor link, or an Apollo client resuming with after.
func TestSlowReadingClientGetsLargeReplay(t *testing.T) {
	const writeTimeout = 1500 * time.Millisecond
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.WriteTimeout = writeTimeout }, withSmallSendBuffers)
	room := r.room("backlog")
	c, _, body := r.openSSE(sseRequest{method: http.MethodGet, query: postedSub, vars: map[string]any{"r": room}})
	if c == nil {
		t.Fatal(body)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	r.post(room, "a", "m0")
	last := c.next()
	_ = c.resp.Body.Close()
	waitFor(t, "the stream to go", func() bool { return r.members() == 0 })
	const backlog = 64
	text := strings.Repeat("😀", 4000) // 16,000 bytes
	for range backlog {
		r.post(room, "a", text)
	}

	addr := r.http.Listener.Addr().String()
	vars, _ := json.Marshal(map[string]any{"r": room})
	q := "query=" + urlEscape(postedSub) + "&variables=" + urlEscape(string(vars))
	request := fmt.Sprintf("GET /graphql?%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nLast-Event-ID: %s\r\n\r\n", q, addr, last.id)
	conn := dialWith(t, addr, 64<<10, request)
	// 4 KB (bufio's reads) every 16 ms: the backlog of about 1 MB takes
	// about 4 s, longer than writeTimeout as a whole, while each part the
	// stream writes under a deadline of its own is read at once, with room
	// for a reader starved by a loaded machine.
	resp, err := http.ReadResponse(bufio.NewReader(slowerReader{r: conn, pause: 16 * time.Millisecond}), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the resumed stream: %v %v", resp, err)
	}
	start := time.Now()
	var got bytes.Buffer
	buf := make([]byte, 32<<10)
	for strings.Count(got.String(), "event: next") < backlog {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil && strings.Count(got.String(), "event: next") < backlog {
			t.Fatalf("after %v (WriteTimeout %v), reading slowly: the stream ended (%v) after %d bytes, %d of %d events",
				time.Since(start), writeTimeout, err, got.Len(), strings.Count(got.String(), "event: next"), backlog)
		}
	}
	t.Logf("the backlog of %d bytes took %v", got.Len(), time.Since(start))
}

// slowerReader reads at most 8 KB every pause (10 ms if zero): about
// 0.8 MB/s, so that a replay batch of about 1 MB (the queue's bytes) takes
// longer than writeTimeout as a whole, while each part of it is read well
// within it.
type slowerReader struct {
	r     io.Reader
	pause time.Duration
}

func (s slowerReader) Read(p []byte) (int, error) {
	time.Sleep(cmp.Or(s.pause, 10*time.Millisecond))
	return s.r.Read(p[:min(len(p), 8<<10)])
}

func urlEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// TestSlowReadingSocketGetsLargeReplay: a WebSocket that resumes over a
// backlog of about 1 MB reaches a client that reads steadily but slowly,
// taking longer than Options.WriteTimeout for the backlog as a whole, as
// an event stream's does (TestSlowReadingClientGetsLargeReplay): the
// writer's batch, gathered in writes of batchBytes, gets a deadline for
// each write, not one for the whole batch.
func TestSlowReadingSocketGetsLargeReplay(t *testing.T) {
	const writeTimeout = 1500 * time.Millisecond
	r := newReplicaListening(t, chat.Options{}, func(o *Options) { o.WriteTimeout = writeTimeout }, withSmallSendBuffers)
	room := r.room("socket-backlog")
	b, _ := json.Marshal(map[string]any{"query": `query($r: ID!) { room(id: $r) { messages(last: 1) { resumeCursor } } }`, "variables": map[string]any{"r": room}})
	resp, err := postBounded(r.http.URL+"/graphql", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Data struct {
			Room struct{ Messages struct{ ResumeCursor string } }
		}
	}
	err = json.NewDecoder(resp.Body).Decode(&page)
	_ = resp.Body.Close()
	if err != nil || page.Data.Room.Messages.ResumeCursor == "" {
		t.Fatalf("the empty room's resumeCursor: %+v, %v", page, err)
	}
	const backlog = 64
	text := strings.Repeat("😀", 4000) // 16,000 bytes
	for range backlog {
		r.post(room, "a", text)
	}

	c := r.dialRaw(subprotocolTransportWS, 64<<10)
	c.start(wspTransport, `subscription($r: ID!, $a: String) { roomEvents(roomId: $r, after: $a) { message { text } } }`,
		map[string]any{"r": room, "a": page.Data.Room.Messages.ResumeCursor})
	// 8 KB every 16 ms: the backlog of about 1 MB, gathered in one batch,
	// takes about 2 s, longer than writeTimeout as a whole, while each
	// write of batchBytes is read in about 64 ms, a twelfth of the least
	// deadline it is given (half of writeTimeout), enough for a reader
	// starved by a loaded machine.
	c.br = bufio.NewReaderSize(slowerReader{r: c.conn, pause: 16 * time.Millisecond}, 8<<10)
	start := time.Now()
	for got := 0; got < backlog; {
		m, err := c.next(10 * time.Second)
		switch {
		case err != nil:
			t.Fatalf("after %v (WriteTimeout %v), reading slowly: %v after %d of %d events", time.Since(start), writeTimeout, err, got, backlog)
		case m.op == rawClose:
			t.Fatalf("after %v (WriteTimeout %v), reading slowly: closed (%q) after %d of %d events", time.Since(start), writeTimeout, m.payload, got, backlog)
		case m.op == rawText && bytes.Contains(m.payload, []byte(`"next"`)):
			got++
		}
	}
	t.Logf("the backlog took %v", time.Since(start))
}

// TestSlowReadingSocketGetsLargeResult: a query's result of about 1 MB,
// one WebSocket frame, reaches a client that reads it steadily but slowly,
// taking longer than Options.WriteTimeout for all of it, as a plain answer
// does (TestSlowReadingClientGetsLargeAnswer): the frame goes out in
// writes of batchBytes, each with a deadline of its own.
func TestSlowReadingSocketGetsLargeResult(t *testing.T) {
	a := newLargeAnswers(t)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			c := (&replica{t: t, http: a.http}).dialRaw(p.name, 64<<10)
			var q strings.Builder
			q.WriteString("query($s: String) {")
			for i := range 64 {
				fmt.Fprintf(&q, " a%d: echo(s: $s)", i)
			}
			q.WriteString(" }")
			c.start(p, q.String(), map[string]any{"s": strings.Repeat("x", 16<<10)})
			c.br = bufio.NewReaderSize(slowerReader{r: c.conn}, 8<<10)
			start := time.Now()
			m, err := c.next(10 * time.Second)
			for err == nil && m.op == rawText && bytes.Contains(m.payload, []byte(`"type":"ka"`)) {
				m, err = c.next(10 * time.Second) // the legacy protocol's keepalive
			}
			switch {
			case err != nil:
				t.Fatalf("after %v (WriteTimeout %v), reading slowly: %v", time.Since(start), answerWriteTimeout, err)
			case m.op != rawText || !bytes.Contains(m.payload, []byte(`"a63":`)) || len(m.payload) < 64*16<<10:
				t.Fatalf("after %v: got %.200q, want the whole result", time.Since(start), m.payload)
			}
			t.Logf("the result of %d bytes took %v", len(m.payload), time.Since(start))
		})
	}
}
