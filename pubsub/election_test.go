package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// natsCluster is a JetStream cluster of in-process nats-servers on
// loopback, whose nodes can be stopped and started again on the same ports
// and store directories.
type natsCluster struct {
	t       *testing.T
	name    string
	clients []string // host:port for clients, per node
	routes  []string // host:port for routes, per node
	stores  []string

	mu    sync.Mutex
	nodes []*server.Server // nil while stopped
}

// startNATSCluster starts n nodes and waits until JetStream has a meta
// leader that counts all n as online peers: a leader elected before the
// last node's statistics reached it refuses to place a stream on n
// replicas ("no suitable peers for placement"). Every node still running
// is stopped at cleanup.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	c := &natsCluster{t: t, name: "election-test", nodes: make([]*server.Server, n)}
	// The stores' directory first: cleanups run last first, so the nodes
	// are stopped before it is removed, not removed under running nodes.
	stores := t.TempDir()
	t.Cleanup(func() {
		for i := range n {
			c.stop(i)
		}
	})
	// Every node's routes name every other's ports, so they are picked
	// before the nodes bind them, and a connection of a test running
	// beside this one may take one meanwhile (its source port): then the
	// node never becomes ready, and the cluster starts again on new ports.
	var err error
	for attempt := 1; attempt <= 3; attempt++ {
		c.clients, c.routes, c.stores = nil, nil, nil
		for range n {
			c.clients = append(c.clients, freeAddr(t))
			c.routes = append(c.routes, freeAddr(t))
			store, err := os.MkdirTemp(stores, "node")
			if err != nil {
				t.Fatal(err)
			}
			c.stores = append(c.stores, store)
		}
		if err = c.startAll(); err == nil {
			break
		}
		t.Logf("start the cluster (attempt %d): %v", attempt, err)
		for i := range n {
			c.stop(i)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("a JetStream meta leader with %d peers online", n), func() bool { return c.onlinePeers() == n })
	return c
}

// startAll starts every node, or says which one did not start.
func (c *natsCluster) startAll() error {
	for i := range c.nodes {
		if err := c.startNode(i); err != nil {
			return err
		}
	}
	return nil
}

// start starts node i (again), on its ports and store directory, failing
// the test if it cannot.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	if err := c.startNode(i); err != nil {
		c.t.Fatal(err)
	}
}

// startNode is start for a goroutine other than the test's.
func (c *natsCluster) startNode(i int) error {
	host, port, err := splitAddr(c.clients[i])
	if err != nil {
		return err
	}
	routeHost, routePort, err := splitAddr(c.routes[i])
	if err != nil {
		return err
	}
	var routes []*url.URL
	for _, r := range c.routes {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: r})
	}
	opts := &server.Options{
		ServerName: fmt.Sprintf("n%d", i),
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(c.stores[i], "js"),
		Cluster:    server.ClusterOpts{Name: c.name, Host: routeHost, Port: routePort},
		Routes:     routes,
		NoSigs:     true,
		NoLog:      true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("new nats server n%d: %w", i, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("nats server n%d not ready in 10s", i)
	}
	c.mu.Lock()
	c.nodes[i] = srv
	c.mu.Unlock()
	return nil
}

// stop shuts node i down and waits for it; a stopped node is left alone.
func (c *natsCluster) stop(i int) {
	c.mu.Lock()
	srv := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// loseQuorum leaves node 0 running alone, and restarted: with two of three
// nodes down no leader of anything can be elected until one is back, and a
// node that just started does not answer as a leader it was before.
func (c *natsCluster) loseQuorum() {
	c.t.Helper()
	for i := range len(c.clients) {
		c.stop(i)
	}
	c.start(0)
}

// startLater starts the nodes after d, on a goroutine whose result the
// channel returned carries: receive it before the test ends.
func (c *natsCluster) startLater(d time.Duration, nodes ...int) <-chan error {
	done := make(chan error, 1)
	go func() {
		time.Sleep(d)
		var errs []error
		for _, i := range nodes {
			errs = append(errs, c.startNode(i))
		}
		done <- errors.Join(errs...)
	}()
	return done
}

// url is node i's client URL.
func (c *natsCluster) url(i int) string { return "nats://" + c.clients[i] }

// onlinePeers is how many nodes the meta leader counts as online JetStream
// peers, or 0 while there is no leader.
func (c *natsCluster) onlinePeers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, srv := range c.nodes {
		if srv != nil && srv.JetStreamIsLeader() {
			return len(srv.JetStreamClusterPeers())
		}
	}
	return 0
}

// splitAddr splits "host:port".
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("split %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	return host, port, nil
}

// TestOpenWaitsOutALeaderElection starts a replica while its streams and
// the meta layer have no leader, and the election that gives them one
// ends only after ConnectTimeout: Open must wait it out, within
// SetupTimeout, as a replica started while a NATS node dies has to,
// instead of failing start-up on a request that went unanswered.
func TestOpenWaitsOutALeaderElection(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	opts := Options{URLs: []string{c.url(0)}, Replicas: 3, Partitions: 2, ConnectTimeout: time.Second, SetupTimeout: 60 * time.Second}
	first := openLog(t, opts)
	before := mustAppendKeyed(t, first, "room_a", "posts", "before", AppendOptions{})
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	c.loseQuorum()
	const leaderless = 3 * time.Second
	restarted := c.startLater(leaderless, 1)
	began := time.Now()
	opts.Logger = testLogger()
	l, err := Open(testCtx(t, 90*time.Second), opts)
	took := time.Since(began)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Open during the election failed after %s: %v", took.Round(time.Millisecond), err)
	}
	t.Cleanup(func() { _ = l.Close() })
	t.Logf("Open took %s (the quorum was back after %s)", took.Round(time.Millisecond), leaderless)
	if took < leaderless {
		t.Errorf("Open returned after %s, before any leader could be elected (%s)", took, leaderless)
	}
	// What was stored before is there, and the log takes new entries. Right
	// after an election a read can still fail, as chat's room loads, which
	// are retried until their timeout, allow; so it is retried here too.
	mustAppendKeyed(t, l, "room_a", "posts", "after", AppendOptions{ExpectLast: before.Seq})
	var got string
	waitFor(t, 10*time.Second, "room_a read", func() bool {
		var entries []Entry
		_, err := l.ReadKey(testCtx(t, 5*time.Second), "room_a", 1, func(e Entry) error {
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			t.Logf("ReadKey right after the election: %v", err)
			return false
		}
		got = strings.Join(datas(entries), ",")
		return true
	})
	if got != "before,after" {
		t.Errorf("room_a holds %q, want before,after", got)
	}
}

// TestOpenGivesUpOnANeverElectedLeader: with no quorum at all, Open fails
// once SetupTimeout has passed, saying which request went unanswered.
func TestOpenGivesUpOnANeverElectedLeader(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	opts := Options{URLs: []string{c.url(0)}, Replicas: 3, ConnectTimeout: time.Second, SetupTimeout: 5 * time.Second}
	first := openLog(t, opts)
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.loseQuorum()
	began := time.Now()
	opts.Logger = testLogger()
	l, err := Open(testCtx(t, 60*time.Second), opts)
	took := time.Since(began)
	if err == nil {
		_ = l.Close()
		t.Fatal("Open succeeded with one node of three")
	}
	t.Logf("Open failed after %s: %v", took.Round(time.Millisecond), err)
	if took < opts.SetupTimeout-time.Second || took > opts.SetupTimeout+5*time.Second {
		t.Errorf("Open failed after %s, want about SetupTimeout (%s)", took, opts.SetupTimeout)
	}
	if want := "query JetStream account info at " + c.url(0); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q is not the set-up's deadline", err)
	}
}

// refusingJS refuses the first refusals creates as JetStream does while its
// meta leader has not heard from a node a stream of three replicas needs,
// then creates for real.
type refusingJS struct {
	jetstream.JetStream
	refusal  *jetstream.APIError
	refusals int
	creates  *int // every create sent, refused or not
}

func (r refusingJS) CreateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // as a request on an ended context fails
	}
	*r.creates++
	if *r.creates <= r.refusals {
		return nil, r.refusal
	}
	return r.JetStream.CreateStream(ctx, cfg)
}

// TestEnsureStreamWaitsForPeers: JetStream refuses at once to place a
// stream of three replicas while its meta leader has not heard from one of
// the nodes: "peer offline" just after a cluster formed (as a CI run saw),
// "miscellaneous issue" while a node of a cluster restarted whole is not
// back (seen with an in-process cluster). Creating a stream must be sent
// again until the node reports, and, if it never does, fail at the
// set-up's deadline with the refusal in the error; any other refusal is
// returned at once.
func TestEnsureStreamWaitsForPeers(t *testing.T) {
	t.Parallel()
	refusal := func(reason string) *jetstream.APIError {
		return &jetstream.APIError{Code: 400, ErrorCode: jsErrCodeNoPeers, Description: "no suitable peers for placement, " + reason}
	}
	for _, tc := range []struct {
		name        string
		refusal     *jetstream.APIError
		refusals    int
		within      time.Duration
		wantCreates int
		wantErr     string // "" for success
	}{
		{"peer offline, then placed", refusal("peer offline"), 2, 30 * time.Second, 3, ""},
		{"node unknown, then placed", refusal("miscellaneous issue"), 1, 30 * time.Second, 2, ""},
		{"peer offline until the deadline", refusal("peer offline"), 100, 3 * time.Second, 2, "context deadline exceeded (the last answer was: nats: API error: code=400 err_code=10005 description=no suitable peers for placement, peer offline)"},
		{"no storage, returned at once", refusal("insufficient storage"), 100, 30 * time.Second, 1, "the server refused: no suitable peers for placement, insufficient storage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := openEmbedded(t, Options{})
			creates := 0
			l.js = refusingJS{JetStream: l.js, refusal: tc.refusal, refusals: tc.refusals, creates: &creates}
			want := l.opts.baseConfig()
			want.Name, want.Subjects = "WAITS_FOR_PEERS", []string{"waits-for-peers.>"}
			s, err := l.ensureStream(testCtx(t, tc.within), want, nil, func(jetstream.StreamConfig) error { return nil })
			if creates != tc.wantCreates {
				t.Errorf("%d creates sent, want %d", creates, tc.wantCreates)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ensureStream: %v", err)
			}
			if got := s.CachedInfo().Config.Name; got != want.Name {
				t.Errorf("created stream %q, want %q", got, want.Name)
			}
		})
	}
}

// TestPresenceWaitsOutALeaderElection: Presence, which a replica starts
// right after Open, waits out a leader election as Open does.
func TestPresenceWaitsOutALeaderElection(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	l := openLog(t, Options{URLs: []string{c.url(0)}, Replicas: 3, ConnectTimeout: time.Second, SetupTimeout: 60 * time.Second})
	popts := PresenceOptions{Replica: "r1", Replicas: 3}
	p, err := l.Presence(testCtx(t, 10*time.Second), popts)
	if err != nil {
		t.Fatalf("Presence: %v", err)
	}
	if err := p.Close(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("Presence.Close: %v", err)
	}

	// The buckets are kept in memory: with only two nodes back, their
	// streams, which lost every replica, stay without a leader for more
	// than a minute (nats-server 2.15), so all three come back here.
	c.loseQuorum()
	waitFor(t, 10*time.Second, "the log's connection back", l.Connected)
	const leaderless = 3 * time.Second
	restarted := c.startLater(leaderless, 1, 2)
	began := time.Now()
	p, err = l.Presence(testCtx(t, 30*time.Second), popts)
	took := time.Since(began)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatalf("Presence during the election failed after %s: %v", took.Round(time.Millisecond), err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	t.Logf("Presence took %s (the quorum was back after %s)", took.Round(time.Millisecond), leaderless)
	if took < leaderless {
		t.Errorf("Presence returned after %s, before any leader could be elected (%s)", took, leaderless)
	}
}

// TestUntilElected: what is retried, what is not, and that a refusal that
// comes at once is not resent in a loop.
func TestUntilElected(t *testing.T) {
	t.Parallel()
	unavailable := &jetstream.APIError{Code: 503, ErrorCode: jsErrCodeClusterNotAvailable, Description: "JetStream system temporarily unavailable"}
	peerOffline := &jetstream.APIError{Code: 400, ErrorCode: jsErrCodeNoPeers, Description: "no suitable peers for placement, peer offline"}
	peerUnknown := &jetstream.APIError{Code: 400, ErrorCode: jsErrCodeNoPeers, Description: "no suitable peers for placement, miscellaneous issue"}
	noResources := &jetstream.APIError{Code: 400, ErrorCode: jsErrCodeNoPeers, Description: "no suitable peers for placement, insufficient storage"}
	notFound := &jetstream.APIError{Code: 404, ErrorCode: jetstream.JSErrCodeStreamNotFound, Description: "stream not found"}
	for _, tc := range []struct {
		name      string
		answers   []error // the answer to each request in turn; the last one repeats
		within    time.Duration
		wantCalls int
		wantErr   error  // nil: success
		wantIn    string // in the error's text
	}{
		{"answered", []error{nil}, 10 * time.Second, 1, nil, ""},
		{"answered after two unanswered", []error{context.DeadlineExceeded, nats.ErrTimeout, nil}, 10 * time.Second, 3, nil, ""},
		{"answered after no meta leader", []error{unavailable, nil}, 10 * time.Second, 2, nil, ""},
		{"answered after a peer was offline", []error{peerOffline, nil}, 10 * time.Second, 2, nil, ""},
		{"answered after a peer was unknown", []error{peerUnknown, nil}, 10 * time.Second, 2, nil, ""},
		{"another error is returned at once", []error{notFound}, 10 * time.Second, 1, notFound, ""},
		{"another placement refusal is returned at once", []error{noResources}, 10 * time.Second, 1, noResources, ""},
		// Refused at once every time: one request per electionAttempt
		// (at 0 and 2s) until the context ends at 3s.
		{"refused until the end", []error{unavailable}, 3 * time.Second, 2, context.DeadlineExceeded, "temporarily unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := untilElected(testCtx(t, tc.within), testLogger(), "the test's request", func(ctx context.Context) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				answer := tc.answers[min(calls, len(tc.answers)-1)]
				calls++
				return answer
			})
			if calls != tc.wantCalls {
				t.Errorf("%d requests, want %d", calls, tc.wantCalls)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("err = %v, want success", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			case tc.wantIn != "" && !strings.Contains(err.Error(), tc.wantIn):
				t.Errorf("err = %v, want it to say %q", err, tc.wantIn)
			}
		})
	}
}

// TestReadKeyReachesWhatTheLeaderAcknowledged: a read's consumer is served
// by any replica of its stream, and one of three may not have stored yet
// the entries the leader acknowledged a moment ago (a restarted one, for
// longer, as it catches up). ReadKey still reads up to the key's last
// entry when it began: right after each append, and while a restarted
// node catches up.
func TestReadKeyReachesWhatTheLeaderAcknowledged(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	l := openLog(t, Options{URLs: []string{c.url(0)}, Replicas: 3, Partitions: 1, ConnectTimeout: time.Second, SetupTimeout: 60 * time.Second})
	var last uint64
	var slowest time.Duration
	// appendAndRead appends to room_a and reads it from that entry on,
	// reporting whether the read reached it.
	appendAndRead := func(data string) bool {
		t.Helper()
		last = mustAppendKeyed(t, l, "room_a", "posts", data, AppendOptions{ExpectLast: last}).Seq
		began := time.Now()
		got, err := l.ReadKey(testCtx(t, 10*time.Second), "room_a", last, func(Entry) error { return nil })
		if err != nil {
			t.Fatalf("ReadKey from seq %d: %v", last, err)
		}
		slowest = max(slowest, time.Since(began))
		return got == last
	}
	const healthy = 300
	short := 0
	for i := range healthy {
		if !appendAndRead(fmt.Sprint("healthy ", i)) {
			short++
		}
	}
	if short > 0 {
		t.Errorf("%d of %d reads right after an append ended before it", short, healthy)
	}

	// A node other than the partition's leader (whose loss would hold
	// appends up for an election) and the one Log is connected to misses
	// 5,000 entries, then catches up while reads go on.
	info, err := l.parts[0].Info(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("partition stream info: %v", err)
	}
	behind := 2
	if info.Cluster == nil || info.Cluster.Leader == "n2" {
		behind = 1
	}
	c.stop(behind)
	publishBulk(t, l, l.lay.partPrefix[0]+"room_b.posts", 5000)
	other, err := l.KeyLastSeq(testCtx(t, 10*time.Second), "room_b")
	if err != nil {
		t.Fatal(err)
	}
	c.start(behind)
	short, reads := 0, 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && reads < 300; reads++ {
		if !appendAndRead(fmt.Sprint("catching up ", reads)) {
			short++
		}
	}
	t.Logf("%d reads while node %d caught up; the slowest read took %s", reads, behind, slowest.Round(time.Millisecond))
	if short > 0 {
		t.Errorf("%d of %d reads while a node caught up ended before the entry appended right before", short, reads)
	}
	got, err := l.ReadKey(testCtx(t, 10*time.Second), "room_b", other, func(Entry) error { return nil })
	if err != nil || got != other {
		t.Errorf("ReadKey(room_b) from its last entry = %d, %v; want %d", got, err, other)
	}
}

// TestReadKeyAfterTheReplicasWereRaised: an operator raises the replica
// count (--stream-replicas 1 to 3) in a rolling restart. The first replica
// restarted gives the streams 3 replicas, whose two new peers catch up
// from nothing. A replica still running, which opened the log when the
// streams had one, must still read a key up to the entry it appended,
// though its read's consumer may now sit on a peer still catching up.
func TestReadKeyAfterTheReplicasWereRaised(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	old := openLog(t, Options{URLs: []string{c.url(0)}, Replicas: 1, Partitions: 1, ConnectTimeout: 5 * time.Second, SetupTimeout: 60 * time.Second})
	// Enough entries that the new peers take a while to catch up.
	publishBulk(t, old, old.lay.partPrefix[0]+"room_b.posts", 20000)
	var last uint64
	for i := range 3 {
		last = mustAppendKeyed(t, old, "room_a", "posts", fmt.Sprint("before ", i), AppendOptions{ExpectLast: last}).Seq
	}
	openLog(t, Options{URLs: []string{c.url(1)}, Replicas: 3, Partitions: 1, ConnectTimeout: 5 * time.Second, SetupTimeout: 60 * time.Second})
	short, reads := 0, 0
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline) && reads < 200; reads++ {
		last = mustAppendKeyed(t, old, "room_a", "posts", fmt.Sprint("after ", reads), AppendOptions{ExpectLast: last}).Seq
		got, err := old.ReadKey(testCtx(t, 10*time.Second), "room_a", 0, func(Entry) error { return nil })
		if err != nil {
			t.Fatalf("ReadKey: %v", err)
		}
		if got != last {
			short++
			if short <= 3 {
				t.Logf("read %d ended at %d, before %d, the entry appended right before", reads, got, last)
			}
		}
	}
	if short > 0 {
		t.Errorf("%d of %d reads by a replica opened before the replicas were raised ended before the entry it had appended right before", short, reads)
	}
}

// TestLiveTellsOfAPartitionsLeaderElection: only a partition's leader
// republishes an entry, as it stores it, so an entry stored while the
// leader changes may never reach a Live; when a partition elects a leader,
// every Live reports its keys of that partition unconfirmed (and signals
// Lost), and only those.
func TestLiveTellsOfAPartitionsLeaderElection(t *testing.T) {
	t.Parallel()
	c := startNATSCluster(t, 3)
	l := openLog(t, Options{URLs: []string{c.url(0)}, Replicas: 3, Partitions: 2, ConnectTimeout: time.Second, SetupTimeout: 60 * time.Second})
	lv := l.NewLive(LiveOptions{})
	t.Cleanup(lv.Close)
	byPartition := make([][]string, 2)
	for i := 0; len(byPartition[0]) < 2 || len(byPartition[1]) < 2; i++ {
		key := fmt.Sprintf("room_%d", i)
		if k := l.PartitionOf(key); len(byPartition[k]) < 2 {
			if err := lv.Add(key); err != nil {
				t.Fatal(err)
			}
			byPartition[k] = append(byPartition[k], key)
		}
	}
	if got := lv.TakeUnconfirmed(); got != nil {
		t.Fatalf("TakeUnconfirmed before any election = %q, want none", got)
	}
	for _, k := range []int{1, 0} {
		stream := l.lay.partStreams[k]
		msg, err := l.nc.Request(jsAPIPrefix+"STREAM.LEADER.STEPDOWN."+stream, nil, 10*time.Second)
		if err != nil || strings.Contains(string(msg.Data), `"error"`) {
			t.Fatalf("step down the leader of %s: %v %s", stream, err, msg.Data)
		}
		select {
		case <-lv.Lost():
		case <-time.After(20 * time.Second):
			t.Fatalf("Lost not signalled within 20s of %s's leader stepping down", stream)
		}
		if all, keys := lv.TakeLost(); all || keys != nil {
			t.Errorf("TakeLost = %t, %q after an election; want nothing lost", all, keys)
		}
		if got := lv.TakeUnconfirmed(); !slices.Equal(got, byPartition[k]) {
			t.Errorf("TakeUnconfirmed after %s elected a leader = %q, want its keys %q", stream, got, byPartition[k])
		}
		if got := lv.TakeUnconfirmed(); got != nil {
			t.Errorf("TakeUnconfirmed again = %q, want none", got)
		}
	}
}
