package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freezingProxy forwards TCP connections to target until frozen: then it
// stops moving bytes either way but keeps every connection open, as a NATS
// server that hangs (or a network that silently drops packets) does.
type freezingProxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	gate  chan struct{} // closed while traffic may flow
	conns []net.Conn
	wg    sync.WaitGroup
}

func newFreezingProxy(t *testing.T, target string) *freezingProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezingProxy{l: l, target: target, gate: make(chan struct{})}
	close(p.gate)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Add(2)
			go p.pipe(up, c)
			go p.pipe(c, up)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *freezingProxy) addr() string { return p.l.Addr().String() }

// pipe copies from src to dst, waiting before each write while frozen.
func (p *freezingProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gate
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = dst.Close() // the other side is gone: so is this one
			return
		}
	}
}

// freeze stops all traffic; connections stay open.
func (p *freezingProxy) freeze() {
	p.mu.Lock()
	p.gate = make(chan struct{})
	p.mu.Unlock()
}

func (p *freezingProxy) close() {
	_ = p.l.Close()
	p.mu.Lock()
	select {
	case <-p.gate:
	default:
		close(p.gate)
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestStopBoundHoldsWhenNATSIsAway stops, with SIGTERM, a replica whose
// NATS server stopped answering (its connections open but silent) or is
// gone, with subscribers open (messages, presence, an event stream):
// Herald must exit within the documented bound, --drain-timeout + 2 ×
// --shutdown-timeout + 15 s (stopBound).
func TestStopBoundHoldsWhenNATSIsAway(t *testing.T) {
	const (
		drain    = time.Second
		shutdown = time.Second
		bound    = drain + 2*shutdown + 15*time.Second
	)
	tests := []struct {
		name string
		away func(*externalNATS, *freezingProxy)
	}{
		{"hangs", func(_ *externalNATS, p *freezingProxy) { p.freeze() }},
		{"gone", func(n *externalNATS, _ *freezingProxy) { n.stop() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nats := newExternalNATS(t)
			proxy := newFreezingProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(nats.port)))
			p := startProcess(t, "herald", "--data-dir", t.TempDir(), "--nats-url", "nats://"+proxy.addr(),
				"--drain-timeout", drain.String(), "--shutdown-timeout", shutdown.String())
			room := createRoom(t, p.addr, "alice", "away")
			subscribeMessages(t, p.addr, room)
			presence := subscribeMessages(t, p.addr, room)
			presence.send(map[string]any{"id": "p", "type": "subscribe", "payload": map[string]any{
				"query":     `subscription($r: ID!) { roomPresence(roomId: $r) { kind count } }`,
				"variables": map[string]any{"r": room},
			}})
			if f := presence.read(); f.ID != "p" || f.Type != "next" {
				t.Fatalf("got %+v, want the presence snapshot", f)
			}
			stream, err := http.NewRequest(http.MethodGet, "http://"+p.addr+"/graphql?query="+
				url.QueryEscape(`subscription { roomCreated { id } }`), nil)
			if err != nil {
				t.Fatal(err)
			}
			stream.Header.Set("Accept", "text/event-stream")
			resp, err := http.DefaultClient.Do(stream)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			go func() { _, _ = io.Copy(io.Discard, resp.Body) }()

			tt.away(nats, proxy)
			signalled := time.Now()
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-p.done:
				var exit *exec.ExitError
				if err != nil && !errors.As(err, &exit) {
					t.Fatalf("herald ended with %v", err)
				}
				t.Logf("exited (%v) %s after SIGTERM; bound %s", err, time.Since(signalled).Round(time.Millisecond), bound)
			case <-time.After(bound + 2*time.Second):
				t.Fatalf("herald still running %s after SIGTERM; the documented bound is %s:\n%s",
					bound+2*time.Second, bound, p.logs.String())
			}
		})
	}
}
