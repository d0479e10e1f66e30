package pubsub

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// natsProxy forwards TCP between NATS clients and a NATS server on
// loopback. Before forwarding a chunk to the server or to a client it
// calls toServer or toClient (nil: nothing), which a test uses to slow or
// hold that direction.
type natsProxy struct {
	ln                 net.Listener
	target             string
	toServer, toClient func()

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newNATSProxy(t *testing.T, natsURL string, toServer, toClient func()) *natsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &natsProxy{ln: ln, target: strings.TrimPrefix(natsURL, "nats://"), toServer: toServer, toClient: toClient}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *natsProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *natsProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); defer s.Close(); forwardChunks(c, s, p.toServer) }()
		go func() { defer p.wg.Done(); defer c.Close(); forwardChunks(s, c, p.toClient) }()
	}
}

// forwardChunks copies from to to until either fails, calling before (if
// not nil) ahead of each chunk.
func forwardChunks(from, to net.Conn, before func()) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			if before != nil {
				before()
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// holdProxy is a natsProxy that, while held, lets nothing go from the
// server to the clients (requests reach the server and are served, their
// answers wait), as on a congested link.
type holdProxy struct {
	*natsProxy

	mu   sync.Mutex
	gate chan struct{} // non-nil while held
}

func newHoldProxy(t *testing.T, natsURL string) *holdProxy {
	t.Helper()
	h := &holdProxy{}
	h.natsProxy = newNATSProxy(t, natsURL, nil, h.wait)
	t.Cleanup(h.release) // before the proxy's own clean-up, which waits for its forwarders
	return h
}

// wait blocks while the proxy is held.
func (p *holdProxy) wait() {
	p.mu.Lock()
	g := p.gate
	p.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (p *holdProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

func (p *holdProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// TestReadLeftWhileCreatingLeavesNoConsumer: a read whose caller leaves
// (its ctx ends) after the consumer's create request reached NATS but
// before the answer came does not leave that consumer on the server until
// its inactivity threshold (a minute): clients who leave while their
// reads start would otherwise pile consumers up on NATS.
func TestReadLeftWhileCreatingLeavesNoConsumer(t *testing.T) {
	url := startNATS(t, true)
	p := newHoldProxy(t, url)
	l := openLog(t, Options{URLs: []string{p.url()}})
	mustAdd(t, l, "room_1", "hello")
	js := rawJS(t, url)
	consumers := func() int {
		n := 0
		for name := range js.StreamNames(testCtx(t, 5*time.Second)).Name() {
			s, err := js.Stream(testCtx(t, 5*time.Second), name)
			if err != nil {
				t.Fatalf("stream %s: %v", name, err)
			}
			info, err := s.Info(testCtx(t, 5*time.Second))
			if err != nil {
				t.Fatalf("stream %s info: %v", name, err)
			}
			n += info.State.Consumers
		}
		return n
	}
	before := consumers()

	p.hold()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := l.ReadKey(ctx, "room_1", 0, func(Entry) error { return nil })
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the read's consumer on the server", func() bool { return consumers() > before })
	cancel()
	waitFor(t, 5*time.Second, "the consumer of the read left while its create was unanswered to go",
		func() bool { return consumers() == before })
	p.release()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read did not return after its ctx ended")
	}
}
