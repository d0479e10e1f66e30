package server

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// natsProxy forwards TCP connections to a NATS server, as the link
// between a replica and NATS. close drops them all at once, as a
// replica's host dying would. While held,
// nothing goes from the server to the client (a publish reaches NATS and
// is stored, its acknowledgement waits), as on a congested or partitioned
// link; release lets everything through again. cut drops every connection
// and refuses new ones until restore, as a network outage would.
type natsProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cutOff bool          // connections are dropped and refused
	gate   chan struct{} // non-nil while held
	// heldPrefix: message frames with this subject prefix are kept in
	// pending (written under wmu, as every frame is).
	heldPrefix string
	pending    []pendingFrame
	wmu        sync.Mutex
	conns      []net.Conn
	done       chan struct{}
	wg         sync.WaitGroup
}

func newNATSProxy(t *testing.T, natsURL string) *natsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &natsProxy{ln: ln, target: strings.TrimPrefix(natsURL, "nats://"), done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *natsProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *natsProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		if p.cutOff {
			p.mu.Unlock()
			_ = in.Close()
			_ = out.Close()
			continue
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); _, _ = io.Copy(out, in); _ = out.Close() }()
		go func() { defer p.wg.Done(); defer in.Close(); p.serverToClient(in, out) }()
	}
}

// serverToClient copies NATS protocol frames from the server to the client:
// each frame waits while everything is held, and a message frame whose
// subject starts with the held prefix is kept back until releaseSubjects.
func (p *natsProxy) serverToClient(in, out net.Conn) {
	r := bufio.NewReaderSize(out, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		frame := line
		subject := ""
		if bytes.HasPrefix(line, []byte("MSG ")) || bytes.HasPrefix(line, []byte("HMSG ")) {
			f := strings.Fields(string(line))
			if len(f) < 3 {
				return
			}
			n, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return
			}
			payload := make([]byte, n+2)
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			frame = append(append([]byte(nil), line...), payload...)
			subject = f[1]
		}
		p.mu.Lock()
		g := p.gate
		p.mu.Unlock()
		if g != nil {
			select {
			case <-g:
			case <-p.done:
				return
			}
		}
		p.mu.Lock()
		if p.heldPrefix != "" && subject != "" && strings.HasPrefix(subject, p.heldPrefix) {
			p.pending = append(p.pending, pendingFrame{in, frame})
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		p.wmu.Lock()
		_, werr := in.Write(frame)
		p.wmu.Unlock()
		if werr != nil {
			return
		}
	}
}

type pendingFrame struct {
	to    net.Conn
	frame []byte
}

// holdSubjects keeps back, until releaseSubjects, every message delivered
// to the client whose subject starts with prefix.
func (p *natsProxy) holdSubjects(prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.heldPrefix = prefix
}

func (p *natsProxy) releaseSubjects() {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.mu.Lock()
	pending := p.pending
	p.pending, p.heldPrefix = nil, ""
	p.mu.Unlock()
	for _, f := range pending {
		_, _ = f.to.Write(f.frame)
	}
}

func (p *natsProxy) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

func (p *natsProxy) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

// cut drops every connection and refuses new ones until restore.
func (p *natsProxy) cut() {
	p.mu.Lock()
	p.cutOff = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (p *natsProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOff = false
}

func (p *natsProxy) close() {
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
