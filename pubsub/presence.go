package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Presence tracks which members are present on which topics across every
// replica, on a JetStream key-value bucket whose entries expire.
//
// Each replica writes one key per topic it has members on,
// <topic>.<replica>, holding the sorted list of those members. It rewrites
// a key at most once per Coalesce when its set changed, deletes it when
// the set empties, and writes every key again each Heartbeat. The bucket's
// TTL removes the keys of a replica that stopped without cleaning up (its
// process died, its NATS connection broke) at most TTL after its last
// write, and the bucket's limit markers tell every watcher so. A watcher of
// a topic (WatchPresence) merges the keys of every replica into one set:
// a member present through several replicas counts once.
//
// Presence speaks of topics and members only; what they mean (rooms and
// users, say) is the caller's.
type Presence struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue // guarded by mu: recreate replaces it
	opts PresenceOptions
	log  *slog.Logger

	mu      sync.Mutex
	local   map[string]map[string]struct{} // topic → members present through this replica
	dirty   map[string]struct{}            // topics whose key is out of date
	written map[string]bool                // topics whose key exists (as far as this replica knows)
	kick    chan struct{}

	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// PresenceOptions configures Log.Presence.
type PresenceOptions struct {
	// Replica names this replica in keys: one NATS subject token (letters,
	// digits, '-', '_', '='), unique among the replicas at any moment.
	// Required.
	Replica string
	// Bucket is the key-value bucket; default <Stream>_PRESENCE.
	Bucket string
	// TTL is how long a key outlives its replica's last write: a replica
	// that stops without deleting its keys is gone from every watcher's
	// set within TTL. Default 6s; at least 1s.
	TTL time.Duration
	// Heartbeat is how often every key is written again; default TTL/3.
	Heartbeat time.Duration
	// Coalesce is the shortest time between two writes of one key for
	// changes of its set; default 250ms.
	Coalesce time.Duration
	// Replicas is the bucket's replica count (default 1). The bucket is
	// kept in memory: presence outlives no NATS restart, nor needs to.
	Replicas int
	// WriteTimeout bounds one write or delete; default 2s.
	WriteTimeout time.Duration
}

const (
	defaultPresenceTTL = 6 * time.Second
	defaultCoalesce    = 250 * time.Millisecond
	defaultPresenceIO  = 2 * time.Second
)

// presenceToken is what a topic or replica may be: one subject token that
// is also a valid key-value key.
var presenceToken = regexp.MustCompile(`^[A-Za-z0-9_=-]+$`)

func checkPresenceToken(what, s string) error {
	if !presenceToken.MatchString(s) {
		return fmt.Errorf("presence %s %q must be letters, digits, '-', '_' or '='", what, s)
	}
	return nil
}

// Presence creates (or updates) the presence bucket and starts this
// replica's writer. Stop it with Close, before Log.Close.
func (l *Log) Presence(ctx context.Context, opts PresenceOptions) (*Presence, error) {
	if err := checkPresenceToken("replica", opts.Replica); err != nil {
		return nil, err
	}
	if opts.Bucket == "" {
		opts.Bucket = l.opts.Stream + "_PRESENCE"
	}
	if opts.TTL == 0 {
		opts.TTL = defaultPresenceTTL
	}
	if opts.TTL < time.Second {
		return nil, fmt.Errorf("presence TTL %s: at least 1s", opts.TTL)
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = opts.TTL / 3
	}
	if opts.Heartbeat >= opts.TTL {
		return nil, fmt.Errorf("presence heartbeat %s must be shorter than the TTL %s", opts.Heartbeat, opts.TTL)
	}
	if opts.Coalesce == 0 {
		opts.Coalesce = defaultCoalesce
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = defaultPresenceIO
	}
	kv, err := createPresenceBucket(ctx, l.js, opts)
	if err != nil {
		return nil, err
	}
	p := &Presence{
		nc: l.nc, js: l.js, kv: kv, opts: opts, log: l.log,
		local: map[string]map[string]struct{}{}, dirty: map[string]struct{}{}, written: map[string]bool{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.run()
	return p, nil
}

func createPresenceBucket(ctx context.Context, js jetstream.JetStream, opts PresenceOptions) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         opts.Bucket,
		Description:    "Herald presence: <topic>.<replica> → members present through that replica",
		History:        1,
		TTL:            opts.TTL,
		LimitMarkerTTL: opts.TTL,
		Storage:        jetstream.MemoryStorage,
		Replicas:       opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create the presence bucket %s: %w", opts.Bucket, err)
	}
	return kv, nil
}

// bucketLost reports whether err says the bucket is gone: it is kept in
// memory, so a NATS server that restarted (a single one, or a cluster
// losing every replica) has lost it.
func bucketLost(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrStreamNotFound) // a watch's subscription speaks nats.go's older API
}

// recreate creates the bucket again when cause says it is gone, bounded by
// ctx, and has every key written again at the writer's next round.
func (p *Presence) recreate(ctx context.Context, cause error) {
	if !bucketLost(cause) {
		return
	}
	kv, err := createPresenceBucket(ctx, p.js, p.opts)
	if err != nil {
		p.log.Warn("presence bucket not re-created; retrying", "err", err)
		return
	}
	p.mu.Lock()
	p.kv = kv
	for topic := range p.local {
		p.dirty[topic] = struct{}{}
	}
	p.mu.Unlock()
	p.log.Info("presence bucket re-created", "bucket", p.opts.Bucket)
	p.wake()
}

// wake wakes the writer.
func (p *Presence) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Enter records member as present on topic through this replica. It only
// updates a map; the key is written by the replica's writer within
// Coalesce. Entering twice is entering once. A topic that is not a valid
// token is ignored (and logged).
func (p *Presence) Enter(topic, member string) {
	if err := checkPresenceToken("topic", topic); err != nil {
		p.log.Warn("presence ignored", "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.local[topic]
	if set == nil {
		set = map[string]struct{}{}
		p.local[topic] = set
	}
	if _, ok := set[member]; ok {
		return
	}
	set[member] = struct{}{}
	p.markLocked(topic)
}

// Leave records member as no longer present on topic through this replica.
func (p *Presence) Leave(topic, member string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := p.local[topic]
	if _, ok := set[member]; !ok {
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
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// run is the writer: it writes changed keys at most once per Coalesce and
// every key once per Heartbeat.
func (p *Presence) run() {
	defer p.wg.Done()
	heartbeat := time.NewTicker(p.opts.Heartbeat)
	defer heartbeat.Stop()
	var last time.Time
	for {
		select {
		case <-p.stop:
			return
		case <-heartbeat.C:
			p.write(true)
			last = time.Now()
			continue
		case <-p.kick:
		}
		// Coalesce: changes within Coalesce of the last write wait for the
		// window's end and go out as one write per key.
		if wait := p.opts.Coalesce - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-p.stop:
				t.Stop()
				return
			case <-t.C:
			}
		}
		p.write(false)
		last = time.Now()
	}
}

// write puts the dirty keys (every key, on a heartbeat) and deletes those
// of topics that emptied. A failed write is retried on the next round.
func (p *Presence) write(all bool) {
	type op struct {
		topic   string
		members []string // nil: delete
	}
	p.mu.Lock()
	var ops []op
	if all {
		for topic := range p.local {
			p.dirty[topic] = struct{}{}
		}
	}
	for topic := range p.dirty {
		set := p.local[topic]
		if len(set) == 0 && !p.written[topic] {
			continue
		}
		var members []string
		if len(set) > 0 {
			members = slices.Sorted(maps.Keys(set))
		}
		ops = append(ops, op{topic, members})
	}
	clear(p.dirty)
	p.mu.Unlock()

	// Puts go out pipelined (a heartbeat writes every key), deletes one by
	// one; the round waits for every acknowledgement within WriteTimeout.
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.WriteTimeout)
	defer cancel()
	type inFlight struct {
		op
		ack jetstream.PubAckFuture
	}
	var (
		flying   []inFlight
		failed   int
		firstErr error
	)
	done := func(o op, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case err != nil:
			p.dirty[o.topic] = struct{}{}
			failed++
			if firstErr == nil {
				firstErr = fmt.Errorf("write presence of %s: %w", o.topic, err)
			}
		case o.members != nil:
			p.written[o.topic] = true
		default:
			delete(p.written, o.topic)
		}
	}
	for _, o := range ops {
		if o.members == nil {
			done(o, p.remove(ctx, o.topic))
			continue
		}
		data, err := json.Marshal(o.members)
		if err != nil {
			done(o, err)
			continue
		}
		ack, err := p.js.PublishAsync(p.subject(o.topic), data)
		if err != nil {
			done(o, err)
			continue
		}
		flying = append(flying, inFlight{o, ack})
	}
	for _, f := range flying {
		select {
		case <-f.ack.Ok():
			done(f.op, nil)
		case err := <-f.ack.Err():
			done(f.op, err)
		case <-ctx.Done():
			done(f.op, ctx.Err())
		}
	}
	if firstErr != nil {
		p.log.Warn("presence not written; retrying", "keys", failed, "err", firstErr)
		rctx, rcancel := context.WithTimeout(context.Background(), p.opts.WriteTimeout)
		p.recreate(rctx, firstErr)
		rcancel()
	}
}

// subject is the subject a put of topic's key is published on.
func (p *Presence) subject(topic string) string {
	return "$KV." + p.opts.Bucket + "." + topic + "." + p.opts.Replica
}

// remove deletes topic's key.
func (p *Presence) remove(ctx context.Context, topic string) error {
	key := topic + "." + p.opts.Replica
	p.mu.Lock()
	kv := p.kv
	p.mu.Unlock()
	if err := kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete presence key %s: %w", key, err)
	}
	return nil
}

// Close stops the writer and deletes this replica's keys, bounded by ctx,
// so that watchers see its members leave at once rather than after the
// TTL. It is safe to call more than once; later calls do nothing.
func (p *Presence) Close(ctx context.Context) error {
	var err error
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.mu.Lock()
		topics := slices.Collect(maps.Keys(p.local))
		for topic := range p.written {
			if _, ok := p.local[topic]; !ok {
				topics = append(topics, topic)
			}
		}
		clear(p.local)
		kv := p.kv
		p.mu.Unlock()
		for _, topic := range topics {
			if ctx.Err() != nil {
				err = errors.Join(err, fmt.Errorf("delete presence keys: %w", ctx.Err()))
				break
			}
			key := topic + "." + p.opts.Replica
			if derr := kv.Delete(ctx, key); derr != nil {
				err = errors.Join(err, fmt.Errorf("delete presence key %s: %w", key, derr))
			}
		}
	})
	return err
}

// PresenceWatch follows one topic's members across replicas. Stop it
// with Close, or by ending the context it was started with.
type PresenceWatch struct {
	w    jetstream.KeyWatcher
	done chan struct{}
	once sync.Once
	stop chan struct{}
}

// Watch calls fn with the members present on topic through any replica
// (each once, sorted): first with those present now, then whenever the
// set changes. fn runs on the watch's goroutine, one call at a time, and
// must not block for long. The watch ends with ctx or Close.
func (p *Presence) Watch(ctx context.Context, topic string, fn func(members []string)) (*PresenceWatch, error) {
	if err := checkPresenceToken("topic", topic); err != nil {
		return nil, err
	}
	p.mu.Lock()
	kv := p.kv
	p.mu.Unlock()
	w, err := kv.Watch(ctx, topic+".*")
	if bucketLost(err) {
		p.recreate(ctx, err)
		p.mu.Lock()
		kv = p.kv
		p.mu.Unlock()
		w, err = kv.Watch(ctx, topic+".*")
	}
	if err != nil {
		return nil, fmt.Errorf("watch the presence of %s: %w", topic, err)
	}
	pw := &PresenceWatch{w: w, done: make(chan struct{}), stop: make(chan struct{})}
	go pw.run(ctx, topic, fn, p.log)
	return pw, nil
}

func (pw *PresenceWatch) run(ctx context.Context, topic string, fn func([]string), log *slog.Logger) {
	defer close(pw.done)
	defer func() { _ = pw.w.Stop() }()
	byReplica := map[string][]string{}
	var (
		last    []string
		started bool
	)
	for {
		var (
			e  jetstream.KeyValueEntry
			ok bool
		)
		select {
		case <-ctx.Done():
			return
		case <-pw.stop:
			return
		case e, ok = <-pw.w.Updates():
			if !ok {
				return
			}
		}
		if e != nil {
			replica := e.Key()[len(topic)+1:]
			switch e.Operation() {
			case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
				delete(byReplica, replica)
			default:
				var members []string
				if err := json.Unmarshal(e.Value(), &members); err != nil {
					log.Warn("presence entry ignored", "key", e.Key(), "err", err)
					continue
				}
				byReplica[replica] = members
			}
			if !started {
				continue // the initial values are not all in yet
			}
		}
		started = true
		merged := mergeMembers(byReplica)
		if last != nil && slices.Equal(merged, last) {
			continue
		}
		last = merged
		fn(slices.Clone(merged))
	}
}

// mergeMembers is the sorted union of every replica's members; never nil.
func mergeMembers(byReplica map[string][]string) []string {
	merged := []string{}
	for _, ms := range byReplica {
		merged = append(merged, ms...)
	}
	slices.Sort(merged)
	return slices.Compact(merged)
}

// Close stops the watch and waits until fn is no longer running.
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
// own. Stop it with Close.
type SignalWatch struct {
	sub  *nats.Subscription
	in   chan *nats.Msg
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// WatchSignals calls fn with the member of every signal on topic from now
// on (the NATS server knows of the watch when WatchSignals returns), one
// at a time.
func (p *Presence) WatchSignals(topic string, fn func(member string)) (*SignalWatch, error) {
	if err := checkPresenceToken("topic", topic); err != nil {
		return nil, err
	}
	sw := &SignalWatch{in: make(chan *nats.Msg, signalQueue), done: make(chan struct{})}
	sub, err := p.nc.ChanSubscribe(signalPrefix+topic, sw.in)
	if err != nil {
		return nil, fmt.Errorf("watch the signals of %q: %w", topic, err)
	}
	if err := p.nc.Flush(); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("watch the signals of %q: flush the subscription to NATS: %w", topic, err)
	}
	sw.sub = sub
	sw.wg.Add(1)
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

// Close stops the watch and waits until fn is no longer running. It is
// safe to call more than once.
func (sw *SignalWatch) Close() {
	sw.once.Do(func() {
		_ = sw.sub.Unsubscribe()
		close(sw.done)
		sw.wg.Wait()
	})
}
