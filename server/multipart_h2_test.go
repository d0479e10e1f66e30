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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMultipartOverHTTP2: a multipart stream over HTTP/2 (which cannot be
// parked: the request's goroutine serves it) carries results in Apollo's
// framing, heartbeats, and leaves its execution when the client goes.
func TestMultipartOverHTTP2(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.PingInterval = 300 * time.Millisecond })
	hs := httptest.NewUnstartedServer(r.server)
	hs.EnableHTTP2 = true
	hs.StartTLS()
	t.Cleanup(hs.Close)
	room := r.room("mpTest-h2")
	b, _ := json.Marshal(map[string]any{"query": postedSub, "variables": map[string]any{"r": room}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/graphql", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", acceptApollo4)
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctMultipart {
		t.Fatalf("%s %d %v", resp.Proto, resp.StatusCode, resp.Header)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	p := newApolloParser(resp.Header.Get("Content-Type"))
	parts := make(chan mpPart, 100)
	go func() {
		defer close(parts)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			ps, perr := p.feed(string(buf[:n]))
			for _, x := range ps {
				parts <- x
			}
			if err != nil || perr != nil || p.closed {
				return
			}
		}
	}()
	r.post(room, "a", "one")
	heartbeats, got := 0, ""
	deadline := time.After(5 * time.Second)
	for heartbeats < 2 || got == "" {
		select {
		case x, ok := <-parts:
			if !ok {
				t.Fatal("stream ended")
			}
			if x.heartbeat {
				heartbeats++
			} else {
				got = x.postedText(t)
			}
		case <-deadline:
			t.Fatalf("heartbeats %d, got %q", heartbeats, got)
		}
	}
	if got != "one" {
		t.Fatalf("got %q", got)
	}
	cancel()
	gauge := r.server.ws.metrics.streams.WithLabelValues("multipart")
	waitFor(t, "the stream to leave", func() bool { return r.members() == 0 && testutil.ToFloat64(gauge) == 0 })
}

// TestMultipartOverHTTP10: an HTTP/1.0 client (curl -0) gets a stream it
// can read: no chunked encoding (HTTP/1.0 has none), the parts, and the
// close delimiter when the subscription completes.
func TestMultipartOverHTTP10(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("mpTest-h10")
	conn, err := net.DialTimeout("tcp", r.http.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := json.Marshal(map[string]any{"query": postedSub, "variables": map[string]any{"r": room}})
	fmt.Fprintf(conn, "POST /graphql HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nAccept: %s\r\nContent-Length: %d\r\n\r\n%s",
		acceptApollo4, len(b), b)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) > 0 {
		t.Fatalf("%d %v %v", resp.StatusCode, resp.TransferEncoding, resp.Header)
	}
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })
	r.post(room, "a", "one")
	p := newApolloParser(resp.Header.Get("Content-Type"))
	var raw strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		raw.Write(buf[:n])
		ps, perr := p.feed(string(buf[:n]))
		if perr != nil {
			t.Fatal(perr)
		}
		for _, x := range ps {
			if !x.heartbeat {
				if x.postedText(t) != "one" {
					t.Fatalf("%s", x.body)
				}
				return
			}
		}
		if err == io.EOF || err != nil {
			t.Fatalf("ended: %v; raw %q", err, raw.String())
		}
	}
}
