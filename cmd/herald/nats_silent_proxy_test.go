package main

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// holeProxy is a loopback TCP proxy between Herald and a NATS server that
// can make the link silent without resetting anything: pause holds every
// byte (a pulled cable plugged back in time: TCP delivers it late), and
// cutSilently makes the connections open now black holes for good (a
// middlebox that lost their state: what they carry is dropped, nobody
// hears a reset), while new connections work.
type holeProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	conns  map[*holeConn]bool
	done   bool
	wg     sync.WaitGroup // accept, and each connection's pipes and readers: close waits for them
}

type holeConn struct {
	a, b net.Conn
	dead bool // black-holed: everything read is dropped
}

func newHoleProxy(t *testing.T, target string) *holeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holeProxy{t: t, ln: ln, target: target, conns: map[*holeConn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *holeProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *holeProxy) accept() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			_ = a.Close()
			continue
		}
		c := &holeConn{a: a, b: b}
		p.mu.Lock()
		if p.done {
			p.mu.Unlock()
			_ = a.Close()
			_ = b.Close()
			return
		}
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Go(func() { p.pipe(c, a, b) })
		p.wg.Go(func() { p.pipe(c, b, a) })
	}
}

type holeChunk struct {
	data []byte
	err  error
}

// pipe copies from src to dst: one goroutine reads, another writes,
// holding each chunk while paused and dropping it once c is dead.
func (p *holeProxy) pipe(c *holeConn, src, dst net.Conn) {
	ch := make(chan holeChunk, 256)
	p.wg.Go(func() {
		defer close(ch)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			ch <- holeChunk{data: buf[:n], err: err}
			if err != nil {
				return
			}
		}
	})
	for k := range ch {
		p.mu.Lock()
		for p.paused && !c.dead && !p.done {
			p.cond.Wait()
		}
		drop, done := c.dead, p.done
		p.mu.Unlock()
		if done {
			_ = src.Close()
			continue // drain ch until the reader ends
		}
		if len(k.data) > 0 && !drop {
			if _, werr := dst.Write(k.data); werr != nil {
				_ = src.Close()
				continue
			}
		}
		if k.err != nil && !drop { // a black hole passes on no end either
			if tc, ok := dst.(*net.TCPConn); ok && k.err == io.EOF {
				_ = tc.CloseWrite()
			} else {
				_ = dst.Close()
			}
		}
	}
}

func (p *holeProxy) pause() {
	p.mu.Lock()
	p.paused = true
	p.mu.Unlock()
}

func (p *holeProxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// cutSilently black-holes every connection open now, for good.
func (p *holeProxy) cutSilently() {
	p.mu.Lock()
	for c := range p.conns {
		c.dead = true
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *holeProxy) close() {
	p.mu.Lock()
	p.done = true
	conns := p.conns
	p.conns = map[*holeConn]bool{}
	p.cond.Broadcast()
	p.mu.Unlock()
	_ = p.ln.Close()
	for c := range conns {
		_ = c.a.Close()
		_ = c.b.Close()
	}
	p.wg.Wait()
}
