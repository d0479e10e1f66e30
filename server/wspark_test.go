package server

import (
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// parkedPair is a loopback TCP connection whose server side is parked
// with p; resumed counts the reader's wake-ups.
type parkedPair struct {
	client, server net.Conn
	r              *parkedReader
	resumed        chan struct{}
	count          atomic.Int32
}

func newParkedPair(t *testing.T, p *parker) *parkedPair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	pp := &parkedPair{client: client, server: server, resumed: make(chan struct{}, 16)}
	pp.r = newParkedReader(p, server.(*net.TCPConn), func() {
		pp.count.Add(1)
		pp.resumed <- struct{}{}
	})
	if pp.r == nil {
		t.Fatal("newParkedReader: nil for a TCP connection")
	}
	return pp
}

// testParker returns a parker closed when t ends, and skips t where there
// is none.
func testParker(t *testing.T) *parker {
	t.Helper()
	if !parksSockets {
		t.Skip("no parker on this platform")
	}
	p, err := newParker()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close) // closing twice is harmless
	return p
}

// expectResumed waits for one wake-up; expectParked checks there is none.
func (pp *parkedPair) expectResumed(t *testing.T, why string) {
	t.Helper()
	select {
	case <-pp.resumed:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: the parked reader was not resumed", why)
	}
}

func (pp *parkedPair) expectParked(t *testing.T, why string) {
	t.Helper()
	select {
	case <-pp.resumed:
		t.Fatalf("%s: the reader was resumed", why)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestParkerWakes(t *testing.T) {
	tests := []struct {
		name string
		wake func(pp *parkedPair) // makes the parked reader due
	}{
		{"input", func(pp *parkedPair) { _, _ = pp.client.Write([]byte("x")) }},
		{"peer closes", func(pp *parkedPair) { _ = pp.client.Close() }},
		{"socket closed", func(pp *parkedPair) { _ = (&deadlineConn{Conn: pp.server, park: pp.r}).Close() }},
		{"read deadline", func(pp *parkedPair) {
			_ = (&deadlineConn{Conn: pp.server, park: pp.r}).SetReadDeadline(time.Now().Add(time.Hour))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testParker(t)
			pp := newParkedPair(t, p)
			if !pp.r.park() {
				t.Fatal("park: refused on an open socket")
			}
			pp.expectParked(t, "before anything happened")
			tt.wake(pp)
			pp.expectResumed(t, tt.name)
			pp.expectParked(t, "after the wake-up") // once only
		})
	}
}

func TestParkerRearms(t *testing.T) {
	p := testParker(t)
	pp := newParkedPair(t, p)
	buf := make([]byte, 8)
	for i := range 3 {
		if !pp.r.park() {
			t.Fatalf("park %d: refused", i)
		}
		if _, err := pp.client.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		pp.expectResumed(t, "input after a re-park")
		if _, err := pp.server.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	// Input already waiting when the socket is parked wakes it at once
	// (level-triggered).
	if _, err := pp.client.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if !pp.r.park() {
		t.Fatal("park: refused")
	}
	pp.expectResumed(t, "input waiting at the park")
	if n := pp.count.Load(); n != 4 {
		t.Fatalf("resumed %d times, want 4", n)
	}
}

func TestParkerRefuses(t *testing.T) {
	t.Run("read deadline set", func(t *testing.T) {
		p := testParker(t)
		pp := newParkedPair(t, p)
		_ = (&deadlineConn{Conn: pp.server, park: pp.r}).SetReadDeadline(time.Now().Add(time.Hour))
		if pp.r.park() {
			t.Fatal("park: accepted with a read deadline set; the deadline would go unseen")
		}
		_ = (&deadlineConn{Conn: pp.server, park: pp.r}).SetReadDeadline(time.Time{})
		if !pp.r.park() {
			t.Fatal("park: refused once the deadline was cleared")
		}
	})
	t.Run("socket closed", func(t *testing.T) {
		p := testParker(t)
		pp := newParkedPair(t, p)
		_ = pp.server.Close()
		if pp.r.park() {
			t.Fatal("park: accepted a closed socket")
		}
		pp.expectParked(t, "a refused park")
	})
	t.Run("parker closed", func(t *testing.T) {
		p := testParker(t)
		parked, later := newParkedPair(t, p), newParkedPair(t, p)
		if !parked.r.park() {
			t.Fatal("park: refused")
		}
		p.close()
		parked.expectResumed(t, "the parker closed") // it waits for itself from now on
		if later.r.park() {
			t.Fatal("park: accepted by a closed parker")
		}
	})
}

// TestParkerWakesOnce races a wake-up by input against one by Close: the
// reader runs again exactly once.
func TestParkerWakesOnce(t *testing.T) {
	p := testParker(t)
	for range 50 {
		pp := newParkedPair(t, p)
		if !pp.r.park() {
			t.Fatal("park: refused")
		}
		go func() { _, _ = pp.client.Write([]byte("x")) }()
		_ = (&deadlineConn{Conn: pp.server, park: pp.r}).Close()
		pp.expectResumed(t, "input and Close")
		pp.expectParked(t, "a second wake-up")
		pp.r.forget()
	}
	if n := p.registered(); n != 0 {
		t.Fatalf("%d sockets left in the registry after forget", n)
	}
}
