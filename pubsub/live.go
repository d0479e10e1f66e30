package pubsub

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Headers the server adds to republished messages.
const (
	hdrStream    = "Nats-Stream"
	hdrSubject   = "Nats-Subject"
	hdrSequence  = "Nats-Sequence"
	hdrTimeStamp = "Nats-Time-Stamp"
)

const (
	// defaultLiveBuffer is LiveOptions.Buffer's default.
	defaultLiveBuffer = 65536
	// liveOutBuffer caps the Entries channel's buffer. Entries queue in the
	// subscription channel (Buffer); this smaller one only lets the
	// converting goroutine run ahead of the consumer a little.
	liveOutBuffer = 128
	// suspectCheckInterval is how often a Live looks for entries dropped
	// unannounced (see Live.checkSuspects).
	suspectCheckInterval = 100 * time.Millisecond
)

// LiveOptions configures NewLive.
type LiveOptions struct {
	// Buffer is how many live entries may wait for the consumer before
	// further ones are dropped and reported through Lost (default 65536).
	Buffer int
	// Handle, when set, is called with every live entry on the Live's own
	// goroutine, in the order Entries would carry them, and Entries carries
	// nothing (Close still closes it). It spares a consumer that only
	// applies entries a goroutine hand-off per entry: one less wake-up
	// between an event entering the log and its delivery. Entries queue
	// behind a Handle that is running, and past Buffer they are dropped and
	// reported through Lost, so it should not block for long; it must not
	// call Close, which waits for it.
	Handle func(Entry)
}

// Live delivers the live entries of chosen keys: it subscribes, through
// core NATS, to the subjects the partition streams republish every stored
// entry to (herald-live.p<k>.<key>.>), so a replica receives only the keys it
// added. Delivery is at most once: what cannot be delivered is reported
// through Lost, and the consumer re-reads those keys with ReadKey.
//
// Create one with Log.NewLive and release it with Close. Its methods are safe
// for concurrent use.
type Live struct {
	log    *Log
	in     chan *nats.Msg // shared by every subscription: no goroutine per key
	out    chan Entry
	handle func(Entry) // LiveOptions.Handle; when set, out carries nothing

	lostCh chan struct{} // capacity 1
	stop   chan struct{}
	done   chan struct{} // closed when run has returned

	closeOnce sync.Once

	mu       sync.Mutex
	closed   bool
	keys     map[string]*liveKey
	bySub    map[*nats.Subscription]*liveKey
	lost     map[string]struct{}
	lostAll  bool
	suspects map[*liveKey]struct{}
	// unconfirmed holds the keys whose partition elected a leader since
	// the last TakeUnconfirmed.
	unconfirmed map[string]struct{}
}

// liveKey is one added key.
type liveKey struct {
	key string
	sub *nats.Subscription

	// After TakeLost reported the key for dropped entries, dropBase and
	// delivBase are the subscription's dropped and delivered counts then.
	dropBase  int
	delivBase int64
}

// NewLive returns a Live with no keys. On a closed Log it returns a closed
// Live.
func (l *Log) NewLive(opts LiveOptions) *Live {
	buffer := opts.Buffer
	if buffer <= 0 {
		buffer = defaultLiveBuffer
	}
	outBuffer := min(buffer, liveOutBuffer)
	if opts.Handle != nil {
		outBuffer = 0 // Entries carries nothing
	}
	lv := &Live{
		log:      l,
		in:       make(chan *nats.Msg, buffer),
		out:      make(chan Entry, outBuffer),
		handle:   opts.Handle,
		lostCh:   make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		keys:     make(map[string]*liveKey),
		bySub:    make(map[*nats.Subscription]*liveKey),
		lost:     make(map[string]struct{}),
		suspects: make(map[*liveKey]struct{}),

		unconfirmed: make(map[string]struct{}),
	}
	go lv.run()
	if !l.lives.add(lv) {
		lv.Close()
	}
	return lv
}

// Add subscribes to key's live entries. Adding a key twice is an error.
//
// Add does not wait for the server. The subscription goes out before
// anything sent later on the connection, so the server this process is
// connected to knows of it before it sees a request made after Add (a
// ReadKey, say); other servers of a cluster learn of it over their routes.
func (lv *Live) Add(key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("live: add key: %w", err)
	}
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if lv.closed {
		return fmt.Errorf("live: add key %q: closed", key)
	}
	if _, ok := lv.keys[key]; ok {
		return fmt.Errorf("live: add key %q: already added", key)
	}
	subject := liveFilter(lv.log.PartitionOf(key), key)
	sub, err := lv.log.nc.ChanSubscribe(subject, lv.in)
	if err != nil {
		return fmt.Errorf("live: add key %q: subscribe to %q: %w", key, subject, err)
	}
	lk := &liveKey{key: key, sub: sub}
	lv.keys[key] = lk
	lv.bySub[sub] = lk
	return nil
}

// Remove unsubscribes from key's live entries; entries of key still queued
// in the subscription are dropped, but up to liveOutBuffer (128) already
// in the Entries channel, and one being handed to it or to Handle, may
// still come after Remove returns (compare Key and Seq). It is a no-op when
// key was not added.
func (lv *Live) Remove(key string) {
	lv.mu.Lock()
	lk, ok := lv.keys[key]
	if ok {
		delete(lv.keys, key)
		delete(lv.bySub, lk.sub)
		delete(lv.lost, key)
		delete(lv.suspects, lk)
	}
	lv.mu.Unlock()
	if ok {
		lv.unsubscribe(lk)
	}
}

func (lv *Live) unsubscribe(lk *liveKey) {
	if err := lk.sub.Unsubscribe(); err != nil && lv.log.nc.IsConnected() {
		lv.log.log.Debug("live: unsubscribe", "key", lk.key, "err", err)
	}
}

// Entries delivers every live entry of every added key, in the order NATS
// delivered them: Seq, Subject and Time come from the republish headers
// (Nats-Sequence, Nats-Subject, Nats-Time-Stamp), Key, Rest and Partition
// from the stored subject. Entries of one partition normally come in stream
// order (the stream leader republishes as it stores); entries of different
// partitions interleave arbitrarily. Malformed messages are dropped with a
// warning. The channel is closed after Close. With LiveOptions.Handle set it
// carries nothing: Handle gets the entries.
func (lv *Live) Entries() <-chan Entry { return lv.out }

// Lost is signalled (capacity 1) when entries may have been lost since the
// last TakeLost, or keys have become unconfirmed; call TakeLost and
// TakeUnconfirmed to learn which.
func (lv *Live) Lost() <-chan struct{} { return lv.lostCh }

// TakeLost returns, and forgets, what may have been lost since the last
// call: all is true when the NATS connection reconnected (whatever was
// published while it was down never came), and keys (sorted; nil when all is
// true) lists keys whose entries were dropped because the consumer fell
// behind by more than LiveOptions.Buffer. Re-read those keys with ReadKey
// from after the last entry applied; entries arriving meanwhile on Entries
// may overlap what ReadKey returns (compare Seq).
func (lv *Live) TakeLost() (all bool, keys []string) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	select {
	case <-lv.lostCh:
	default:
	}
	all = lv.lostAll
	if !all && len(lv.lost) > 0 {
		keys = slices.Sorted(maps.Keys(lv.lost))
	}
	// Drops up to now are covered by this report; note where they stand so
	// that checkSuspects can tell later ones.
	for lk := range lv.suspects {
		if _, taken := lv.lost[lk.key]; !taken && !all {
			continue
		}
		if d, err := lk.sub.Delivered(); err == nil {
			lk.delivBase = d
		}
		if d, err := lk.sub.Dropped(); err == nil {
			lk.dropBase = d
		}
	}
	lv.lostAll = false
	clear(lv.lost)
	return all, keys
}

// TakeUnconfirmed returns, and forgets, the added keys (sorted) whose
// partition stream elected a leader since the last call; Lost is
// signalled when there are some. Only a partition's leader republishes an
// entry, as it stores it: one stored while the leader changed (the old
// one gone before republishing it, the new one storing it as a follower)
// is never republished, and nothing else says so. Compare these keys'
// last sequences (Log.KeyLastSeq) with the last entry applied, and re-read
// those behind with ReadKey.
func (lv *Live) TakeUnconfirmed() []string {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if len(lv.unconfirmed) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(lv.unconfirmed))
	clear(lv.unconfirmed)
	return keys
}

// leaderElected marks the added keys of partition k unconfirmed.
func (lv *Live) leaderElected(k int) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if lv.closed {
		return
	}
	marked := false
	for key := range lv.keys {
		if lv.log.PartitionOf(key) == k {
			lv.unconfirmed[key] = struct{}{}
			marked = true
		}
	}
	if marked {
		lv.signal()
	}
}

// Subscriptions is the number of keys currently added.
func (lv *Live) Subscriptions() int {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	return len(lv.keys)
}

// Close unsubscribes every key, stops delivering and closes Entries. It is
// idempotent, and safe to call while the Log is closing.
func (lv *Live) Close() {
	lv.closeOnce.Do(func() {
		lv.mu.Lock()
		lv.closed = true
		subs := slices.Collect(maps.Values(lv.keys))
		clear(lv.keys)
		clear(lv.bySub)
		clear(lv.suspects)
		clear(lv.unconfirmed)
		lv.mu.Unlock()
		for _, lk := range subs {
			lv.unsubscribe(lk)
		}
		close(lv.stop)
		<-lv.done
		lv.log.lives.remove(lv)
	})
}

// run converts queued messages into entries, and sends them on out or hands
// them to handle, until Close. It is the Live's only goroutine; Close stops
// it and waits for it (and so for a handle that is running).
func (lv *Live) run() {
	defer close(lv.done)
	defer close(lv.out)
	tick := time.NewTicker(suspectCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-lv.stop:
			return
		case <-tick.C:
			lv.checkSuspects()
		case m := <-lv.in:
			e, ok := lv.entry(m)
			if !ok {
				continue
			}
			if lv.handle != nil {
				lv.handle(e)
				continue
			}
			// Keep checking while the consumer is behind: that is when
			// drops happen.
			for sent := false; !sent; {
				select {
				case lv.out <- e:
					sent = true
				case <-lv.stop:
					return
				case <-tick.C:
					lv.checkSuspects()
				}
			}
		}
	}
}

// entry converts a republished message; ok is false for messages of removed
// keys and malformed ones.
func (lv *Live) entry(m *nats.Msg) (Entry, bool) {
	lv.mu.Lock()
	lk := lv.bySub[m.Sub]
	lv.mu.Unlock()
	if lk == nil {
		return Entry{}, false // removed meanwhile
	}
	subject := m.Header.Get(hdrSubject)
	seq, serr := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	stored, terr := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTimeStamp))
	k, key, rest, ok := parsePartitionSubject(subject)
	if !ok || key != lk.key || serr != nil || seq == 0 || terr != nil {
		lv.log.log.Warn("live: dropping a malformed republished message",
			"subject", m.Subject, "key", lk.key, "stream", m.Header.Get(hdrStream),
			"stored_subject", subject, "seq", m.Header.Get(hdrSequence), "time", m.Header.Get(hdrTimeStamp))
		return Entry{}, false
	}
	return Entry{Seq: seq, Subject: subject, Key: key, Rest: rest, Partition: k, Data: m.Data, Time: stored}, true
}

// signal wakes Lost. lv.mu must be held.
func (lv *Live) signal() {
	select {
	case lv.lostCh <- struct{}{}:
	default:
	}
}

// reconnected marks everything lost.
func (lv *Live) reconnected() {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	if lv.closed {
		return
	}
	lv.lostAll = true
	lv.signal()
}

// slowConsumer marks the key of sub lost; ok is false when sub is not one of
// this Live's.
//
// nats.go reports a full channel once per episode: from the first dropped
// message until one is delivered again, further drops go unannounced. The
// key becomes a suspect so that checkSuspects finds drops TakeLost has not
// covered.
func (lv *Live) slowConsumer(sub *nats.Subscription) (key string, ok bool) {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	lk := lv.bySub[sub]
	if lk == nil {
		return "", false
	}
	lv.lost[lk.key] = struct{}{}
	lv.suspects[lk] = struct{}{}
	lv.signal()
	return lk.key, true
}

// checkSuspects looks for drops after TakeLost that nats.go did not announce
// because their slow-consumer episode had begun before. A suspect whose
// subscription has delivered a message since TakeLost (which ends the
// episode, so later drops are announced) and dropped nothing more is
// cleared.
func (lv *Live) checkSuspects() {
	lv.mu.Lock()
	defer lv.mu.Unlock()
	for lk := range lv.suspects {
		if _, pending := lv.lost[lk.key]; pending || lv.lostAll {
			continue // the report not yet taken covers it
		}
		// Delivered first: if a delivery ended the episode before this
		// read, every drop of the episode is in the Dropped read after it.
		delivered, derr := lk.sub.Delivered()
		dropped, perr := lk.sub.Dropped()
		switch {
		case derr != nil || perr != nil:
			delete(lv.suspects, lk) // unsubscribed
		case dropped > lk.dropBase:
			lv.log.log.Warn("live entries dropped: the consumer is too slow", "key", lk.key,
				"dropped_since_reported", dropped-lk.dropBase)
			lv.lost[lk.key] = struct{}{}
			lv.signal()
		case delivered > lk.delivBase:
			delete(lv.suspects, lk)
		}
	}
}

// lives is the Log's registry of open Lives, which the connection's
// handlers tell about reconnects, slow consumers and partition leader
// elections.
type lives struct {
	mu     sync.Mutex
	set    map[*Live]struct{}
	closed bool
}

// add registers lv; false once the Log is closing.
func (r *lives) add(lv *Live) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.set == nil {
		r.set = make(map[*Live]struct{})
	}
	r.set[lv] = struct{}{}
	return true
}

func (r *lives) remove(lv *Live) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.set, lv)
}

func (r *lives) snapshot() []*Live {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Keys(r.set))
}

func (r *lives) reconnected() {
	for _, lv := range r.snapshot() {
		lv.reconnected()
	}
}

// leaderElected tells every Live that partition k elected a leader.
func (r *lives) leaderElected(k int) {
	for _, lv := range r.snapshot() {
		lv.leaderElected(k)
	}
}

// slowConsumer finds the Live and key of sub.
func (r *lives) slowConsumer(sub *nats.Subscription) (key string, ok bool) {
	for _, lv := range r.snapshot() {
		if key, ok := lv.slowConsumer(sub); ok {
			return key, true
		}
	}
	return "", false
}

// closeAll closes every Live and refuses new ones.
func (r *lives) closeAll() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	for _, lv := range r.snapshot() {
		lv.Close()
	}
}
