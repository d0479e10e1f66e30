package pubsub

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// subjectLimit is the partitions' per-subject limit as this Log knows it
// (MaxMsgsPerSubject): read by Open, and read again by
// RefreshMaxMsgsPerSubject. It only rises. Another replica started with a
// higher limit raises the partitions' for everyone (Open's reconcile), and
// then stores what its limit allows; Open never lowers it under a replica
// that may be running (checkNotLowered), so a limit once known stays in
// force.
type subjectLimit struct {
	n atomic.Int64 // 0 = unlimited
	// readUpTo[k] is partition k's last sequence when its limit was last
	// read: every entry up to it was stored under that limit or a lower
	// one, so none of them can be a reason to read it again.
	readUpTo []atomic.Uint64
	mu       sync.Mutex // one read at a time: the next one usually finds it covered
}

// init records what Open left in force: limit (0 = unlimited) on every
// partition, each up to its last sequence in lastSeqs.
func (s *subjectLimit) init(limit int64, lastSeqs []uint64) {
	s.n.Store(limit)
	s.readUpTo = make([]atomic.Uint64, len(lastSeqs))
	for k, seq := range lastSeqs {
		s.readUpTo[k].Store(seq)
	}
}

// higherLimit reports whether per-subject limit a (0 = unlimited) keeps
// more than b.
func higherLimit(a, b int64) bool {
	return a != b && (a == 0 || b != 0 && a > b)
}

// RefreshMaxMsgsPerSubject reads the per-subject limit again for an entry
// of key that its reader's rules refuse under MaxMsgsPerSubject, and
// returns the limit known after (0 = unlimited). seq is where the entry is
// stored, or 0 for one about to be appended.
//
// Another replica may have raised the limit (Open does, when started with
// a higher one) and judged the entry by it. A stored entry at or before
// its partition's last position when the limit was last read was stored
// under what that read found: nothing is asked of the server then, so
// entries the rules refuse for good (forged ones) cost one read, not one
// each. Otherwise key's partition is read; if its limit is higher than the
// one known, every partition is read, and the lowest of theirs is adopted
// if higher still (an Open cut short may have raised some of them only,
// and a key judged by a limit its partition does not keep would lose
// entries). ctx bounds the requests.
func (l *Log) RefreshMaxMsgsPerSubject(ctx context.Context, key string, seq uint64) (int64, error) {
	s := &l.limit
	k := l.PartitionOf(key)
	if seq > 0 && seq <= s.readUpTo[k].Load() {
		return s.n.Load(), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > 0 && seq <= s.readUpTo[k].Load() {
		return s.n.Load(), nil // read meanwhile
	}
	found, last, err := l.readPartitionLimit(ctx, k)
	if err != nil {
		return s.n.Load(), err
	}
	if !higherLimit(found, s.n.Load()) {
		s.cover(k, last)
		return s.n.Load(), nil
	}
	limits := make([]int64, l.lay.partitions)
	lasts := make([]uint64, l.lay.partitions)
	err = forEach(l.lay.partitions, func(j int) error {
		var err error
		limits[j], lasts[j], err = l.readPartitionLimit(ctx, j)
		return err
	})
	if err != nil {
		return s.n.Load(), err
	}
	lowest := limits[0]
	for _, n := range limits[1:] {
		if higherLimit(lowest, n) {
			lowest = n
		}
	}
	if before := s.n.Load(); higherLimit(lowest, before) {
		s.n.Store(lowest)
		l.log.Info("adopted the per-subject limit another replica raised", "max_msgs_per_subject", fmtLimit(lowest),
			"was", fmtLimit(before))
	}
	for j, n := range limits {
		if !higherLimit(n, s.n.Load()) {
			s.cover(j, lasts[j])
		}
	}
	return s.n.Load(), nil
}

// cover records that partition k's entries up to seq were stored under
// the limit known, or a lower one. Only a partition whose limit is not
// higher than the one known is covered: a refused entry in one that is
// (an Open cut short) is read again. Callers hold mu.
func (s *subjectLimit) cover(k int, seq uint64) {
	if seq > s.readUpTo[k].Load() {
		s.readUpTo[k].Store(seq)
	}
}

// readPartitionLimit reads partition k's per-subject limit (0 = unlimited)
// and its last sequence.
func (l *Log) readPartitionLimit(ctx context.Context, k int) (limit int64, last uint64, err error) {
	name := l.lay.partStreams[k]
	if err := l.storeStopped("read stream " + name); err != nil {
		return 0, 0, err
	}
	// A handle of its own: Info on l.parts[k] would replace the cached
	// information others read.
	st, err := l.js.Stream(ctx, name)
	if err != nil {
		return 0, 0, fmt.Errorf("read the per-subject limit of stream %s: %w", name, err)
	}
	info := st.CachedInfo()
	return max(info.Config.MaxMsgsPerSubject, 0), info.State.LastSeq, nil
}
