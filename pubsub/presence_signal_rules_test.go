package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// lagProxy forwards TCP between NATS clients and a NATS server, holding
// everything a client sends for lag before the server gets it, as on a
// slow uplink: a client that does not wait for the server's answer runs
// ahead of what the server knows.
type lagProxy struct {
	ln     net.Listener
	target string
	lag    time.Duration

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newLagProxy(t *testing.T, natsURL string, lag time.Duration) *lagProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lagProxy{ln: ln, target: strings.TrimPrefix(natsURL, "nats://"), lag: lag}
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

func (p *lagProxy) url() string { return "nats://" + p.ln.Addr().String() }

func (p *lagProxy) accept() {
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
		go func() { defer p.wg.Done(); defer s.Close(); p.clientToServer(c, s) }()
		go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); _ = c.Close() }()
	}
}

func (p *lagProxy) clientToServer(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			time.Sleep(p.lag)
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestPresenceSignalWatchReadyOnReturn: WatchSignals returns only once
// the NATS server knows of the watch: a signal sent through another
// connection right after it returns always arrives, even when the
// replica's own link to NATS is slower than the sender's.
func TestPresenceSignalWatchReadyOnReturn(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{newLagProxy(t, url, 50*time.Millisecond).url()}})
	p := openPresence(t, l, PresenceOptions{Replica: "a"})
	other, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	for i := range 5 {
		topic := fmt.Sprintf("room%d", i)
		got := make(chan string, 1)
		sw, err := p.WatchSignals(topic, func(m string) {
			select {
			case got <- m:
			default:
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Publish(signalPrefix+topic, []byte("alice")); err != nil {
			t.Fatal(err)
		}
		if err := other.FlushTimeout(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("watch %d: a signal sent right after WatchSignals returned never arrived", i)
		}
		sw.Close()
	}
}

// TestPresenceSignalConfirmedByServer: Signal returns nil only once the
// NATS server has the signal, within ctx: while the server's answers do
// not come through, it fails when ctx ends rather than return nil for a
// signal still in the client's buffer; once they do, it succeeds.
func TestPresenceSignalConfirmedByServer(t *testing.T) {
	url := startNATS(t, true)
	proxy := newHoldProxy(t, url)
	l := openLog(t, Options{URLs: []string{proxy.url()}})
	p := openPresence(t, l, PresenceOptions{Replica: "a"})
	proxy.hold()
	err := p.Signal(testCtx(t, time.Second), "room", "alice")
	proxy.release()
	if err == nil {
		t.Fatal("Signal returned nil though the server's answer never came: it must wait for it within ctx")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Signal with the server's answers held: %v, want its ctx's deadline", err)
	}
	if err := p.Signal(testCtx(t, 5*time.Second), "room", "alice"); err != nil {
		t.Fatalf("Signal: %v", err)
	}
}

// TestPresenceSignalRefusesLongMember: Signal refuses a member over 4096
// bytes (as Enter ignores one) and sends one of 4096.
func TestPresenceSignalRefusesLongMember(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	p := openPresence(t, l, PresenceOptions{Replica: "a"})
	got := make(chan string, 4)
	sw, err := p.WatchSignals("room", func(m string) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Close)
	if err := p.Signal(testCtx(t, 5*time.Second), "room", strings.Repeat("n", 4097)); err == nil {
		t.Error("Signal sent a member of 4097 bytes; want it refused")
	}
	fits := strings.Repeat("m", 4096)
	if err := p.Signal(testCtx(t, 5*time.Second), "room", fits); err != nil {
		t.Fatalf("Signal with a member of 4096 bytes: %v", err)
	}
	select {
	case m := <-got:
		if m != fits {
			t.Fatalf("the first signal watched has a member of %d bytes; want the one of 4096 only", len(m))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no signal")
	}
}
