package pubsub

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// cutProxy forwards TCP between NATS clients and a NATS server. Once
// armed, it cuts the next client's connection in the middle of what the
// server sends: it forwards the server's bytes up to the start of the
// frame that carries the cutAt-th JetStream delivery ("$JS.ACK." reply)
// seen since arming, drops the rest and closes both sides. Connections
// made afterwards (nats.go's reconnect) are forwarded untouched.
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	armed atomic.Bool
	cutAt int
	seen  int // deliveries seen since arming; only the forwarding goroutine of the armed connection touches it
	cuts  atomic.Int32

	mu    sync.Mutex
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	return p
}

func (p *cutProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *cutProxy) arm(cutAt int) {
	p.cutAt = cutAt
	p.seen = 0
	p.armed.Store(true)
}

func (p *cutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
		go p.serverToClient(s, c)
	}
}

const ackReplyPrefix = "$JS.ACK."

func (p *cutProxy) serverToClient(s, c net.Conn) {
	defer func() { _ = c.Close(); _ = s.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if p.armed.Load() {
				if cut, ok := p.cutPoint(chunk); ok {
					p.armed.Store(false)
					_, _ = c.Write(chunk[:cut])
					p.cuts.Add(1)
					return // closes both sides: the rest never reaches the client
				}
			}
			if _, werr := c.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cutPoint finds, in chunk, the start of the frame that carries the
// cutAt-th delivery since arming.
func (p *cutProxy) cutPoint(chunk []byte) (int, bool) {
	off := 0
	for {
		i := bytes.Index(chunk[off:], []byte(ackReplyPrefix))
		if i < 0 {
			return 0, false
		}
		at := off + i
		p.seen++
		if p.seen == p.cutAt {
			start := bytes.LastIndex(chunk[:at], []byte("\r\n"))
			if start < 0 {
				return 0, true
			}
			return start + 2, true
		}
		off = at + len(ackReplyPrefix)
	}
}

// logThroughTwoProxies opens a Log on url through two proxies, as a Log is
// given the URLs of two NATS nodes: when one connection breaks, nats.go
// reconnects through the other at once.
func logThroughTwoProxies(t *testing.T, url string) (*Log, func() *cutProxy) {
	t.Helper()
	pa := newCutProxy(t, url[len("nats://"):])
	pb := newCutProxy(t, url[len("nats://"):])
	l := openLog(t, Options{URLs: []string{pa.url(), pb.url()}})
	current := func() *cutProxy {
		waitFor(t, 10*time.Second, "a connection", l.Connected)
		if l.nc.ConnectedUrl() == pb.url() {
			return pb
		}
		return pa
	}
	return l, current
}

// TestReadKeyFailsOnEntriesLostInTransit shows that ReadKey gives every
// entry of the key up to its last when the read began, or an error, when the
// NATS connection breaks while the consumer's last entries are on their way
// and nats.go reconnects (through another URL, at once) within the read's
// idle wait. Those entries are gone (the consumer, which acknowledges
// nothing, counts them delivered): the next pull request finds nothing and
// the consumer says nothing is pending. ReadKey used to return success with
// the tail missing; drain now compares what the consumer delivered with what
// arrived.
func TestReadKeyFailsOnEntriesLostInTransit(t *testing.T) {
	url := startNATS(t, true)
	l, current := logThroughTwoProxies(t, url)
	const key, total = "room1", 6
	appendChain(t, l, key, "posts", 0, "1", "2", "3", "4", "5", "6")

	// Entries 1-3 of the read's batch get through; the connection is cut
	// before the frame of the 4th.
	proxy := current()
	proxy.arm(4)
	var got []uint64
	last, err := l.ReadKey(testCtx(t, 20*time.Second), key, 0, func(e Entry) error {
		got = append(got, e.Seq)
		return nil
	})
	t.Logf("ReadKey passed %v, last %d, err %v (reconnects %d)", got, last, err, l.nc.Stats().Reconnects)
	if proxy.cuts.Load() != 1 {
		t.Fatalf("the proxy did not cut the connection")
	}
	if err == nil && len(got) != total {
		t.Errorf("ReadKey returned no error after passing %d of the key's %d entries (seqs %v): "+
			"the entries lost with the connection are silently missing", len(got), total, got)
	}
}

// TestReadLegacyFailsOnEntriesLostInTransit: the same loss in ReadLegacy,
// with which chat.Migrate reads the whole old stream before it deletes that
// stream: a silently short read would lose the entries for good.
func TestReadLegacyFailsOnEntriesLostInTransit(t *testing.T) {
	url := startNATS(t, true)
	createStream(t, url, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, MaxMsgsPerSubject: 100})
	js := rawJS(t, url)
	const total = 6
	for i := range total {
		if _, err := js.Publish(testCtx(t, 5*time.Second), "herald.room.r1.posts", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	l, current := logThroughTwoProxies(t, url)
	if !l.HasLegacy() {
		t.Fatal("no legacy stream found")
	}
	proxy := current()
	proxy.arm(4)
	var got []uint64
	err := l.ReadLegacy(testCtx(t, 20*time.Second), func(e Entry) error {
		got = append(got, e.Seq)
		return nil
	})
	t.Logf("ReadLegacy passed %v, err %v", got, err)
	if proxy.cuts.Load() != 1 {
		t.Fatalf("the proxy did not cut the connection")
	}
	if err == nil && len(got) != total {
		t.Errorf("ReadLegacy returned no error after passing %d of the stream's %d entries (seqs %v)", len(got), total, got)
	}
}
