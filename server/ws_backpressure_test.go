package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/chat"
)

// dialTinyWindow opens a graphql-transport-ws socket whose receive buffer
// is tiny, so a client that stops reading quickly stalls the server's
// writes to it.
func (r *replica) dialTinyWindow(user string) *wsClient {
	r.t.Helper()
	return r.dialTinyWindowSpeaking(subprotocolTransportWS, user)
}

// dialTinyWindowSpeaking is dialTinyWindow on the given subprotocol.
func (r *replica) dialTinyWindowSpeaking(subprotocol, user string) *wsClient {
	r.t.Helper()
	d := websocket.Dialer{
		Subprotocols:     []string{subprotocol},
		HandshakeTimeout: 5 * time.Second,
		NetDialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) {
				_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
		}}).DialContext,
	}
	conn, _, err := d.Dial(r.wsURL, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = conn.Close() })
	c := &wsClient{t: r.t, conn: conn}
	c.init(user)
	c.expectType("connection_ack")
	return c
}

// firstSendBufferSmall gives the first connection it accepts a small send
// buffer, and the others the system's.
type firstSendBufferSmall struct {
	net.Listener
	once sync.Once
}

func (l *firstSendBufferSmall) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if tc, ok := conn.(*net.TCPConn); ok {
		l.once.Do(func() { _ = tc.SetWriteBuffer(4096) })
	}
	return conn, err
}

// TestSlowConsumerIsClosedAlone: one subscriber stops reading. Its socket
// alone is closed with 1013 within a bounded number of events; the others
// keep receiving every event, in order, while it happens.
//
// The slow socket is the replica's first connection, and only it has a
// small send buffer: with the system's, the kernel takes megabytes for a
// client that reads nothing (up to tcp_wmem's maximum, 4 MiB on Linux)
// before the queue fills, which took about 1,000 events and up to 17 s
// under load, long enough for keepalive pings to reach the fast clients.
func TestSlowConsumerIsClosedAlone(t *testing.T) {
	const queueMessages = 256
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.QueueMessages = queueMessages
		o.QueueBytes = 4 << 20
		// The queue must fill before a write has been stuck for
		// WriteTimeout, which closes the socket too, but not as a slow
		// consumer: on a loaded machine, posting 256 events took longer
		// than the default 10 s.
		o.WriteTimeout = time.Minute
	}, func(l net.Listener) net.Listener { return &firstSendBufferSmall{Listener: l} })
	room := r.room("general")
	q := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	slow := r.dialTinyWindow("slow")
	slow.subscribe("subscribe", "s", q, map[string]any{"r": room})
	fast := []*wsClient{r.dialTransport("a"), r.dialLegacy("b"), r.dialTransport("c")}
	for i, c := range fast {
		c.subscribe(map[bool]string{true: "start", false: "subscribe"}[i == 1], "s", q, map[string]any{"r": room})
	}
	waitFor(t, "subscriptions", func() bool { return r.members() == 4 })

	// The fast clients read everything as it comes. Each event is posted
	// once the fast clients have the one before, so the slow socket has
	// been handed every event but the last when the close is looked for.
	// It must be closed once its queue is full: after the queue's 256
	// messages and the few that the socket buffers and a begun write hold.
	// The bound is far below the ~1,000 events of 4 KB that the queue's
	// 4 MiB would take, were its message limit not applied.
	const maxEvents = queueMessages + 64
	var mu sync.Mutex
	received := make([][]string, len(fast))
	count := func(i int) int {
		mu.Lock()
		defer mu.Unlock()
		return len(received[i])
	}
	var readers sync.WaitGroup
	stopReading := make(chan struct{})
	for i, c := range fast {
		readers.Go(func() {
			for {
				f, err := c.read(10 * time.Second)
				if err != nil {
					select {
					case <-stopReading:
					default:
						t.Errorf("fast client %d: %v", i, err)
					}
					return
				}
				if f.keepalive() {
					continue
				}
				var got struct{ MessagePosted struct{ Text string } }
				if err := f.decodeData(&got); err != nil {
					t.Errorf("fast client %d: %v", i, err) // not t.Fatal: this is not the test's goroutine
					return
				}
				mu.Lock()
				received[i] = append(received[i], got.MessagePosted.Text)
				mu.Unlock()
			}
		})
	}

	// Post large messages until the slow socket has been closed.
	text := strings.Repeat("x", 3900)
	posted := 0
	start := time.Now()
	for ; posted < maxEvents; posted++ {
		waitFor(t, "the fast clients to receive the last event", func() bool {
			for i := range fast {
				if count(i) < posted {
					return false
				}
			}
			return true
		})
		r.post(room, "poster", fmt.Sprintf("%05d %s", posted, text))
		if testutil.ToFloat64(r.server.ws.metrics.slowCloses) >= 1 {
			posted++
			break
		}
	}
	if got := testutil.ToFloat64(r.server.ws.metrics.slowCloses); got != 1 {
		t.Fatalf("slow-consumer closes = %v after %d events, want 1", got, posted)
	}
	if got := testutil.ToFloat64(r.server.ws.metrics.closes.WithLabelValues("1013")); got != 1 {
		t.Fatalf("closes with 1013 = %v, want 1", got)
	}
	waitFor(t, "the slow socket to be released", func() bool { return r.members() == 3 })
	t.Logf("slow socket closed after %d events in %v", posted, time.Since(start).Round(time.Millisecond))

	// A few more events after the close still reach the others.
	for i := range 5 {
		r.post(room, "poster", fmt.Sprintf("%05d after", posted+i))
	}
	total := posted + 5
	waitFor(t, "fast clients to receive everything", func() bool {
		for i := range fast {
			if count(i) < total {
				return false
			}
		}
		return true
	})
	close(stopReading)
	for _, c := range fast {
		_ = c.conn.SetReadDeadline(time.Now()) // end the readers now
	}
	readers.Wait()
	for i := range fast {
		if len(received[i]) != total {
			t.Fatalf("fast client %d received %d events, want %d", i, len(received[i]), total)
		}
		for n, text := range received[i] {
			if !strings.HasPrefix(text, fmt.Sprintf("%05d ", n)) {
				t.Fatalf("fast client %d: event %d is %.10q: lost or reordered", i, n, text)
			}
		}
	}

	// The stalled client, reading at last, finds its socket closed: with
	// 1013 if the close frame got through, otherwise dropped.
	for {
		_, _, err := slow.conn.ReadMessage()
		if err == nil {
			continue
		}
		if ce, ok := err.(*websocket.CloseError); ok && ce.Code != closeTryAgainLater && ce.Code != websocket.CloseAbnormalClosure {
			t.Fatalf("slow client closed with %d, want 1013 or a dropped connection", ce.Code)
		}
		break
	}
}

// TestAbruptDisconnectsLeakNothing runs 1,000 connect, subscribe and
// drop-the-TCP-connection cycles and checks that goroutines, sockets,
// operations and shared executions return to their baseline.
func TestAbruptDisconnectsLeakNothing(t *testing.T) {
	r := newReplica(t, nil)
	rooms := []string{r.room("a"), r.room("b"), r.room("c")}
	q := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	runtime.GC()
	baseline := runtime.NumGoroutine()

	for i := range 1000 {
		var c *wsClient
		if i%2 == 0 {
			c = r.dialTransport(fmt.Sprintf("u%d", i))
			c.subscribe("subscribe", "s", q, map[string]any{"r": rooms[i%3]})
		} else {
			c = r.dialLegacy(fmt.Sprintf("u%d", i))
			c.subscribe("start", "s", q, map[string]any{"r": rooms[i%3]})
		}
		if i%10 == 0 { // sometimes mid-delivery
			go r.chat.PostMessage(context.Background(), chatActor("poster"), rooms[i%3], "x", "")
		}
		_ = c.conn.UnderlyingConn().Close() // no close frame, no FIN handshake from the protocol
	}

	waitFor(t, "every socket to be released", func() bool {
		return r.members() == 0 && r.server.ws.execs.count() == 0 && r.openSockets() == 0
	})
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after 1,000 cycles, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
	if got := testutil.ToFloat64(r.server.ws.metrics.operations); got != 0 {
		t.Fatalf("operations gauge = %v, want 0", got)
	}
	for _, p := range []protocol{transportWS, legacyWS} {
		if got := testutil.ToFloat64(r.server.ws.metrics.sockets.WithLabelValues(p.String())); got != 0 {
			t.Fatalf("sockets{%s} = %v, want 0", p, got)
		}
	}
}

func TestMetricsEndpoint(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	c := r.dialTransport("alice")
	c.subscribe("subscribe", "s", `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
	waitFor(t, "subscription", func() bool { return r.members() == 1 })
	r.post(room, "bob", "hi")
	c.next()
	// The writer counts a delivery and its latency once its write has
	// returned, which may be after the client has read the frame.
	var status int
	var body string
	waitFor(t, "the delivery to be counted", func() bool {
		status, body = r.get("/metrics")
		return status != http.StatusOK || strings.Contains(body, "herald_deliveries_total 1") &&
			strings.Contains(body, "herald_delivery_latency_seconds_count 1")
	})
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`herald_ws_sockets{protocol="graphql-transport-ws"} 1`,
		`herald_ws_sockets{protocol="graphql-ws"} 0`,
		`herald_ws_operations 1`,
		`herald_shared_executions 1`,
		`herald_deliveries_total 1`,
		`herald_ws_slow_consumer_closes_total 0`,
		`herald_delivery_latency_seconds_count 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
