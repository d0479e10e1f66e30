package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	client, err = net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("accept timed out")
	}
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		server.Close()
		client.Close()
	})
	return server, client
}

// readyWithin runs w.ready on a goroutine and reports whether it returned
// within d; if not, the caller must unblock it.
func readyWithin(w *inputWaiter, d time.Duration) (returned bool, wait func()) {
	done := make(chan struct{})
	go func() {
		w.ready()
		close(done)
	}()
	select {
	case <-done:
		return true, func() {}
	case <-time.After(d):
		return false, func() { <-done }
	}
}

func TestInputWaiter(t *testing.T) {
	cases := []struct {
		name string
		// wake is what should end the wait; nil means nothing does (the
		// test ends it by closing the connection).
		wake func(t *testing.T, server, client net.Conn)
		// afterwards checks what the next read sees.
		afterwards func(t *testing.T, br *bufio.Reader)
	}{
		{
			name: "bytes arrive, and are left to read",
			wake: func(t *testing.T, _, client net.Conn) {
				if _, err := client.Write([]byte("hi")); err != nil {
					t.Fatal(err)
				}
			},
			afterwards: func(t *testing.T, br *bufio.Reader) {
				got := make([]byte, 2)
				if _, err := io.ReadFull(br, got); err != nil || string(got) != "hi" {
					t.Fatalf("read after waiting = %q, %v; want the bytes that woke it", got, err)
				}
			},
		},
		{
			name: "peer closes",
			wake: func(t *testing.T, _, client net.Conn) { client.Close() },
			afterwards: func(t *testing.T, br *bufio.Reader) {
				if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
					t.Fatalf("read after the peer closed: %v, want EOF", err)
				}
			},
		},
		{
			name: "read deadline passes",
			wake: func(t *testing.T, server, _ net.Conn) {
				_ = server.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			},
			afterwards: func(t *testing.T, br *bufio.Reader) {
				if _, err := br.ReadByte(); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("read after the deadline: %v, want a deadline error", err)
				}
			},
		},
		{
			name: "connection closed locally",
			wake: func(t *testing.T, server, _ net.Conn) { server.Close() },
			afterwards: func(t *testing.T, br *bufio.Reader) {
				if _, err := br.ReadByte(); !errors.Is(err, net.ErrClosed) {
					t.Fatalf("read after closing: %v, want net.ErrClosed", err)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			server, client := tcpPair(t)
			br := bufio.NewReaderSize(server, readBufferSize)
			w := newInputWaiter(server, br)
			if w == nil {
				t.Skip("no shallow wait on this platform; the reader reads on its own stack")
			}
			returned, wait := readyWithin(w, 100*time.Millisecond)
			if returned {
				t.Fatal("ready returned with nothing to read")
			}
			tc.wake(t, server, client)
			done := make(chan struct{})
			go func() { wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				server.Close()
				t.Fatal("ready did not return after the wake-up")
			}
			tc.afterwards(t, br)
		})
	}
}

func TestInputWaiterSeesBufferedBytes(t *testing.T) {
	server, client := tcpPair(t)
	br := bufio.NewReaderSize(server, readBufferSize)
	w := newInputWaiter(server, br)
	if w == nil {
		t.Skip("no shallow wait on this platform")
	}
	// Two messages arrive together; reading the first buffers the second,
	// so the socket has nothing more but the next read will not block.
	if _, err := client.Write([]byte("ab")); err != nil {
		t.Fatal(err)
	}
	if b, err := br.ReadByte(); err != nil || b != 'a' {
		t.Fatalf("first byte = %q, %v", b, err)
	}
	if returned, wait := readyWithin(w, 2*time.Second); !returned {
		server.Close()
		wait()
		t.Fatal("ready blocked although a byte was buffered")
	}
}

func TestInputWaiterDoesNotAllocate(t *testing.T) {
	server, client := tcpPair(t)
	w := newInputWaiter(server, bufio.NewReaderSize(server, readBufferSize))
	if w == nil {
		t.Skip("no shallow wait on this platform")
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	w.ready() // let the byte arrive
	// Idle sockets are waited on once per keepalive frame, tens of
	// thousands a second on a busy replica: garbage here is what an idle
	// server's memory grows by.
	if n := testing.AllocsPerRun(100, w.ready); n != 0 {
		t.Fatalf("ready allocates %.1f times per call; want 0", n)
	}
}

// deadlineCounter counts the write deadlines that reach the connection.
type deadlineCounter struct {
	net.Conn
	set []time.Time
}

func (d *deadlineCounter) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

func (d *deadlineCounter) SetDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return nil
}

func TestDeadlineConnPassesOnlyChanges(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	later := base.Add(time.Second)
	steps := []struct {
		name   string
		set    func(*deadlineConn) error
		passed bool
	}{
		{"first deadline", func(d *deadlineConn) error { return d.SetWriteDeadline(base) }, true},
		{"same deadline again", func(d *deadlineConn) error { return d.SetWriteDeadline(base) }, false},
		{"same instant, other location", func(d *deadlineConn) error { return d.SetWriteDeadline(base.UTC()) }, false},
		{"a later deadline", func(d *deadlineConn) error { return d.SetWriteDeadline(later) }, true},
		{"cleared", func(d *deadlineConn) error { return d.SetWriteDeadline(time.Time{}) }, true},
		{"cleared again", func(d *deadlineConn) error { return d.SetWriteDeadline(time.Time{}) }, false},
		{"both deadlines", func(d *deadlineConn) error { return d.SetDeadline(base) }, true},
		{"write deadline equal to both", func(d *deadlineConn) error { return d.SetWriteDeadline(base) }, false},
	}
	counter := &deadlineCounter{}
	d := &deadlineConn{Conn: counter}
	for _, step := range steps {
		before := len(counter.set)
		if err := step.set(d); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if passed := len(counter.set) > before; passed != step.passed {
			t.Errorf("%s: passed on = %v, want %v", step.name, passed, step.passed)
		}
	}
}

func TestDeadlineConnExposesSocket(t *testing.T) {
	server, _ := tcpPair(t)
	d := &deadlineConn{Conn: server}
	if _, err := d.SyscallConn(); err != nil {
		t.Fatalf("SyscallConn of a TCP connection: %v", err)
	}
	if _, err := (&deadlineConn{Conn: &deadlineCounter{}}).SyscallConn(); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("SyscallConn of a non-socket = %v, want ErrUnsupported", err)
	}
}

// TestHijackWrapsDeadlines shows that the connection handed to the
// upgrader is the deduplicating one, with a read buffer the socket keeps.
func TestHijackWrapsDeadlines(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &readerHijacker{ResponseWriter: w}
		conn, _, err := hj.Hijack()
		if err != nil {
			got <- "hijack: " + err.Error()
			return
		}
		defer conn.Close()
		_, wrapped := conn.(*deadlineConn)
		got <- fmt.Sprintf("wrapped=%v buffer=%v", wrapped, hj.br != nil)
	}))
	defer srv.Close()
	resp, err := getBounded(srv.URL)
	if err == nil {
		resp.Body.Close()
	}
	select {
	case s := <-got:
		if s != "wrapped=true buffer=true" {
			t.Fatalf("hijacked connection: %s, want wrapped=true buffer=true", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not run")
	}
}

// TestSealedConnRefusesGorilla: once sealed, the connection refuses
// gorilla's writes and ignores the write deadlines it sets before them,
// while the socket's writer still writes, whole frames or in parts.
func TestSealedConnRefusesGorilla(t *testing.T) {
	server, client := tcpPair(t)
	d := &deadlineConn{Conn: server, sealed: true}
	if n, err := d.Write([]byte("gorilla")); n != 0 || !errors.Is(err, errNotTheWriter) {
		t.Fatalf("gorilla's write to a sealed connection = %d, %v; want 0, errNotTheWriter", n, err)
	}
	if err := d.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := d.writeFrame([]byte("writer")); err != nil {
		t.Fatalf("the writer's write after gorilla set a past deadline: %v", err)
	}
	if err := d.writeFrameParts(net.Buffers{[]byte("+"), []byte("parts")}); err != nil {
		t.Fatalf("the writer's write in parts: %v", err)
	}
	got := make([]byte, len("writer+parts"))
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, got); err != nil || string(got) != "writer+parts" {
		t.Fatalf("the peer read %q, %v; want only the writer's bytes", got, err)
	}
}
