package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Presence tracks which members are present on which topics across every
// replica, on two JetStream key-value buckets kept in memory.
//
// Members: each replica writes one key per topic it has members on,
// <topic>.<replica> in the bucket <Stream>_PRESENCE, holding the sorted
// JSON list of those members. A list too long for one NATS message (over
// the server's max_payload less an eighth, at most 8 KiB less) is cut into
// N pages instead: <topic>.<replica> then holds {"gen":G,"pages":N,
// "members":[...]}, the first page, and <topic>.<replica>.<i>, for i from
// 1 to N-1, hold {"gen":G,"members":[...]}; the pages are written before
// the head that names them, and those no longer needed deleted after it
// (see presence_pages.go). It writes a topic's keys when its set changed
// (at most once per Coalesce) and deletes them when the set empties. While
// nothing changes nothing is written, however many members are present:
// the keys are rewritten only every KeyTTL/3, so that the bucket's MaxAge
// (KeyTTL) drops the keys of a replica long dead.
//
// Liveness: each replica writes one key, <replica> in
// <Stream>_PRESENCE_REPLICAS, every Heartbeat. That bucket's MaxAge (TTL)
// removes the key of a replica that stopped writing (its process died, its
// NATS connection broke), and its limit markers tell every follower. Only
// the stream's leader places a marker (none, NATS says, for a key that
// expires while there is no leader; late, after a new leader's retry), so
// a follower also takes a replica as gone once it has seen no heartbeat of
// it for TTL plus a Heartbeat. A watcher of a topic (Watch)
// merges the member keys of the replicas alive into one set, so a dead
// replica's members leave within TTL (TTL plus two heartbeats at worst); a
// member present through several replicas counts once.
//
// Presence speaks of topics and members only; what they mean (rooms and
// users, say) is the caller's.
type Presence struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts PresenceOptions
	log  *slog.Logger

	mu       sync.Mutex
	members  jetstream.KeyValue          // the members bucket; recreate replaces it
	replicas jetstream.KeyValue          // the liveness bucket; recreate replaces it
	local    map[string]map[string]int   // topic → member → how many times entered through this replica
	dirty    map[string]struct{}         // topics whose keys are out of date
	written  map[string]int              // topic → how many of its keys (head and pages) may exist
	gen      uint64                      // the generation of the last paged write
	beat     uint64                      // the revision of this replica's last heartbeat
	live     map[string]bool             // replicas whose liveness key exists, as followed
	heard    map[string]time.Time        // replica → when the follower last saw its heartbeat
	watches  map[*PresenceWatch]struct{} // told when live changes
	signals  map[*SignalWatch]struct{}   // the open ones, which Close ends
	kick     chan struct{}               // wakes the writer
	rewatch  chan struct{}               // the follower must watch the liveness bucket anew
	// rewatchSlots bounds how many PresenceWatches set up a watch anew at
	// once: after an outage every one of them does (rewatchMembers).
	rewatchSlots chan struct{}

	stop chan struct{}
	// life ends with Close, cutting a write round or a watch's set-up
	// short (Close deletes the keys after it), so that Close is bounded by
	// its own ctx. It ends under mu: Watch and WatchSignals check it under
	// mu before they register a watch, so a watch is either refused or
	// registered before Close looks for it.
	life    context.Context
	endLife context.CancelFunc
	once    sync.Once
	wg      sync.WaitGroup // the writer and the liveness follower
	// watchers counts the PresenceWatch goroutines still running; Close
	// waits for them. Watch adds to it under mu, and only while life
	// lasts.
	watchers sync.WaitGroup
}

// PresenceOptions configures Log.Presence.
type PresenceOptions struct {
	// Replica names this replica in keys: one NATS subject token (letters,
	// digits, '-', '_', '='), unique among the replicas at any moment.
	// Required.
	Replica string
	// Bucket is the members bucket; default <Stream>_PRESENCE. The liveness
	// bucket is named after it: <Bucket>_REPLICAS.
	Bucket string
	// TTL is how long a replica is taken as alive after its last heartbeat:
	// a replica that stops without deleting its keys is gone from every
	// watcher's set within TTL, or TTL plus two heartbeats when no limit
	// marker comes (see forgetSilent). Default 6s; at least 1s.
	TTL time.Duration
	// Heartbeat is how often a replica writes its liveness key; default
	// TTL/3.
	Heartbeat time.Duration
	// KeyTTL is the members bucket's MaxAge: how long the member keys of a
	// replica that died stay in the bucket (watchers ignore them from TTL
	// on). A live replica rewrites its keys every KeyTTL/3. Default 1h;
	// longer than TTL.
	KeyTTL time.Duration
	// Coalesce is the shortest time between two writes of one key for
	// changes of its set; default 250ms.
	Coalesce time.Duration
	// Replicas is the buckets' replica count (default 1). The buckets are
	// kept in memory: presence outlives no NATS restart, nor needs to.
	Replicas int
	// WriteTimeout bounds one write or delete; default 2s.
	WriteTimeout time.Duration
}

const (
	defaultPresenceTTL    = 6 * time.Second
	defaultPresenceKeyTTL = time.Hour
	defaultCoalesce       = 250 * time.Millisecond
	defaultPresenceIO     = 2 * time.Second
)

// presenceToken is what a topic or replica may be: one subject token that
// is also a valid key-value key.
var presenceToken = regexp.MustCompile(`^[A-Za-z0-9_=-]+$`)

func checkPresenceToken(what, s string) error {
	if len(s) > maxTokenBytes || !presenceToken.MatchString(s) {
		return fmt.Errorf("presence %s %s must be letters, digits, '-', '_' or '=', at most %d bytes", what, quoteShort(s), maxTokenBytes)
	}
	return nil
}

// defaultPresenceBucket is PresenceOptions.Bucket's default for a log
// whose base stream name is stream.
func defaultPresenceBucket(stream string) string { return stream + "_PRESENCE" }

// replicasBucket is the liveness bucket of the members bucket named bucket.
func replicasBucket(bucket string) string { return bucket + "_REPLICAS" }

// replicasAlive lists the replicas whose liveness key exists in the log's
// liveness bucket, as Presence with the default Bucket writes it: none
// when the bucket does not exist. A replica that died lingers until its
// key's TTL passes. Requests are repeated while a leader election leaves
// them unanswered, until ctx ends.
func (l *Log) replicasAlive(ctx context.Context) ([]string, error) {
	bucket := replicasBucket(defaultPresenceBucket(l.opts.Stream))
	var alive []string
	err := untilElected(ctx, l.log, "the look-up of the replicas alive", func(ctx context.Context) error {
		alive = nil
		kv, err := l.js.KeyValue(ctx, bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		// Not ListKeys: its watch may sit on a replica behind the bucket's
		// leader (see catchUp).
		up := map[string]bool{}
		w, err := watchCaughtUp(ctx, leaderRevision(l.nc, l.log, bucket, ">"),
			func() (jetstream.KeyWatcher, error) { return kv.WatchAll(ctx, jetstream.MetaOnly()) },
			func() { clear(up) },
			func(e jetstream.KeyValueEntry) { up[e.Key()] = e.Operation() == jetstream.KeyValuePut })
		if err != nil {
			return err
		}
		_ = w.Stop()
		for key, isUp := range up {
			if isUp {
				alive = append(alive, key)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the keys of the presence bucket %s on %s: %w", bucket, l.where, err)
	}
	slices.Sort(alive)
	return alive, nil
}

// withDefaults fills o's zero fields and checks it.
func (o PresenceOptions) withDefaults(stream string) (PresenceOptions, error) {
	if err := checkPresenceToken("replica", o.Replica); err != nil {
		return o, err
	}
	if o.Bucket == "" {
		o.Bucket = defaultPresenceBucket(stream)
	}
	if o.TTL == 0 {
		o.TTL = defaultPresenceTTL
	}
	if o.TTL < time.Second {
		return o, fmt.Errorf("presence TTL %s: at least 1s", o.TTL)
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = o.TTL / 3
	}
	if o.Heartbeat < 0 || o.Heartbeat >= o.TTL {
		return o, fmt.Errorf("presence heartbeat %s must be positive and shorter than the TTL %s", o.Heartbeat, o.TTL)
	}
	if o.KeyTTL == 0 {
		o.KeyTTL = defaultPresenceKeyTTL
	}
	if o.KeyTTL <= o.TTL {
		return o, fmt.Errorf("presence key TTL %s must be longer than the TTL %s", o.KeyTTL, o.TTL)
	}
	if o.Coalesce == 0 {
		o.Coalesce = defaultCoalesce
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = defaultPresenceIO
	}
	switch {
	case o.Coalesce < 0:
		return o, fmt.Errorf("presence coalesce window %s: must not be negative", o.Coalesce)
	case o.Replicas < 0:
		return o, fmt.Errorf("presence replicas %d: must not be negative", o.Replicas)
	case o.WriteTimeout < 0:
		return o, fmt.Errorf("presence write timeout %s: must not be negative", o.WriteTimeout)
	}
	return o, nil
}

// Presence creates (or updates) the presence buckets, announces this
// replica alive, and starts its writer and the follower of the other
// replicas' liveness; it returns once it knows which replicas are alive.
// Stop it with Close, before Log.Close.
func (l *Log) Presence(ctx context.Context, opts PresenceOptions) (*Presence, error) {
	opts, err := opts.withDefaults(l.opts.Stream)
	if err != nil {
		return nil, err
	}
	p, err := newPresence(l, opts)
	if err != nil {
		return nil, err
	}
	// Each request is repeated while a leader election leaves it
	// unanswered, as Open's are: a replica may start during one.
	err = untilElected(ctx, p.log, "the presence set-up", func(ctx context.Context) error {
		var err error
		p.members, p.replicas, err = createPresenceBuckets(ctx, l.js, opts)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := untilElected(ctx, p.log, "the presence heartbeat", p.heartbeat); err != nil {
		return nil, err
	}
	w, err := p.followFrom(ctx)
	if err != nil {
		return nil, err
	}
	p.wg.Add(2)
	go p.run()
	go p.followReplicas(w)
	return p, nil
}

// newPresence is a Presence with nothing started and no buckets yet. Its
// puts go through a JetStream client of its own, which lets go of a put
// unacknowledged after WriteTimeout: a round gives up on it then
// (awaitPresenceAcks), and nats.go would otherwise keep it pending until a
// reconnect. An unanswering bucket leader (one that lost its quorum, or
// died mid-proposal) would strand a round's puts each time, and past 4,000
// pending PublishAsync refuses every put, the bucket healthy or not.
func newPresence(l *Log, opts PresenceOptions) (*Presence, error) {
	js, err := jetstream.New(l.nc, jetstream.WithPublishAsyncTimeout(opts.WriteTimeout))
	if err != nil {
		return nil, fmt.Errorf("set up presence's JetStream client: %w", err)
	}
	life, endLife := context.WithCancel(context.Background())
	return &Presence{
		nc: l.nc, js: js, opts: opts, log: l.log, life: life, endLife: endLife,
		local: map[string]map[string]int{}, dirty: map[string]struct{}{}, written: map[string]int{},
		// A generation new to this process's writes, and (very likely) to
		// any earlier process's with the same replica name.
		gen:  uint64(time.Now().UnixNano()),
		live: map[string]bool{}, heard: map[string]time.Time{}, watches: map[*PresenceWatch]struct{}{},
		kick: make(chan struct{}, 1), rewatch: make(chan struct{}, 1), stop: make(chan struct{}),
		rewatchSlots: make(chan struct{}, rewatchConcurrency),
		signals:      map[*SignalWatch]struct{}{},
	}, nil
}

// createPresenceBuckets creates the buckets, or updates them to opts. It
// refuses to lower an existing bucket's replica count (ErrReplicasLowered):
// the buckets are every replica's, as the log's streams are.
func createPresenceBuckets(ctx context.Context, js jetstream.JetStream, opts PresenceOptions) (members, replicas jetstream.KeyValue, err error) {
	for _, bucket := range []string{opts.Bucket, replicasBucket(opts.Bucket)} {
		if err := checkBucketReplicas(ctx, js, bucket, opts.Replicas); err != nil {
			return nil, nil, err
		}
	}
	members, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      opts.Bucket,
		Description: "Herald presence: <topic>.<replica> → members present through that replica",
		History:     1,
		TTL:         opts.KeyTTL,
		Storage:     jetstream.MemoryStorage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create the presence bucket %s: %w", opts.Bucket, err)
	}
	replicas, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         replicasBucket(opts.Bucket),
		Description:    "Herald presence: the replicas alive, each key rewritten every heartbeat",
		History:        1,
		TTL:            opts.TTL,
		LimitMarkerTTL: opts.TTL,
		Storage:        jetstream.MemoryStorage,
		Replicas:       opts.Replicas,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create the presence bucket %s_REPLICAS: %w", opts.Bucket, err)
	}
	return members, replicas, nil
}

// checkBucketReplicas refuses to lower the replica count of bucket, if it
// exists, to want: compared before CreateOrUpdateKeyValue, which would
// apply any count.
func checkBucketReplicas(ctx context.Context, js jetstream.JetStream, bucket string, want int) error {
	stream := "KV_" + bucket // a bucket's stream, as JetStream names it
	s, err := js.Stream(ctx, stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("look up the presence bucket %s: %w", bucket, err)
	}
	return checkReplicasNotLowered(s.CachedInfo().Config, jetstream.StreamConfig{Name: stream, Replicas: want})
}

// bucketLost reports whether err says a bucket is gone: they are kept in
// memory, so a NATS server that restarted (a single one, or a cluster
// losing every replica) has lost them.
func bucketLost(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrStreamNotFound) // a watch's subscription speaks nats.go's older API
}

// recreate creates the buckets again when cause says one is gone, bounded
// by ctx, has every key written (or, for a topic emptied since, deleted)
// again at the writer's next round, and has the follower watch the new
// liveness bucket.
func (p *Presence) recreate(ctx context.Context, cause error) {
	if !bucketLost(cause) {
		return
	}
	members, replicas, err := createPresenceBuckets(ctx, p.js, p.opts)
	if err != nil {
		p.log.Warn("presence buckets not re-created; retrying", "err", err)
		return
	}
	p.mu.Lock()
	p.members, p.replicas = members, replicas
	p.mu.Unlock()
	p.rewriteAll()
	p.log.Info("presence buckets re-created", "bucket", p.opts.Bucket)
	if err := p.heartbeat(ctx); err != nil {
		p.log.Warn("presence heartbeat failed", "err", err)
	}
	wake(p.kick)
	wake(p.rewatch)
}

// rewriteAll has every key written (or, for a topic emptied since,
// deleted) again at the writer's next round. written is kept, not cleared:
// the error may not have meant a lost bucket (no responders also comes
// while a cluster elects the bucket's leader), and a key whose delete
// failed must still be deleted. Deleting a key the new bucket never had
// costs one marker.
func (p *Presence) rewriteAll() {
	p.mu.Lock()
	for topic := range p.local {
		p.dirty[topic] = struct{}{}
	}
	for topic := range p.written {
		p.dirty[topic] = struct{}{}
	}
	p.mu.Unlock()
}

// wake sends on a channel of capacity 1 unless a wake-up is pending.
func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Enter counts one more reason for member to be present on topic through
// this replica (a subscription, say); member is present while its count
// is above zero. It only updates a map; the key is written by the
// replica's writer within Coalesce. A topic that is not a valid token, or
// a member longer than 4096 bytes (which might not fit in a key), is
// ignored (and logged).
func (p *Presence) Enter(topic, member string) {
	if err := checkPresenceToken("topic", topic); err != nil {
		p.log.Warn("presence ignored", "err", err)
		return
	}
	if len(member) > maxNoticeBytes {
		p.log.Warn("presence ignored", "topic", topic,
			"err", fmt.Errorf("member %s of %d bytes, at most %d", quoteShort(member), len(member), maxNoticeBytes))
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.local[topic]
	if set == nil {
		set = map[string]int{}
		p.local[topic] = set
	}
	set[member]++
	if set[member] == 1 {
		p.markLocked(topic)
	}
}

// Leave undoes one Enter of member on topic; one more than it entered does
// nothing.
func (p *Presence) Leave(topic, member string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.local[topic]
	n, ok := set[member]
	if !ok {
		return
	}
	if n > 1 {
		set[member] = n - 1
		return
	}
	delete(set, member)
	if len(set) == 0 {
		delete(p.local, topic)
	}
	p.markLocked(topic)
}

func (p *Presence) markLocked(topic string) {
	p.dirty[topic] = struct{}{}
	wake(p.kick)
}

// run is the writer: it writes changed keys at most once per Coalesce,
// the liveness key every Heartbeat, and every key every KeyTTL/3.
func (p *Presence) run() {
	defer p.wg.Done()
	heartbeat := time.NewTicker(p.opts.Heartbeat)
	defer heartbeat.Stop()
	refresh := time.NewTicker(p.opts.KeyTTL / 3)
	defer refresh.Stop()
	var (
		last     time.Time
		beatLost bool // the last heartbeat failed: the others may take this replica as gone
	)
	for {
		select {
		case <-p.stop:
			return
		case <-heartbeat.C:
			wrote := false
			if beatLost && p.hasDirty() {
				// Keys that could not be written while heartbeats failed
				// (NATS away) go out first: from the heartbeat on, the
				// others take this replica as alive again, and its keys as
				// they were would show users who left meanwhile.
				if !p.waitCoalesce(last) {
					return
				}
				p.write()
				last, wrote = time.Now(), true
			}
			ctx, cancel := p.ioContext()
			err := p.heartbeat(ctx)
			beatLost = err != nil
			if err != nil && p.life.Err() == nil {
				p.log.Warn("presence heartbeat failed; retrying", "err", err)
				p.recreate(ctx, err)
			}
			cancel()
			// A key whose write failed (a timeout, the bucket's leader
			// away) is dirty still: it is retried at each heartbeat,
			// not only when something else changes; not a second time
			// in a tick whose write and heartbeat both failed (NATS
			// still away), which would only wait and warn twice.
			if wrote && beatLost || !p.hasDirty() {
				continue
			}
		case <-refresh.C:
			p.mu.Lock()
			for topic := range p.local {
				p.dirty[topic] = struct{}{}
			}
			p.mu.Unlock()
		case <-p.kick:
		}
		if !p.waitCoalesce(last) {
			return
		}
		p.write()
		last = time.Now()
	}
}

// hasDirty reports whether some topic's keys are out of date.
func (p *Presence) hasDirty() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirty) > 0
}

// waitCoalesce waits until Coalesce has passed since last, the last
// write: changes within it go out as one write per key at the window's
// end. It reports false when Close stopped the writer meanwhile.
func (p *Presence) waitCoalesce(last time.Time) bool {
	wait := p.opts.Coalesce - time.Since(last)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-p.stop:
		return false
	case <-t.C:
		return true
	}
}

// heartbeat writes this replica's liveness key. A revision not above the
// last heartbeat's says the buckets were created anew since (lost with a
// NATS restart, and re-created by another replica, so that no write here
// failed to say so): from this heartbeat on watchers take this replica as
// alive, so its keys are written again at once, and the follower watches
// the new liveness bucket, rather than when it notices the bucket's
// silence (a TTL later).
func (p *Presence) heartbeat(ctx context.Context) error {
	p.mu.Lock()
	kv := p.replicas
	p.mu.Unlock()
	rev, err := kv.Put(ctx, p.opts.Replica, []byte("alive"))
	if err != nil {
		return fmt.Errorf("write the presence heartbeat of %s: %w", p.opts.Replica, err)
	}
	p.mu.Lock()
	renewed := rev <= p.beat
	p.beat = rev
	p.mu.Unlock()
	if renewed {
		p.log.Info("presence buckets created anew: writing this replica's keys again", "bucket", p.opts.Bucket)
		p.rewriteAll()
		wake(p.kick)
		wake(p.rewatch)
	}
	return nil
}

// presenceWrite is one topic's write in a round of Presence.write.
type presenceWrite struct {
	topic   string
	members []string // sorted; nil: delete the topic's keys
	gen     uint64   // the generation of its pages, should it need pages
	had     int      // how many of its keys may exist before the write
	values  [][]byte // values[0] is the head's, values[i] page i's
	err     error    // the first step of the write that failed
}

// write puts the keys of the dirty topics and deletes those of topics that
// emptied, in three steps, each waiting for the one before: the pages
// after the first of every set written in pages, then the heads, then the
// pages no longer needed. A topic whose write failed at any step is
// retried on the next round.
func (p *Presence) write() {
	p.mu.Lock()
	var ops []*presenceWrite
	for topic := range p.dirty {
		set, had := p.local[topic], p.written[topic]
		if len(set) == 0 && had == 0 {
			continue
		}
		o := &presenceWrite{topic: topic, had: had}
		if len(set) > 0 {
			o.members = slices.Sorted(maps.Keys(set))
			p.gen++
			o.gen = p.gen
		}
		ops = append(ops, o)
	}
	clear(p.dirty)
	kv := p.members
	p.mu.Unlock()

	budget := presencePageBudget(p.nc.MaxPayload())
	for _, o := range ops {
		if o.members != nil {
			o.values = encodePresence(o.members, budget, o.gen)
		}
	}
	// Puts go out pipelined (a refresh writes every key), deletes one by
	// one; the round waits for every acknowledgement within WriteTimeout.
	ctx, cancel := p.ioContext()
	defer cancel()
	var flying []presenceAck
	for _, o := range ops {
		for page := 1; page < len(o.values); page++ {
			flying = p.put(flying, o, page)
		}
	}
	awaitPresenceAcks(ctx, flying)
	flying = flying[:0]
	for _, o := range ops {
		switch {
		case o.err != nil: // a page is missing: the head would name it
		case o.members == nil:
			// The head first: without it, the pages left count for nothing.
			o.err = p.remove(ctx, kv, o.topic, 0)
		default:
			flying = p.put(flying, o, 0)
		}
	}
	awaitPresenceAcks(ctx, flying)
	for _, o := range ops {
		for page := max(len(o.values), 1); page < o.had && o.err == nil; page++ {
			o.err = p.remove(ctx, kv, o.topic, page)
		}
	}

	var (
		failed   int
		firstErr error
	)
	p.mu.Lock()
	for _, o := range ops {
		switch {
		case o.err != nil:
			p.dirty[o.topic] = struct{}{}
			// A put whose acknowledgement did not come may have been
			// stored: should the set empty before it is retried, its keys
			// must be deleted, not skipped as never written.
			p.written[o.topic] = max(o.had, len(o.values))
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("write presence of %s: %w", o.topic, o.err)
			}
		case o.members != nil:
			p.written[o.topic] = len(o.values)
		default:
			delete(p.written, o.topic)
		}
	}
	p.mu.Unlock()
	if firstErr != nil && p.life.Err() == nil { // not cut short by Close
		p.log.Warn("presence not written; retrying", "topics", failed, "err", firstErr)
		rctx, rcancel := p.ioContext()
		p.recreate(rctx, firstErr)
		rcancel()
	}
}

// presenceAck is a put of a round waiting for its acknowledgement.
type presenceAck struct {
	o    *presenceWrite
	page int
	ack  jetstream.PubAckFuture
}

// put publishes page of o's keys, and adds it to flying; a put that
// cannot go out fails o at once.
func (p *Presence) put(flying []presenceAck, o *presenceWrite, page int) []presenceAck {
	if o.err != nil {
		return flying
	}
	ack, err := p.js.PublishAsync(p.subject(p.key(o.topic, page)), o.values[page])
	if err != nil {
		o.err = fmt.Errorf("put %s: %w", p.key(o.topic, page), err)
		return flying
	}
	return append(flying, presenceAck{o, page, ack})
}

// awaitPresenceAcks waits for every put in flying, until ctx ends, and
// fails the writes of those not acknowledged.
func awaitPresenceAcks(ctx context.Context, flying []presenceAck) {
	for _, f := range flying {
		var err error
		select {
		case <-f.ack.Ok():
		case err = <-f.ack.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil && f.o.err == nil {
			f.o.err = fmt.Errorf("put page %d: %w", f.page, err)
		}
	}
}

// key is the key of page (0: the head) of topic's members through this
// replica.
func (p *Presence) key(topic string, page int) string {
	if page == 0 {
		return topic + "." + p.opts.Replica
	}
	return topic + "." + p.opts.Replica + "." + strconv.Itoa(page)
}

// subject is the subject a put of key is published on.
func (p *Presence) subject(key string) string {
	return "$KV." + p.opts.Bucket + "." + key
}

// remove deletes page (0: the head) of topic's keys from kv.
func (p *Presence) remove(ctx context.Context, kv jetstream.KeyValue, topic string, page int) error {
	key := p.key(topic, page)
	if err := kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete presence key %s: %w", key, err)
	}
	return nil
}

// followFrom watches the liveness bucket, reads the replicas alive now
// (bounded by ctx) into live, and returns the watch for followReplicas.
func (p *Presence) followFrom(ctx context.Context) (jetstream.KeyWatcher, error) {
	p.mu.Lock()
	kv := p.replicas
	p.mu.Unlock()
	// The watch outlives ctx (followReplicas stops it); its set-up does not,
	// and is repeated while a leader election leaves it unanswered.
	start := func() (jetstream.KeyWatcher, error) {
		var w jetstream.KeyWatcher
		err := untilElected(ctx, p.log, "the watch of the replicas alive", func(setup context.Context) error {
			var err error
			w, err = startWatch(context.WithoutCancel(ctx), setup, func(wctx context.Context) (jetstream.KeyWatcher, error) {
				return kv.WatchAll(wctx)
			})
			return err
		})
		return w, err
	}
	alive := map[string]bool{}
	w, err := watchCaughtUp(ctx, leaderRevision(p.nc, p.log, replicasBucket(p.opts.Bucket), ">"), start,
		func() { clear(alive) },
		func(e jetstream.KeyValueEntry) { alive[e.Key()] = e.Operation() == jetstream.KeyValuePut })
	if err != nil {
		return nil, fmt.Errorf("watch the replicas alive: %w", err)
	}
	maps.DeleteFunc(alive, func(_ string, up bool) bool { return !up })
	now := time.Now()
	p.setLive(func(live map[string]bool) {
		clear(live)
		maps.Copy(live, alive)
		clear(p.heard)
		for replica := range alive {
			p.heard[replica] = now
		}
	})
	return w, nil
}

// followReplicas keeps live up to date from w until Close, watching anew
// when the bucket was re-created or the watch broke.
func (p *Presence) followReplicas(w jetstream.KeyWatcher) {
	defer p.wg.Done()
	for {
		again := p.follow(w)
		_ = w.Stop()
		if !again {
			return
		}
		if w = p.refollow(); w == nil {
			return // Close
		}
		// What broke this watch (the buckets lost with a NATS server, and
		// re-created by this replica or another) broke the member watches
		// too: a watch on a bucket re-created goes on from the old
		// bucket's sequence, and sees nothing until the new one passes it.
		p.rewatchMembers()
		// And this replica's keys may be gone with the old bucket: another
		// replica re-created it, so no write here failed to say so.
		p.rewriteAll()
		wake(p.kick)
	}
}

// refollow watches the liveness bucket anew, once per Heartbeat (or when
// recreate says the buckets are back) until it works; nil on Close. A
// failed attempt must not end the follower: the buckets are often still
// missing at the first (NATS back, nobody's write failed yet to re-create
// them, or NATS still down), and a follower gone would leave live as it
// was for good, every topic watch on the old bucket's sequence (no
// rewatchMembers at the next outage either), and this replica's keys
// unwritten in a bucket another replica re-created.
func (p *Presence) refollow() jetstream.KeyWatcher {
	for {
		t := time.NewTimer(p.opts.Heartbeat)
		select {
		case <-p.stop:
			t.Stop()
			return nil
		case <-p.rewatch:
			t.Stop()
		case <-t.C:
		}
		ctx, cancel := p.ioContext()
		w, err := p.followFrom(ctx)
		cancel()
		if err == nil {
			return w
		}
		if p.life.Err() != nil {
			continue // Close cut it short: the next round sees stop
		}
		p.log.Warn("presence: replicas alive not followed; retrying", "err", err)
	}
}

// rewatchMembers has every PresenceWatch watch its topic anew: each after
// a random delay of up to half a Heartbeat (one second at most), and no
// more than rewatchConcurrency at once (see PresenceWatch.run).
func (p *Presence) rewatchMembers() {
	p.mu.Lock()
	watches := slices.Collect(maps.Keys(p.watches))
	p.mu.Unlock()
	for _, pw := range watches {
		wake(pw.again)
	}
}

// follow applies w's updates to live; it returns false on Close, true
// when the watch must start again: it broke, the bucket was re-created,
// or a whole TTL passed without an update though this replica's own
// heartbeat comes every Heartbeat (a watch on a bucket that was lost).
// Every Heartbeat, it also drops the replicas not heard from for longer
// than they may be silent (see forgetSilent).
func (p *Presence) follow(w jetstream.KeyWatcher) bool {
	silent := time.NewTimer(p.opts.TTL)
	defer silent.Stop()
	sweep := time.NewTicker(p.opts.Heartbeat)
	defer sweep.Stop()
	for {
		select {
		case <-p.stop:
			return false
		case <-p.rewatch:
			return true
		case <-silent.C:
			p.log.Warn("presence: no heartbeat seen for a TTL; watching the replicas alive anew", "ttl", p.opts.TTL)
			return true
		case <-sweep.C:
			// Updates still waiting are heard first: after a stall of
			// this process, they may carry the heartbeats it missed.
			if len(w.Updates()) == 0 {
				p.forgetSilent(time.Now())
			}
		case e, ok := <-w.Updates():
			if !ok {
				return true
			}
			silent.Reset(p.opts.TTL)
			if e == nil {
				continue
			}
			up, now := e.Operation() == jetstream.KeyValuePut, time.Now()
			p.setLive(func(live map[string]bool) {
				if up {
					live[e.Key()] = true
					p.heard[e.Key()] = now
				} else {
					delete(live, e.Key())
					delete(p.heard, e.Key())
				}
			})
		}
	}
}

// forgetSilent drops from live the other replicas whose last heartbeat
// the follower saw more than TTL plus a Heartbeat before now. Their key
// has expired, but no limit marker said so (yet): only the bucket's
// stream leader places one, so none or a late one comes when the leader
// changed (a NATS node died with it). Without this, such a replica's
// members would stay present past TTL, for as long as the marker is
// missing.
func (p *Presence) forgetSilent(now time.Time) {
	limit := p.opts.TTL + p.opts.Heartbeat
	var gone []string
	p.setLive(func(live map[string]bool) {
		for replica := range live {
			if replica != p.opts.Replica && now.Sub(p.heard[replica]) > limit {
				delete(live, replica)
				delete(p.heard, replica)
				gone = append(gone, replica)
			}
		}
	})
	if len(gone) > 0 {
		p.log.Warn("presence: replicas silent for longer than the TTL allows taken as gone, though no limit marker said so",
			"replicas", gone, "silent_for", limit)
	}
}

// setLive changes live with change (under p.mu, so change may update
// heard too) and tells every watch, if live changed.
func (p *Presence) setLive(change func(map[string]bool)) {
	p.mu.Lock()
	before := maps.Clone(p.live)
	change(p.live)
	if maps.Equal(before, p.live) {
		p.mu.Unlock()
		return
	}
	watches := slices.Collect(maps.Keys(p.watches))
	p.mu.Unlock()
	for _, pw := range watches {
		wake(pw.kick)
	}
}

// aliveLocked reports whether replica's members count: it is this replica, or
// its liveness key exists.
func (p *Presence) aliveLocked(replica string) bool {
	return replica == p.opts.Replica || p.live[replica]
}

// ioContext bounds one write, delete or watch by WriteTimeout, and by Close.
func (p *Presence) ioContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.life, p.opts.WriteTimeout)
}

// Close stops the writer and the follower, ends every PresenceWatch and
// SignalWatch and waits until none of their functions is running (so no
// function of a watch may call it), and deletes this replica's keys,
// bounded by ctx, so that watchers see its members leave at once rather
// than after the TTL. It is safe to call more than once; later calls do
// nothing.
func (p *Presence) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		p.mu.Lock()
		p.endLife()
		p.mu.Unlock()
		p.wg.Wait()
		// Every PresenceWatch's goroutine sees life end by itself, at worst
		// once its function returns (run); none is added any more.
		p.watchers.Wait()
		p.closeSignalWatches()
		p.mu.Lock()
		topics := slices.Collect(maps.Keys(p.local))
		for topic := range p.written {
			if _, ok := p.local[topic]; !ok {
				topics = append(topics, topic)
			}
		}
		clear(p.local)
		keys := make(map[string]int, len(topics)) // topic → how many keys to delete
		for _, topic := range topics {
			keys[topic] = max(p.written[topic], 1)
		}
		members, replicas := p.members, p.replicas
		p.mu.Unlock()
	topics:
		for _, topic := range topics {
			// The head first: the pages count for nothing without it.
			for page := range keys[topic] {
				if ctx.Err() != nil {
					err = errors.Join(err, fmt.Errorf("delete presence keys: %w", ctx.Err()))
					break topics
				}
				err = errors.Join(err, p.remove(ctx, members, topic, page))
			}
		}
		if derr := replicas.Delete(ctx, p.opts.Replica); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete the presence heartbeat of %s: %w", p.opts.Replica, derr))
		}
		// The writer's puts made this client subscribe for their acks and
		// listen for reconnects; both would stay on the Log's connection.
		p.js.CleanupPublisher()
	})
	return err
}

// PresenceWatch follows one topic's members across replicas. Stop it
// with Close, or by ending the context it was started with; it ends with
// its Presence's Close too.
type PresenceWatch struct {
	p     *Presence
	kick  chan struct{} // the replicas alive changed
	again chan struct{} // watch anew: the buckets may have been re-created
	done  chan struct{}
	once  sync.Once
	stop  chan struct{}
}

// Watch calls fn with the members present on topic through any replica
// alive (each once, sorted): first with those present now, then whenever
// the set changes. fn runs on the watch's goroutine, one call at a time,
// and must not block for long. The watch ends with ctx, its Close or p's
// Close; both Closes wait for fn to return, so fn must call neither (end
// ctx instead), and once one has begun fn is not called again. Watch on a
// closed or closing Presence fails with ErrPresenceClosed.
func (p *Presence) Watch(ctx context.Context, topic string, fn func(members []string)) (*PresenceWatch, error) {
	if err := checkPresenceToken("topic", topic); err != nil {
		return nil, err
	}
	closed := fmt.Errorf("watch the presence of %s: %w", topic, ErrPresenceClosed)
	if p.life.Err() != nil {
		return nil, closed
	}
	w, c, err := p.watchMembers(ctx, topic)
	if bucketLost(err) && p.life.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, p.opts.WriteTimeout)
		p.recreate(rctx, err)
		cancel()
		w, c, err = p.watchMembers(ctx, topic)
	}
	if err != nil {
		if p.life.Err() != nil {
			return nil, closed // Close cut the set-up short
		}
		return nil, fmt.Errorf("watch the presence of %s: %w", topic, err)
	}
	pw := &PresenceWatch{p: p, kick: make(chan struct{}, 1), again: make(chan struct{}, 1),
		done: make(chan struct{}), stop: make(chan struct{})}
	// life is checked again under p.mu, where Close ends it: the set-up
	// above is a NATS round trip, and a Close meanwhile would otherwise
	// neither refuse this watch nor wait for its goroutine.
	p.mu.Lock()
	if p.life.Err() != nil {
		p.mu.Unlock()
		_ = w.Stop()
		return nil, closed
	}
	p.watches[pw] = struct{}{}
	p.watchers.Add(1)
	p.mu.Unlock()
	go pw.run(ctx, topic, w, c, fn)
	return pw, nil
}

// watchMembers watches topic's member keys until ctx ends or the watch is
// stopped; setting it up takes at most WriteTimeout, and ends with life:
// Close waits for every PresenceWatch, some of which may be watching anew.
// The catchUp returned says when the watch's initial values are all in.
func (p *Presence) watchMembers(ctx context.Context, topic string) (jetstream.KeyWatcher, *catchUp, error) {
	p.mu.Lock()
	kv := p.members
	p.mu.Unlock()
	setup, cancel := context.WithTimeout(ctx, p.opts.WriteTimeout)
	defer cancel()
	defer context.AfterFunc(p.life, cancel)()
	// The heads, <topic>.<replica>, and the pages, <topic>.<replica>.<i>.
	keys := topic + ".>"
	c, err := newCatchUp(setup, leaderRevision(p.nc, p.log, p.opts.Bucket, keys))
	if err != nil {
		return nil, nil, err
	}
	w, err := startWatch(ctx, setup, func(wctx context.Context) (jetstream.KeyWatcher, error) {
		return kv.Watch(wctx, keys)
	})
	return w, c, err
}

// startWatch starts a key-value watch that lasts until life ends or it is
// stopped, and whose set-up is bounded by setup. nats.go takes one context
// for both: its consumer-create request waits for an answer until that
// context ends, so a lost request (a NATS server restarting, a cluster
// electing the bucket's leader) under a context without deadline would
// never return; and a context with one would end the watch with it.
func startWatch(life, setup context.Context, start func(context.Context) (jetstream.KeyWatcher, error)) (jetstream.KeyWatcher, error) {
	wctx, cancel := context.WithCancel(life)
	stopBound := context.AfterFunc(setup, cancel)
	w, err := start(wctx)
	if !stopBound() {
		// setup ended first: the watch, if any, is being torn down.
		cancel()
		if err == nil {
			_ = w.Stop()
		}
		return nil, fmt.Errorf("no answer from JetStream in time: %w", setup.Err())
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return boundWatch{KeyWatcher: w, cancel: cancel}, nil
}

// boundWatch is a watch started by startWatch; stopping it releases its
// context.
type boundWatch struct {
	jetstream.KeyWatcher
	cancel context.CancelFunc
}

func (w boundWatch) Stop() error {
	err := w.KeyWatcher.Stop()
	w.cancel()
	return err
}

// run hands fn the merged members of topic until ctx ends, Close or p's
// Close. It watches anew when told to (rewatchMembers), after a random
// delay of up to rewatchSpread, when w breaks, retrying every Heartbeat or
// so until a watch starts (w is nil meanwhile), and when w's replica stays
// behind the bucket's leader before its initial values are all in (c, see
// catchUp) for watchLagSwitch.
func (pw *PresenceWatch) run(ctx context.Context, topic string, w jetstream.KeyWatcher, c *catchUp, fn func([]string)) {
	defer pw.p.watchers.Done() // last: p's Close waits for it
	defer close(pw.done)
	retry := time.NewTimer(time.Hour) // armed when a watch is to be (re)started
	retry.Stop()
	lag := time.NewTimer(time.Hour) // armed when w is found behind the leader
	lag.Stop()
	lagArmed := false
	defer func() {
		lag.Stop()
		retry.Stop()
		pw.p.mu.Lock()
		delete(pw.p.watches, pw)
		pw.p.mu.Unlock()
		if w != nil {
			_ = w.Stop()
		}
	}()
	keys := newPresenceAssembly()
	var (
		last    []string
		started bool
		pending bool // told to watch anew, not done yet
	)
	rewatch := func() {
		nw, nc, err := pw.p.watchMembersPaced(ctx, pw.stop, topic)
		if err != nil {
			if !pw.ending(ctx) {
				pw.p.log.Warn("presence: topic not watched; retrying", "topic", topic, "err", err)
				retry.Reset(pw.p.opts.Heartbeat + pw.p.rewatchJitter())
			}
			return
		}
		if w != nil {
			_ = w.Stop()
		}
		// The new watch's initial values replace what the old one said.
		w, c, started, pending = nw, nc, false, false
		lag.Stop()
		lagArmed = false
		keys.reset()
	}
	// initialDone reports whether w's initial values are all in, arming
	// lag while w's replica is behind.
	initialDone := func() bool {
		actx, cancel := context.WithTimeout(ctx, pw.p.opts.WriteTimeout)
		done, behind, err := c.done(actx)
		cancel()
		if err != nil {
			// Not knowing how far the leader is must not keep presence
			// from being reported: take what the watch brought.
			pw.p.log.Debug("presence: the bucket's leader did not say how far a watch must read; taking what it has", "topic", topic, "err", err)
			return true
		}
		if behind && !lagArmed {
			lagArmed = true
			lag.Reset(watchLagSwitch)
		}
		return done
	}
	for {
		var updates <-chan jetstream.KeyValueEntry
		if w != nil {
			updates = w.Updates()
		}
		select {
		case <-ctx.Done():
			return
		case <-pw.stop:
			return
		case <-pw.p.life.Done():
			return // Presence.Close: what it knows of replicas alive is no longer kept up
		case <-pw.again:
			// Every watch of this replica is told at once: spread their
			// set-ups rather than burst them on a NATS just back.
			pending = true
			retry.Reset(pw.p.rewatchJitter())
			continue
		case <-retry.C:
			if w == nil || pending {
				rewatch()
			}
			continue
		case <-lag.C:
			lagArmed = false
			if w != nil && !started {
				pw.p.log.Debug("presence: a watch's replica is behind the bucket's leader; watching anew", "topic", topic)
				rewatch()
			}
			continue
		case <-pw.kick:
			if !started {
				continue
			}
		case e, ok := <-updates:
			if !ok {
				// The watch broke: start another.
				_ = w.Stop()
				w = nil
				retry.Reset(pw.p.opts.Heartbeat + pw.p.rewatchJitter())
				continue
			}
			if !started {
				c.saw(e)
			}
			if e != nil {
				if err := keys.apply(e.Key()[len(topic)+1:], e.Operation(), e.Value()); err != nil {
					pw.p.log.Warn("presence entry ignored", "key", e.Key(), "err", err)
					continue
				}
			}
			if !started && !initialDone() {
				continue // the initial values are not all in yet
			}
			started = true
		}
		merged := pw.p.merge(keys.sets)
		if last != nil && slices.Equal(merged, last) {
			continue
		}
		// select picks at random among the cases ready: this one may have
		// been taken though the watch was ending already, and a Close
		// waiting for fn must not see it called again.
		if pw.ending(ctx) {
			return
		}
		last = merged
		fn(slices.Clone(merged))
	}
}

// stopped reports whether Close was called.
func (pw *PresenceWatch) stopped() bool {
	select {
	case <-pw.stop:
		return true
	default:
		return false
	}
}

// ending reports whether the watch is to end: ctx ended, or Close or its
// Presence's Close was called.
func (pw *PresenceWatch) ending(ctx context.Context) bool {
	return ctx.Err() != nil || pw.p.life.Err() != nil || pw.stopped()
}

// rewatchConcurrency is how many PresenceWatches of one replica may set up
// a watch anew at once.
const rewatchConcurrency = 8

// maxRewatchSpread bounds the random delay before a PresenceWatch watches
// anew when told to.
const maxRewatchSpread = time.Second

// rewatchJitter is a random delay in [0, rewatchSpread): rewatchSpread is
// half a Heartbeat, at most maxRewatchSpread.
func (p *Presence) rewatchJitter() time.Duration {
	spread := min(p.opts.Heartbeat/2, maxRewatchSpread)
	if spread <= 0 {
		return 0
	}
	return rand.N(spread)
}

// watchMembersPaced is watchMembers once one of rewatchSlots is free, or
// an error when ctx ends, stop closes or p closes first.
func (p *Presence) watchMembersPaced(ctx context.Context, stop <-chan struct{}, topic string) (jetstream.KeyWatcher, *catchUp, error) {
	select {
	case p.rewatchSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("watch the presence of %s: %w", topic, ctx.Err())
	case <-stop:
		return nil, nil, fmt.Errorf("watch the presence of %s: the watch was closed", topic)
	case <-p.life.Done():
		return nil, nil, fmt.Errorf("watch the presence of %s: %w", topic, ErrPresenceClosed)
	}
	defer func() { <-p.rewatchSlots }()
	return p.watchMembers(ctx, topic)
}

// merge is the sorted union of the members of every replica alive; never
// nil.
func (p *Presence) merge(byReplica map[string][]string) []string {
	merged := []string{}
	p.mu.Lock()
	for replica, ms := range byReplica {
		if p.aliveLocked(replica) {
			merged = append(merged, ms...)
		}
	}
	p.mu.Unlock()
	slices.Sort(merged)
	return slices.Compact(merged)
}

// Close stops the watch and waits until fn is no longer running; so fn
// must not call it. It is safe to call more than once, and during or
// after its Presence's Close.
func (pw *PresenceWatch) Close() {
	pw.once.Do(func() { close(pw.stop) })
	<-pw.done
}

// signalPrefix starts the subject of a topic's signals:
// herald-presence.<topic>. Core NATS only: a signal is not stored, and
// reaches only the replicas watching the topic's signals.
const signalPrefix = "herald-presence."

// signalQueue is how many signals may wait for a watch's function; beyond
// it NATS drops them (a slow consumer).
const signalQueue = 256

// Signal tells every watcher of topic's signals (WatchSignals), on any
// replica, that something happened to member (started typing, say). It
// returns once the NATS server has it, bounded by ctx (5s without a
// deadline). Nothing is stored: a signal is for whoever watches now.
func (p *Presence) Signal(ctx context.Context, topic, member string) error {
	if err := checkPresenceToken("topic", topic); err != nil {
		return err
	}
	if len(member) > maxNoticeBytes {
		return fmt.Errorf("signal on %q: member of %d bytes, at most %d", topic, len(member), maxNoticeBytes)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultNoticeTimeout)
		defer cancel()
	}
	if err := p.nc.Publish(signalPrefix+topic, []byte(member)); err != nil {
		return fmt.Errorf("signal on %q: %w", topic, err)
	}
	if err := p.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("signal on %q: flush to NATS: %w", topic, err)
	}
	return nil
}

// SignalWatch hands a topic's signals to a function on a goroutine of its
// own. Stop it with Close; it ends with its Presence's Close too.
type SignalWatch struct {
	p    *Presence
	sub  *nats.Subscription
	in   chan *nats.Msg
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// WatchSignals calls fn with the member of every signal on topic from now
// on (the NATS server knows of the watch when WatchSignals returns), one
// at a time, until the watch's Close or p's Close. fn must call neither:
// both wait for fn to return. WatchSignals on a closed Presence fails with
// ErrPresenceClosed.
func (p *Presence) WatchSignals(topic string, fn func(member string)) (*SignalWatch, error) {
	if err := checkPresenceToken("topic", topic); err != nil {
		return nil, err
	}
	if p.life.Err() != nil {
		return nil, fmt.Errorf("watch the signals of %q: %w", topic, ErrPresenceClosed)
	}
	sw := &SignalWatch{p: p, in: make(chan *nats.Msg, signalQueue), done: make(chan struct{})}
	sub, err := p.nc.ChanSubscribe(signalPrefix+topic, sw.in)
	if err != nil {
		return nil, fmt.Errorf("watch the signals of %q: %w", topic, err)
	}
	if err := p.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("watch the signals of %q: flush the subscription to NATS: %w", topic, err)
	}
	sw.sub = sub
	// life is checked again under p.mu: Close ends life before it collects
	// p.signals under p.mu, so it either finds this watch there or the
	// watch is refused here, never left running past Close.
	p.mu.Lock()
	if p.life.Err() != nil {
		p.mu.Unlock()
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("watch the signals of %q: %w", topic, ErrPresenceClosed)
	}
	p.signals[sw] = struct{}{}
	// Added before p.mu is let go: a Close that finds the watch from then
	// on must wait for the goroutine, not find the group empty.
	sw.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer sw.wg.Done()
		for {
			select {
			case <-sw.done:
				return
			case m := <-sw.in:
				fn(string(m.Data))
			}
		}
	}()
	return sw, nil
}

// Close stops the watch and waits until fn is no longer running; so fn
// must not call it. It is safe to call more than once, and after its
// Presence's Close, which has closed it already.
func (sw *SignalWatch) Close() {
	sw.once.Do(func() {
		// An error only says the connection is closed already (Log.Close
		// came first): then nothing reaches the subscription anyway.
		_ = sw.sub.Unsubscribe()
		close(sw.done)
		sw.wg.Wait()
		sw.p.mu.Lock()
		delete(sw.p.signals, sw)
		sw.p.mu.Unlock()
	})
}

// closeSignalWatches ends every SignalWatch of p. A PresenceWatch's
// goroutine sees p.life end by itself (Close waits for it on
// p.watchers); a SignalWatch's waits on its NATS
// subscription's channel, which nothing closes, not even Log.Close, so
// without this it would call its function after Close and outlive the Log.
// Close has ended life first, so WatchSignals adds none meanwhile.
func (p *Presence) closeSignalWatches() {
	p.mu.Lock()
	watches := slices.Collect(maps.Keys(p.signals))
	p.mu.Unlock()
	for _, sw := range watches {
		sw.Close()
	}
}
