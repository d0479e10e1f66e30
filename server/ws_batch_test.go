package server

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/heraldhq/herald/chat"
)

// writeCountingListener accepts connections whose writes it counts, with
// a small send buffer so that a client that does not read stalls the
// server's writes at once.
type writeCountingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l writeCountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if raw, ok := c.(syscall.Conn); ok {
		if rc, err := raw.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
		}
	}
	return writeCountingConn{Conn: c, writes: l.writes}, nil
}

type writeCountingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c writeCountingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// TestQueuedFramesLeaveTogether: frames that queue up for a socket while
// a write is stalled leave in a few writes, not one system call each, and
// arrive whole and in order.
func TestQueuedFramesLeaveTogether(t *testing.T) {
	var writes atomic.Int64
	r := newReplicaListening(t, chat.Options{}, nil, func(l net.Listener) net.Listener {
		return writeCountingListener{Listener: l, writes: &writes}
	})
	room := r.room("batched")
	c := r.dialTinyWindow("reader")
	c.subscribe("subscribe", "s", postedSub, map[string]any{"r": room})
	waitFor(t, "the subscription", func() bool { return r.members() == 1 })

	const frames = 200
	text := strings.Repeat("y", 2000)
	before := writes.Load()
	for i := range frames {
		r.post(room, "a", fmt.Sprint(i, text))
	}
	for i := range frames {
		f := c.next()
		var got struct{ MessagePosted struct{ Text string } }
		f.data(t, &got)
		if got.MessagePosted.Text != fmt.Sprint(i, text) {
			t.Fatalf("frame %d out of order or torn", i)
		}
	}
	if n := writes.Load() - before; n > frames/3 {
		t.Fatalf("%d frames took %d writes; queued frames should leave together", frames, n)
	} else {
		t.Logf("%d frames in %d writes", frames, n)
	}
}
