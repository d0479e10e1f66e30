package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The slow-consumer tests of the HTTP streams share their set-up: a
// stream's client that stops reading while a WebSocket subscriber of the
// same room reads everything, and a poster that goes on until the server
// has ended a subscriber for falling behind.

// slowText is the i-th event's text in a slow-consumer test: long enough
// that a client that does not read falls behind within a few hundred
// events.
func slowText(i int) string { return fmt.Sprint(i, strings.Repeat("x", 3900)) }

// postUntilSlowClose posts slowText(0), slowText(1), … to room until the
// server has ended a subscriber for falling behind, and returns how many
// it posted; it fails the test if 3,000 posts were not enough.
func postUntilSlowClose(t *testing.T, r *replica, room string) (posted int) {
	t.Helper()
	slowCloses := r.server.ws.metrics.slowCloses
	for ; posted < 3000 && testutil.ToFloat64(slowCloses) < 1; posted++ {
		r.post(room, "a", slowText(posted))
	}
	if testutil.ToFloat64(slowCloses) < 1 {
		t.Fatalf("the stream never fell behind in %d posts", posted)
	}
	return posted
}

// postedReader reads a WebSocket subscription of postedSub in the
// background and keeps the texts of its events.
type postedReader struct {
	c    *wsClient
	done chan struct{}

	mu    sync.Mutex
	texts []string
}

// readPosted starts reading c's events until its socket closes or is
// silent for 10 s; the test's cleanup closes the socket and waits for the
// reading goroutine, so that it never reports after the test has ended.
func readPosted(t *testing.T, c *wsClient) *postedReader {
	p := &postedReader{c: c, done: make(chan struct{})}
	t.Cleanup(p.stop)
	go func() {
		defer close(p.done)
		for {
			f, err := c.read(10 * time.Second)
			if err != nil {
				return
			}
			if f.Type != "next" {
				continue
			}
			var got struct{ MessagePosted struct{ Text string } }
			if err := f.decodeData(&got); err != nil {
				t.Errorf("fast socket: %v", err) // not t.Fatal: this is not the test's goroutine
				return
			}
			p.mu.Lock()
			p.texts = append(p.texts, got.MessagePosted.Text)
			p.mu.Unlock()
		}
	}()
	return p
}

// stop closes the socket and waits for the reading goroutine.
func (p *postedReader) stop() {
	_ = p.c.conn.Close()
	<-p.done
}

// expectAll waits until the reader has posted events and checks that
// they are slowText(0) … slowText(posted-1) in order.
func (p *postedReader) expectAll(t *testing.T, posted int) {
	t.Helper()
	waitFor(t, "the fast socket to get every event", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.texts) == posted
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, got := range p.texts {
		if got != slowText(i) {
			t.Fatalf("fast socket event %d out of order", i)
		}
	}
}

// tinyReceiveBuffer dials with a 4 KiB receive buffer, so that a client
// that does not read holds back the server's writes at once.
func tinyReceiveBuffer(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	return d.DialContext(ctx, network, addr)
}
