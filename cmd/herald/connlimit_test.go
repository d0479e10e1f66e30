package main

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// limitOn returns a connLimit of n slots on a loopback listener, closed at
// the end of the test, and the keep-alive switches it made.
func limitOn(t *testing.T, n int) (*connLimit, *keepAliveLog) {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	kl := &keepAliveLog{}
	l := newConnLimit(inner, n, 0, kl.set, quietLogger(t))
	t.Cleanup(func() { _ = l.Close() })
	return l, kl
}

// keepAliveLog records the calls of connLimit.keepAlives.
type keepAliveLog struct {
	mu    sync.Mutex
	calls []bool
}

func (k *keepAliveLog) set(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.calls = append(k.calls, on)
}

func (k *keepAliveLog) take() []bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	calls := k.calls
	k.calls = nil
	return calls
}

// dialAccept dials l and accepts the connection: the client's end and the
// server's.
func dialAccept(t *testing.T, l *connLimit) (client, server net.Conn) {
	t.Helper()
	client, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server, err = l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return client, server
}

// waitOpen waits up to 5 s until l has want connections open.
func waitOpen(t *testing.T, l *connLimit, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for l.open() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", l.open(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConnLimitReleasesASlotOnce: a connection frees its slot when it is
// closed, once, whoever closes it and however often: net/http, or the
// handler that hijacked it (a WebSocket, a parked stream), which closes
// the same net.Conn. The hijacked connection still exposes its socket
// (the server's parker and direct writes need syscall.Conn).
func TestConnLimitReleasesASlotOnce(t *testing.T) {
	tests := []struct {
		name string
		// handle answers one request on the connection, and says what it
		// closes.
		handle func(t *testing.T, w http.ResponseWriter, r *http.Request)
		header string // the request's Connection header
	}{
		{"closed by net/http after its request", func(t *testing.T, w http.ResponseWriter, r *http.Request) {}, "close"},
		{"hijacked and closed twice", func(t *testing.T, w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			if _, ok := conn.(syscall.Conn); !ok {
				t.Errorf("the hijacked connection (%T) is not a syscall.Conn", conn)
			}
			if _, ok := conn.(interface{ CloseWrite() error }); !ok {
				t.Errorf("the hijacked connection (%T) cannot half-close", conn)
			}
			_, _ = io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
			_ = conn.Close()
			_ = conn.Close()
		}, "keep-alive"},
		{"hijacked and closed by another goroutine while read", func(t *testing.T, w http.ResponseWriter, r *http.Request) {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.WriteString(conn, "HTTP/1.1 204 No Content\r\n\r\n")
			done := make(chan struct{})
			go func() {
				defer close(done)
				_, _ = conn.Read(make([]byte, 1))
				_ = conn.Close()
			}()
			time.Sleep(20 * time.Millisecond)
			_ = conn.Close()
			<-done
		}, "keep-alive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := limitOn(t, 4)
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { tt.handle(t, w, r) })}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(l) }()
			defer func() {
				go func() { _ = srv.Close() }() // it waits for Serve
				select {
				case err := <-served:
					if !errors.Is(err, http.ErrServerClosed) {
						t.Errorf("Serve: %v", err)
					}
				case <-time.After(5 * time.Second):
					t.Error("Serve still runs 5 s after Close")
				}
			}()

			for i := range 6 { // more than the slots: each must have been freed
				c, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: herald\r\nConnection: "+tt.header+"\r\n\r\n")
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatalf("connection %d: %v (%d connections open)", i, err, l.open())
				}
				resp.Body.Close()
				_ = c.Close()
				waitOpen(t, l, 0)
			}
		})
	}
}

// TestConnLimitCloseTwiceReleasesOnce: closing a connection again frees
// nothing more.
func TestConnLimitCloseTwiceReleasesOnce(t *testing.T) {
	l, _ := limitOn(t, 4)
	_, a := dialAccept(t, l)
	_, b := dialAccept(t, l)
	check := func(when string, want int) {
		t.Helper()
		if l.open() != want || len(l.slots) != want {
			t.Fatalf("%s: %d connections open and %d slots taken, want %d", when, l.open(), len(l.slots), want)
		}
	}
	check("two accepted", 2)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for range 3 {
			_ = a.Close()
		}
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("closing a connection again blocks: it frees a slot not taken")
	}
	check("one of them closed three times", 1)
	_ = b.Close()
	check("both closed", 0)
}

// TestConnLimitAcceptWaitsAtTheCap: with every slot taken, Accept waits
// (the client waits in the kernel's backlog), neither failing nor
// spinning, and takes the next client once a connection closes; Close of
// the listener ends a waiting Accept.
func TestConnLimitAcceptWaitsAtTheCap(t *testing.T) {
	tests := []struct {
		name string
		free func(l *connLimit, held net.Conn) // what lets the waiting Accept go on
		want error                             // nil: it accepts the waiting client
	}{
		{"a connection closes", func(l *connLimit, held net.Conn) { _ = held.Close() }, nil},
		{"the listener is closed", func(l *connLimit, held net.Conn) { _ = l.Close() }, net.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, _ := limitOn(t, 2)
			_, first := dialAccept(t, l)
			_, second := dialAccept(t, l)
			defer second.Close()

			waiting, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
			if err != nil {
				t.Fatalf("a client at the cap is not held in the backlog: %v", err)
			}
			defer waiting.Close()
			type accepted struct {
				c   net.Conn
				err error
			}
			got := make(chan accepted, 1)
			go func() {
				c, err := l.Accept()
				got <- accepted{c, err}
			}()
			select {
			case a := <-got:
				t.Fatalf("Accept at the cap returned %v, %v; want it to wait", a.c, a.err)
			case <-time.After(200 * time.Millisecond):
			}
			if l.waited() != 1 {
				t.Errorf("waits counted: %d, want 1", l.waited())
			}

			tt.free(l, first)
			select {
			case a := <-got:
				if !errors.Is(a.err, tt.want) {
					t.Fatalf("Accept returned %v, want %v", a.err, tt.want)
				}
				if a.c != nil {
					defer a.c.Close()
					if a.c.RemoteAddr().String() != waiting.LocalAddr().String() {
						t.Errorf("accepted %s, want the waiting client %s", a.c.RemoteAddr(), waiting.LocalAddr())
					}
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Accept still waits 5 s later")
			}
		})
	}
}

// TestConnLimitCountsOnlyClientsThatWait: the server's accept loop calls
// Accept again at once, so a listener at its bound waits for a slot
// whether or not anyone is dialling. herald_http_accept_waits_total and
// the warning say new clients wait: they count a wait only once a client
// is in the backlog, and then once per Accept.
func TestConnLimitCountsOnlyClientsThatWait(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testrig.LogBuffer{}
	l := newConnLimit(inner, 2, 0, func(bool) {}, slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { _ = l.Close() })
	_, first := dialAccept(t, l)
	_, second := dialAccept(t, l)
	defer second.Close()

	got := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		got <- c
	}()
	time.Sleep(5 * connLimitBacklogEvery) // the Accept waits and looks at the backlog several times
	if n := l.waited(); n != 0 || strings.Contains(logs.String(), "new clients wait") {
		t.Fatalf("at its bound with no client dialling: waits counted %d (want 0), log:\n%s", n, logs.String())
	}

	waiting, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatalf("a client at the cap is not held in the backlog: %v", err)
	}
	defer waiting.Close()
	deadline := time.Now().Add(5 * time.Second)
	for l.waited() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * connLimitBacklogEvery) // a second count would come within a look or two
	if n := l.waited(); n != 1 || !strings.Contains(logs.String(), "new clients wait") {
		t.Fatalf("a client waited in the backlog: waits counted %d (want 1), log:\n%s", n, logs.String())
	}

	_ = first.Close()
	select {
	case c := <-got:
		if c == nil {
			t.Fatal("Accept failed after a slot was freed")
		}
		defer c.Close()
		if c.RemoteAddr().String() != waiting.LocalAddr().String() {
			t.Errorf("accepted %s, want the waiting client %s", c.RemoteAddr(), waiting.LocalAddr())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Accept still waits 5 s after a slot was freed")
	}
}

// TestConnLimitCountsAShortWait: herald_http_accept_waits_total is
// "new connections that waited to be accepted at that bound". A client
// that dials while every slot is taken waits in the backlog until one is
// freed; when that happens before the waiting Accept's next look at the
// backlog (every connLimitBacklogEvery), the wait must still be counted.
// At a bound where connections come and go every few tens of
// milliseconds, every new client waits and none would be counted.
func TestConnLimitCountsAShortWait(t *testing.T) {
	l, _ := limitOn(t, 1)
	missed := 0
	const rounds = 5
	for round := range rounds {
		_, held := dialAccept(t, l)
		before := l.waited()
		got := make(chan net.Conn, 1)
		go func() {
			c, _ := l.Accept()
			got <- c
		}()
		waitAcceptWaiting(t) // the Accept has looked once, found nobody, and waits
		client, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatalf("round %d: a client at the cap is not held in the backlog: %v", round, err)
		}
		time.Sleep(connLimitBacklogEvery / 4) // the client waits
		_ = held.Close()                      // a slot is freed before the next look
		select {
		case c := <-got:
			if c == nil {
				t.Fatalf("round %d: Accept failed", round)
			}
			if l.waited() == before {
				missed++
			}
			_ = c.Close()
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: Accept still waits 5 s after a slot was freed", round)
		}
		_ = client.Close()
		waitOpen(t, l, 0)
	}
	if missed > 0 {
		t.Fatalf("%d of %d clients waited about %s in the backlog at the bound and were accepted, but herald_http_accept_waits_total did not count them",
			missed, rounds, connLimitBacklogEvery/4)
	}
}

// waitAcceptWaiting waits until an Accept of a connLimit waits for a slot
// (blocked in acquire's select), which it enters only after its first look
// at the backlog. A goroutine started on a loaded machine may not have
// called Accept yet after a fixed sleep; a slot freed before it does is
// taken at once, with no wait to count.
func waitAcceptWaiting(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		n := runtime.Stack(buf, true)
		for _, g := range strings.Split(string(buf[:n]), "\n\n") {
			if strings.Contains(g, " [select") && strings.Contains(g, "(*connLimit).acquire") {
				return
			}
		}
	}
	t.Fatal("no Accept waits for a slot within 10 s")
}

// TestConnLimitTogglesKeepAlives: keep-alives go off when an Accept
// brings the open connections to the high-water mark, and on again when
// one leaves them at the low-water mark or below, not in between; after
// endKeepAlives (the drain) they stay off.
func TestConnLimitTogglesKeepAlives(t *testing.T) {
	type step struct {
		accept, close int  // connections accepted, then closed
		drain         bool // endKeepAlives
		want          []bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"off at high, on at low", []step{
			{accept: 5},
			{accept: 1, want: []bool{false}}, // 6: high
			{accept: 2},                      // 8: the cap
			{close: 5},                       // 3, seen at the next Accept
			{accept: 1},                      // 4: above low
			{close: 2, accept: 1, want: []bool{true}}, // 3: low
			{accept: 2},
		}},
		{"no flapping between the marks", []step{
			{accept: 6, want: []bool{false}},
			{close: 1, accept: 1},
			{close: 2, accept: 1},
			{close: 1, accept: 1},
		}},
		{"the drain keeps them off", []step{
			{accept: 6, want: []bool{false}},
			{drain: true, want: []bool{false}},
			{close: 5, accept: 1},
			{accept: 5},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, kl := limitOn(t, 8)
			l.high, l.low = 6, 3
			var open []net.Conn
			defer func() {
				for _, c := range open {
					_ = c.Close()
				}
			}()
			for i, s := range tt.steps {
				for _, c := range open[:s.close] {
					_ = c.Close()
				}
				open = open[s.close:]
				for range s.accept {
					_, c := dialAccept(t, l)
					open = append(open, c)
				}
				if s.drain {
					l.endKeepAlives()
				}
				if got := kl.take(); !equalBools(got, s.want) {
					t.Fatalf("step %d (%d open): keepAlives called with %v, want %v", i, l.open(), got, s.want)
				}
			}
		})
	}
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestConnLimitShedsIdleKeepAliveConnections: on a real http.Server,
// reaching the high-water mark closes the idle keep-alive connections,
// whose slots a new client then takes at once rather than after
// IdleTimeout.
func TestConnLimitShedsIdleKeepAliveConnections(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		IdleTimeout: time.Minute,
	}
	l := newConnLimit(inner, 8, 0, srv.SetKeepAlivesEnabled, quietLogger(t))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		_ = srv.Close()
		<-served
	}()

	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			_ = c.Close()
		}
	}()
	get := func(c net.Conn) (*http.Response, error) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: herald\r\n\r\n"); err != nil {
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	// Twice the cap: with nothing shed, the ninth would wait for a
	// minute.
	for i := range 16 {
		c, err := net.DialTimeout("tcp", l.Addr().String(), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
		if _, err := get(c); err != nil {
			t.Fatalf("client %d of 16 on a cap of 8: %v (%d connections open)", i, err, l.open())
		}
	}
	if l.open() >= 8 {
		t.Errorf("%d connections open after the idle ones were shed, want fewer than 8", l.open())
	}
}

// TestAcceptCapFor: the listener's cap leaves fdReserve descriptors and
// one per partition to the rest of the process, a quarter of a small
// limit, and is always above the default --max-connections, so that a
// full replica refuses upgrades with 503 rather than keeping them
// waiting to be accepted.
func TestAcceptCapFor(t *testing.T) {
	tests := []struct {
		limit      uint64
		ok         bool
		partitions int
		want       int
	}{
		{1100, true, 1, 971},
		{65536, true, 1, 65407},
		{65536, true, 256, 65152},
		{1024, true, 8, 888},
		{400, true, 1, 300},
		{8, true, 1, 6},
		{1, true, 1, 1},
		{0, true, 1, 1},
		{1 << 40, true, 1, math.MaxInt32},
		{0, false, 1, math.MaxInt32},
	}
	for _, tt := range tests {
		got := acceptCapFor(tt.limit, tt.ok, tt.partitions)
		if got != tt.want {
			t.Errorf("acceptCapFor(%d, %v, %d) = %d, want %d", tt.limit, tt.ok, tt.partitions, got, tt.want)
		}
		if maxConns, _ := defaultMaxConnections(tt.limit, tt.ok); tt.ok && tt.limit >= 4 && got < math.MaxInt32 && got <= maxConns {
			t.Errorf("limit %d, %d partitions: the listener's cap %d is not above the default --max-connections %d", tt.limit, tt.partitions, got, maxConns)
		}
	}
}

// TestKeepAliveMarks: keep-alives go off a margin below the listener's
// bound and on again twice that below it, the margin n/8 (at least 1, at
// most 64), smaller where that keeps the low mark above
// --max-connections: then a replica holding as many WebSockets and
// streams as it allows still turns keep-alives back on once its plain
// HTTP connections fall back.
func TestKeepAliveMarks(t *testing.T) {
	for _, tt := range []struct{ n, maxConns, high, low int }{
		// No --max-connections in the way: the margin as such.
		{8, 0, 7, 6},
		{160, 0, 140, 120},
		{512, 0, 448, 384},
		{1000, 0, 936, 872},
		{65407, 0, 65343, 65279},
		{1, 0, 0, -1},
		// The default --max-connections under an open-file limit of 65536,
		// with 1 and with 256 partitions: 65024 against 65407 and 65152.
		{65407, 65024, 65343, 65279},
		{65152, 65024, 65089, 65026},
		// The least room that still keeps the low mark above.
		{1000, 997, 999, 998},
		// Too little room, or none (--max-connections at the bound or
		// past it, which is warned about): the margin as such.
		{1000, 998, 936, 872},
		{1000, 1000, 936, 872},
		{1000, 5000, 936, 872},
	} {
		l := newConnLimit(nil, tt.n, tt.maxConns, func(bool) {}, quietLogger(t))
		if l.capacity() != tt.n || l.high != tt.high || l.low != tt.low {
			t.Errorf("newConnLimit(%d, --max-connections %d): capacity %d, marks %d and %d; want %d, %d and %d",
				tt.n, tt.maxConns, l.capacity(), l.high, l.low, tt.n, tt.high, tt.low)
		}
	}
}

// TestKeepAliveLowMarkAboveDefaultMaxConnections: with the default
// --max-connections, the listener's low-water mark is above it for every
// --partitions and any open-file limit above 8, so that a replica full of
// WebSockets and HTTP streams turns keep-alives back on once its plain
// HTTP connections fall back, not only once a socket closes.
func TestKeepAliveLowMarkAboveDefaultMaxConnections(t *testing.T) {
	for _, limit := range []uint64{9, 16, 100, 1024, 1025, 1536, 2048, 4096, 65536, 1 << 20} {
		maxConns, _ := defaultMaxConnections(limit, true)
		for _, partitions := range []int{1, 2, 64, 255, 256} {
			acceptCap := acceptCapFor(limit, true, partitions)
			high, low := keepAliveMarks(acceptCap, maxConns)
			if low <= maxConns || high <= low || high > acceptCap {
				t.Errorf("open-file limit %d, --partitions %d: listener bound %d, keep-alives off at %d and on again at %d; "+
					"want the low mark above the default --max-connections %d",
					limit, partitions, acceptCap, high, low, maxConns)
			}
		}
	}
}

// TestConnLimitWarnsOnceAMinute: the first Accept that finds every slot
// taken is logged at once (the operator learns that clients wait), the
// next ones within a minute are not, so a full listener does not flood
// the log.
func TestConnLimitWarnsOnceAMinute(t *testing.T) {
	logs := &testrig.LogBuffer{}
	l := newConnLimit(nil, 4, 0, func(bool) {}, slog.New(slog.NewTextHandler(logs, nil)))
	l.warnFull()
	l.warnFull()
	if n := strings.Count(logs.String(), "new clients wait"); n != 1 {
		t.Fatalf("%d warnings after two full Accepts within a minute, want 1:\n%s", n, logs)
	}
}

// failingOnce is a listener whose first Accept fails, as one does on
// EMFILE, which net/http retries.
type failingOnce struct {
	net.Listener
	once sync.Once
}

func (f *failingOnce) Accept() (net.Conn, error) {
	var failed bool
	f.once.Do(func() { failed = true })
	if failed {
		return nil, errors.New("accept: too many open files")
	}
	return f.Listener.Accept()
}

// TestConnLimitFailedAcceptFreesItsSlot: an Accept that fails gives back
// the slot it took, or each failure (EMFILE, which net/http retries)
// would shrink the listener until it accepted no one.
func TestConnLimitFailedAcceptFreesItsSlot(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimit(&failingOnce{Listener: inner}, 1, 0, func(bool) {}, quietLogger(t))
	t.Cleanup(func() { _ = l.Close() })
	if _, err := l.Accept(); err == nil {
		t.Fatal("the first Accept did not fail")
	}
	client, err := net.DialTimeout("tcp", inner.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	got := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			_ = c.Close()
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Accept after a failed one: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = l.Close() // ends the waiting Accept
		<-got
		t.Fatal("Accept still waits for a slot 10 s after a failed Accept: the failure kept its slot")
	}
}

// TestConnectionLimitsWarnAtTheListenerCap: a --max-connections at the
// listener's own bound or past it is warned about (past the bound,
// clients wait to be accepted instead of getting 503), one below it is
// not.
func TestConnectionLimitsWarnAtTheListenerCap(t *testing.T) {
	limit, ok := openFileLimit()
	acceptCap := acceptCapFor(limit, ok, 1)
	if !ok || acceptCap < 2 || acceptCap >= math.MaxInt32 {
		t.Skipf("open-file limit %d (%v): no finite listener bound to test against", limit, ok)
	}
	for _, tt := range []struct {
		maxConns int
		warned   bool
	}{{acceptCap, true}, {acceptCap + 1, true}, {acceptCap - 1, false}} {
		logs := &testrig.LogBuffer{}
		cfg := config{MaxConnections: tt.maxConns, Partitions: 1}
		got, gotCap := connectionLimits(cfg, slog.New(slog.NewTextHandler(logs, nil)))
		if got != tt.maxConns || gotCap != acceptCap {
			t.Fatalf("connectionLimits(--max-connections %d) = %d, %d; want %d, %d", tt.maxConns, got, gotCap, tt.maxConns, acceptCap)
		}
		if warned := strings.Contains(logs.String(), "--max-connections is not below"); warned != tt.warned {
			t.Errorf("--max-connections %d with the listener's bound %d: warned %v, want %v\n%s", tt.maxConns, acceptCap, warned, tt.warned, logs)
		}
	}
}

// TestAppKeepsLowMarkAboveMaxConnections: the replica's listener gets the
// --max-connections in force, so its low-water mark stays above it.
func TestAppKeepsLowMarkAboveMaxConnections(t *testing.T) {
	limit, ok := openFileLimit()
	acceptCap := acceptCapFor(limit, ok, 1)
	if !ok || acceptCap < 100 || acceptCap >= math.MaxInt32 {
		t.Skipf("open-file limit %d (%v): no finite listener bound to test against", limit, ok)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.MaxConnections = acceptCap - 10 // a margin of 64 would put the low mark below it
	a := startTestApp(t, cfg)
	if a.conns.low <= cfg.MaxConnections || a.conns.high <= a.conns.low {
		t.Fatalf("--max-connections %d, listener bound %d: keep-alives off at %d and on again at %d; want the low mark above --max-connections",
			cfg.MaxConnections, a.conns.capacity(), a.conns.high, a.conns.low)
	}
}
