package pubsub

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// routeLink forwards TCP to its target until cut: then it closes what it
// carries and every connection it accepts after. It carries one node's
// route to another, so that a test can cut a node off the others while
// its clients stay connected to it (natsProxy sits between a client and
// a server, which cannot do that). Its target is set once the node it
// leads to listens; a connection before is closed (routes are retried).
type routeLink struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	cut    bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newRouteLink(t *testing.T) *routeLink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for a route link: %v", err)
	}
	p := &routeLink{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			cut, target := p.cut, p.target
			p.mu.Unlock()
			if cut || target == "" {
				_ = c.Close()
				continue
			}
			s, err := net.DialTimeout("tcp", target, 2*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				_, _ = c.Close(), s.Close()
				continue
			}
			p.conns = append(p.conns, c, s)
			p.wg.Add(2)
			p.mu.Unlock()
			go func() { defer p.wg.Done(); defer s.Close(); forwardChunks(c, s, nil) }()
			go func() { defer p.wg.Done(); defer c.Close(); forwardChunks(s, c, nil) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.setCut(); p.wg.Wait() })
	return p
}

func (p *routeLink) setTarget(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = addr
}

func (p *routeLink) setCut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// partitionableCluster is a 3-node cluster whose routes each go through a
// link per (dialer, target) pair, so that a node can be cut off.
type partitionableCluster struct {
	nodes   []*server.Server
	clients []string // the nodes' client URLs
	links   map[[2]int]*routeLink
}

// startPartitionableCluster starts it, every port picked by the kernel as
// it is bound (none picked ahead, which a test running beside could take).
func startPartitionableCluster(t *testing.T) *partitionableCluster {
	t.Helper()
	const n = 3
	c := &partitionableCluster{links: map[[2]int]*routeLink{}}
	for i := range n {
		for j := range n {
			if i != j {
				c.links[[2]int{i, j}] = newRouteLink(t)
			}
		}
	}
	for i := range n {
		var routes []*url.URL
		for j := range n {
			if j != i {
				routes = append(routes, &url.URL{Scheme: "nats-route", Host: c.links[[2]int{i, j}].ln.Addr().String()})
			}
		}
		srv, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
			StoreDir: filepath.Join(t.TempDir(), "js"),
			// Advertised where nothing listens: no node may route to another
			// but through the links (implicit routes would go around them).
			Cluster: server.ClusterOpts{Name: "partitionable", Host: "127.0.0.1", Port: server.RANDOM_PORT,
				NoAdvertise: true, Advertise: "127.0.0.1:1"},
			Routes: routes, NoSigs: true, NoLog: true,
		})
		if err != nil {
			t.Fatalf("new NATS node n%d: %v", i, err)
		}
		srv.Start()
		t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("NATS node n%d not ready for connections in 10 s", i)
		}
		c.nodes = append(c.nodes, srv)
		c.clients = append(c.clients, srv.ClientURL())
		for k, l := range c.links {
			if k[1] == i {
				l.setTarget(srv.ClusterAddr().String())
			}
		}
	}
	waitFor(t, 30*time.Second, "a meta leader with 3 peers", func() bool {
		for _, s := range c.nodes {
			if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
				return true
			}
		}
		return false
	})
	return c
}

// isolate cuts node i off the other nodes (its clients stay connected).
func (c *partitionableCluster) isolate(i int) {
	for k, l := range c.links {
		if k[0] == i || k[1] == i {
			l.setCut()
		}
	}
}

// TestACutOffNodeGivesNoStalePosition: a NATS node cut off from the two
// others (a network partition) finds its groups leaderless after 10 s and
// then answers a stream info request itself, with what it holds, while
// only a leader answers a message get. A replica connected to that node
// must not take the directory for behind where it is (DirectoryLastSeq
// from the info made WatchAfter refuse a valid cursor with BAD_USER_INPUT
// and LookupRoom answer "no such room"), nor pass Health again while it
// can neither read nor write (the info passed it 10 s after the cut, and a
// load balancer sent clients back to it).
func TestACutOffNodeGivesNoStalePosition(t *testing.T) {
	t.Parallel()
	c := startPartitionableCluster(t)
	var logs []*Log
	for i := range 3 {
		logs = append(logs, openLog(t, Options{URLs: []string{c.clients[i]}, Replicas: 3, Partitions: 1,
			ConnectTimeout: 5 * time.Second, SetupTimeout: 60 * time.Second}))
	}
	ctx := testCtx(t, 150*time.Second)
	stream := logs[0].lay.dirStream
	// directoryLeader waits for the directory to have a leader and says
	// which node it is.
	directoryLeader := func() int {
		t.Helper()
		leader := -1
		waitFor(t, 20*time.Second, "a directory leader", func() bool {
			for i, s := range c.nodes {
				if s.JetStreamIsStreamLeader("$G", stream) {
					leader = i
					return true
				}
			}
			return false
		})
		return leader
	}
	leader := directoryLeader()
	// add writes through the leader's node (or one it was), writing again
	// while the write goes unanswered: the directory may elect a leader
	// at any time (under load a missed heartbeat is enough), and a write
	// sent meanwhile waits out its context. Each attempt adds a key of
	// its own: an unanswered one may have been stored.
	add := func(key string) uint64 {
		t.Helper()
		var seq uint64
		attempt := 0
		waitFor(t, 40*time.Second, fmt.Sprintf("AddToDirectory(%s) through n%d", key, leader), func() bool {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			k := key
			if attempt++; attempt > 1 {
				k = fmt.Sprintf("%s_%d", key, attempt)
			}
			res, err := logs[leader].AddToDirectory(actx, k, []byte("x"))
			if err != nil {
				t.Logf("AddToDirectory(%s): %v", k, err)
				return false
			}
			seq = res.Seq
			return true
		})
		return seq
	}
	first := add("room_0")
	waitFor(t, 10*time.Second, "every node to hold the first entry", func() bool {
		for _, l := range logs {
			// A request sent while the directory elects a leader goes
			// unanswered and waits out its context: each round of the
			// poll gets its own.
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			seq, err := l.DirectoryLastSeq(rctx)
			ok := err == nil && seq >= first && l.Health(rctx) == nil
			cancel()
			if !ok {
				return false
			}
		}
		return true
	})
	// The node cut off is one that does not lead the directory: the
	// leader seen before may have changed since.
	leader = directoryLeader()
	cut := (leader + 1) % 3
	t.Logf("directory leader n%d, node cut off n%d", leader, cut)
	c.isolate(cut)
	var last uint64
	for i := 1; i <= 4; i++ {
		last = add(fmt.Sprintf("room_%d", i))
	}
	began := time.Now()
	var answers []string
	healthFailed := false
	for time.Since(began) < 20*time.Second {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		seq, derr := logs[cut].DirectoryLastSeq(rctx)
		herr := logs[cut].Health(rctx)
		_, kerr := logs[cut].KeyLastSeq(rctx, "room_0")
		cancel()
		after := time.Since(began).Round(time.Second)
		if derr == nil && seq < last {
			t.Fatalf("DirectoryLastSeq on the node cut off = %d, nil; want %d or an error: the directory holds entries up to %d (%s after the cut; answers before: %v)",
				seq, last, last, after, answers)
		}
		healthFailed = healthFailed || herr != nil
		if healthFailed && herr == nil && kerr != nil {
			t.Fatalf("Health on the cut-off replica failed, then passed %s after the cut, while a read from the leader fails (%v); answers before: %v",
				after, kerr, answers)
		}
		answers = append(answers, fmt.Sprintf("%s: seq %d %v, health %v", after, seq, derr, herr))
		time.Sleep(500 * time.Millisecond)
	}
	if !healthFailed {
		t.Errorf("Health on the cut-off replica never failed in 20 s: %v", answers)
	}
	t.Logf("answers: %v", answers)
}
