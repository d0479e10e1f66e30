package library

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// key is the one key of the log that holds every event of the library.
const key = "library"

const (
	// timeout bounds a command, and a resume's wait for its cursor.
	timeout = 5 * time.Second
	// readTimeout bounds one read of the log.
	readTimeout = 30 * time.Second
	// liveGrace is how long a waiter gives a live entry before asking for
	// a read of the log.
	liveGrace = 200 * time.Millisecond
	// inFlightWait bounds the wait for another replica's event that a NATS
	// cluster reported only as in flight: it may yet fail.
	inFlightWait = 50 * time.Millisecond
)

// EventLog is what the library needs of the event log; *pubsub.Log has it.
type EventLog interface {
	AppendKeyed(ctx context.Context, key, rest string, data []byte, o pubsub.AppendOptions) (pubsub.AppendResult, error)
	ReadKey(ctx context.Context, key string, fromSeq uint64, fn func(pubsub.Entry) error) (uint64, error)
	NewLive(opts pubsub.LiveOptions) *pubsub.Live
}

// Library is the library on one replica: a read model that Run keeps
// current from the log, commands that append to the log, and watchers of
// the changes.
type Library struct {
	log    EventLog
	live   *pubsub.Live
	logger *slog.Logger

	proposing chan struct{} // capacity 1: held while proposing, so this replica's commands go one at a time
	stale     chan struct{} // capacity 1: asks Run to read the log again

	mu       sync.Mutex
	st       state
	ready    bool          // the first read of the log is done
	reads    uint64        // reads of the log begun
	readEnd  uint64        // the number (among reads) of the last read that ended well
	applied  chan struct{} // closed and replaced whenever st.last, ready or readEnd moves
	watchers map[*Watcher]struct{}
}

// New returns a library over log; Run keeps it current.
func New(log EventLog, logger *slog.Logger) *Library {
	return &Library{
		log:       log,
		live:      log.NewLive(pubsub.LiveOptions{}),
		logger:    logger,
		proposing: make(chan struct{}, 1),
		stale:     make(chan struct{}, 1),
		st:        newState(),
		applied:   make(chan struct{}),
		watchers:  map[*Watcher]struct{}{},
	}
}

// Run reads the library from the log, then applies its live entries,
// reading again whenever one may have been missed, until ctx ends. It
// returns nil then, or an error if it cannot follow the log at all.
func (l *Library) Run(ctx context.Context) error {
	defer l.live.Close()
	// Subscribed before the first read: whatever is stored once the read
	// has begun is in the read or arrives live.
	if err := l.live.Add(key); err != nil {
		return fmt.Errorf("follow the library's live entries: %w", err)
	}
	stale, retry := true, (<-chan time.Time)(nil)
	// In a NATS cluster the live subscription reaches the stream's leader a
	// moment after Add: one more read catches what was stored meanwhile.
	recheck := time.After(time.Second)
	for {
		if stale && retry == nil {
			if err := l.read(ctx); err != nil {
				l.logger.Warn("reading the library failed; retrying in a second", "err", err)
				retry = time.After(time.Second)
			} else {
				stale = false
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-l.live.Entries():
			if !ok {
				return errors.New("follow the library: the event log was closed")
			}
			stale = !l.applyLive(e) || stale
		case <-l.live.Lost():
			l.live.TakeLost()
			stale = true
		case <-l.stale:
			stale = true
		case <-recheck:
			stale = true
		case <-retry:
			retry = nil
		}
	}
}

// read applies every entry after the position applied, in log order.
func (l *Library) read(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	l.mu.Lock()
	from := l.st.last + 1
	l.reads++
	n := l.reads
	l.mu.Unlock()
	_, err := l.log.ReadKey(ctx, key, from, func(e pubsub.Entry) error {
		var ev event
		err := json.Unmarshal(e.Data, &ev)
		l.mu.Lock()
		defer l.mu.Unlock()
		if e.Seq > l.st.last {
			l.applyLocked(e, ev, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the library from position %d: %w", from, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ready, l.readEnd = true, n
	l.wakeLocked()
	return nil
}

// applyLive applies a live entry that follows the position applied, and
// reports false when entries were missed before it.
func (l *Library) applyLive(e pubsub.Entry) bool {
	var ev event
	err := json.Unmarshal(e.Data, &ev)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case e.Seq <= l.st.last:
		return true // a read had it
	case err != nil || ev.Prev != l.st.last:
		return false // a read will apply it, or skip it if malformed
	}
	l.applyLocked(e, ev, nil)
	return true
}

// applyLocked folds one entry and hands the change to every watcher, under
// l.mu: a resume's replay is taken under the same lock, so it ends exactly
// where the changes handed to its watcher begin. An entry that is
// malformed or that the rules refuse is skipped, alike on every replica,
// but its position counts: the next event names it as Prev.
func (l *Library) applyLocked(e pubsub.Entry, ev event, bad error) {
	l.st.last = e.Seq
	l.wakeLocked()
	if bad == nil {
		bad = l.st.judge(&ev)
	}
	if bad != nil {
		l.logger.Warn("skipped an entry of the library", "seq", e.Seq, "err", bad)
		return
	}
	c := l.st.apply(e.Seq, e.Time, ev)
	for w := range l.watchers {
		w.push(c)
	}
}

func (l *Library) wakeLocked() {
	close(l.applied)
	l.applied = make(chan struct{})
}

// waitApplied waits until the library is read and has applied position
// seq, asking for a read of the log when a live entry is slow to come.
func (l *Library) waitApplied(ctx context.Context, seq uint64) error {
	return l.waitPosition(ctx, seq, false)
}

// waitPosition is waitApplied; for a cursor's position (cursor set), it
// also stops, with BAD_USER_INPUT, once a read of the log begun after the
// call has ended short of seq: the cursor's entry was stored before the
// call, so such a read would have reached it, and the log never held seq.
func (l *Library) waitPosition(ctx context.Context, seq uint64, cursor bool) error {
	nudge := time.NewTicker(liveGrace)
	defer nudge.Stop()
	l.mu.Lock()
	begun := l.reads
	l.mu.Unlock()
	for {
		l.mu.Lock()
		reached, wake := l.ready && l.st.last >= seq, l.applied
		pastEnd := cursor && !reached && l.readEnd > begun
		l.mu.Unlock()
		if reached {
			return nil
		}
		if pastEnd {
			return errorf(CodeBadUserInput, "after: the event log has no position %d", seq)
		}
		select {
		case <-wake:
		case <-nudge.C:
			select {
			case l.stale <- struct{}{}:
			default:
			}
		case <-ctx.Done():
			if seq == 0 {
				return errorf(CodeUnavailable, "this replica has not yet read the library from the event log; retry shortly")
			}
			return errorf(CodeUnavailable, "this replica has not yet reached position %d of the event log; retry shortly", seq)
		}
	}
}

// propose judges the event that build makes of the library as this replica
// holds it, and appends it with the library's position as the key's
// expected last sequence. If another replica's event got in first, the log
// refuses it: the replica catches up and builds and judges again. Once the
// event is stored, propose waits until this replica has applied it
// (read-your-writes) and returns its change.
func (l *Library) propose(ctx context.Context, build func(*state) (event, error)) (Change, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := l.waitApplied(ctx, 0); err != nil {
		return Change{}, err
	}
	// Waiting for this replica's other commands is bounded by ctx too: one
	// whose append hangs must not hold every later one past its deadline.
	select {
	case l.proposing <- struct{}{}:
	case <-ctx.Done():
		return Change{}, errorf(CodeUnavailable, "the library is busy with other commands; retry shortly")
	}
	defer func() { <-l.proposing }()
	for refreshed := false; ; {
		l.mu.Lock()
		ev, err := build(&l.st)
		if err == nil {
			err = l.st.judge(&ev)
		}
		ev.Prev = l.st.last
		l.mu.Unlock()
		if err != nil && !refreshed {
			// This replica may be behind the log (another replica's
			// article, or its change, not applied yet): a command is
			// refused only as the log's state refuses it.
			refreshed = true
			if l.readAfter(ctx) == nil {
				continue
			}
		}
		if err != nil {
			return Change{}, err
		}
		data, err := json.Marshal(ev)
		if err != nil {
			return Change{}, fmt.Errorf("encode a %s event: %w", ev.Type, err)
		}
		res, err := l.log.AppendKeyed(ctx, key, string(ev.Type), data, pubsub.AppendOptions{ExpectLast: ev.Prev})
		if conflict, ok := errors.AsType[*pubsub.ConflictError](err); ok {
			if err := l.catchUp(ctx, conflict.Last, ev.Prev); err != nil {
				return Change{}, err
			}
			continue
		}
		if errors.Is(err, pubsub.ErrUnreachable) {
			l.logger.Warn("appending an event failed", "type", ev.Type, "err", err)
			return Change{}, errorf(CodeUnavailable, "the event log is unavailable; retry later")
		}
		if err != nil {
			// The event may have been stored (its acknowledgement lost):
			// a retried command would be stored twice.
			l.logger.Warn("appending an event failed", "type", ev.Type, "err", err)
			return Change{}, errorf(CodeUnavailable,
				"the %s event may or may not have been stored (the event log did not confirm it); read back before repeating the command", ev.Type)
		}
		if err := l.waitApplied(ctx, res.Seq); err != nil {
			// Not "retry": a retried command would be stored twice.
			return Change{}, errorf(CodeUnavailable,
				"the %s event was stored (position %d) but this replica has not applied it yet; read it back shortly rather than repeat the command",
				ev.Type, res.Seq)
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.st.changeAt(res.Seq)
	}
}

// readAfter asks for a read of the log and waits until one begun after the
// call has ended: the library then holds every entry stored before it.
func (l *Library) readAfter(ctx context.Context) error {
	nudge := time.NewTicker(liveGrace)
	defer nudge.Stop()
	l.mu.Lock()
	begun := l.reads
	l.mu.Unlock()
	for {
		select {
		case l.stale <- struct{}{}:
		default:
		}
		l.mu.Lock()
		done, wake := l.readEnd > begun, l.applied
		l.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-wake:
		case <-nudge.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// catchUp waits after a conflict until the library has applied what the
// log stored before: up to last, when the log said, or past prev.
func (l *Library) catchUp(ctx context.Context, last, prev uint64) error {
	wait := ctx
	if last == 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, inFlightWait)
		defer cancel()
	}
	if err := l.waitApplied(wait, max(last, prev+1)); err != nil && ctx.Err() != nil {
		return errorf(CodeUnavailable, "the library is busy; retry shortly")
	}
	return nil
}

// CreateAuthor stores a new author.
func (l *Library) CreateAuthor(ctx context.Context, firstName, lastName string) (Author, error) {
	if err := firstError(checkNotBlank("firstName", firstName), checkNotBlank("lastName", lastName)); err != nil {
		return Author{}, err
	}
	ev := event{Type: AuthorCreated, ID: newID("au"), FirstName: firstName, LastName: lastName}
	c, err := l.propose(ctx, func(*state) (event, error) { return ev, nil })
	if err != nil {
		return Author{}, err
	}
	return *c.Author, nil
}

// AddArticle stores a new article by an existing author.
func (l *Library) AddArticle(ctx context.Context, authorID, title, text string) (Article, error) {
	if err := checkNotBlank("title", title); err != nil {
		return Article{}, err
	}
	ev := event{Type: ArticleAdded, ID: newID("ar"), AuthorID: authorID, Title: title, Text: text, Version: 1}
	c, err := l.propose(ctx, func(*state) (event, error) { return ev, nil })
	if err != nil {
		return Article{}, err
	}
	return *c.Article, nil
}

// ChangeArticleText replaces an article's text; with version, only if the
// article is still at that version.
func (l *Library) ChangeArticleText(ctx context.Context, id, text string, version *int) (Article, error) {
	c, err := l.propose(ctx, func(s *state) (event, error) {
		a, ok := s.articles[id]
		switch {
		case !ok:
			return event{}, errorf(CodeNotFound, "article %q does not exist", id)
		case version != nil && *version != a.Version:
			return event{}, errorf(CodeConflict, "article %q is at version %d, not %d", id, a.Version, *version)
		}
		return event{Type: ArticleTextChanged, ID: id, Text: text, Version: a.Version + 1}, nil
	})
	if err != nil {
		return Article{}, err
	}
	return *c.Article, nil
}

// checkNotBlank refuses a name or title of white space alone. It is
// checked when a command is given, not in judge: events already in a log
// were judged without it, and every replica must keep judging them alike.
func checkNotBlank(field, value string) error {
	if value != "" && strings.TrimSpace(value) == "" {
		return errorf(CodeBadUserInput, "%s must not be blank", field)
	}
	return nil
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return prefix + idEncoding.EncodeToString(b[:])
}
