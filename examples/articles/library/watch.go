package library

import (
	"context"
	"errors"
	"sync"
)

// Ready reports whether the library has been read from the log.
func (l *Library) Ready() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready
}

// WaitReady waits until the library has been read from the log, or ctx
// ends. Queries answer from what is read so far; commands and watchers
// wait by themselves.
func (l *Library) WaitReady(ctx context.Context) error { return l.waitApplied(ctx, 0) }

// Author returns the author with id, if there is one.
func (l *Library) Author(id string) (Author, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.st.authors[id]
	return a, ok
}

// Article returns the article with id, if there is one.
func (l *Library) Article(id string) (Article, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.st.articles[id]
	return a, ok
}

// Authors returns every author in creation order.
func (l *Library) Authors() []Author {
	return collect(l, func(_ *state, c Change) (Author, bool) {
		if c.Type != AuthorCreated {
			return Author{}, false
		}
		return *c.Author, true // authors do not change
	})
}

// Articles returns the articles, of one author if authorID is not empty,
// in creation order.
func (l *Library) Articles(authorID string) []Article {
	return collect(l, func(s *state, c Change) (Article, bool) {
		if c.Type != ArticleAdded || authorID != "" && c.Article.AuthorID != authorID {
			return Article{}, false
		}
		return s.articles[c.Article.ID], true
	})
}

// collect picks values from the history, as they are now.
func collect[T any](l *Library, pick func(*state, Change) (T, bool)) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []T
	for _, c := range l.st.history {
		if v, ok := pick(&l.st, c); ok {
			out = append(out, v)
		}
	}
	return out
}

// ErrWatcherClosed is what Next returns once the watcher is closed.
var ErrWatcherClosed = errors.New("library: watcher closed")

// Watcher receives the library's changes in log order. Its mailbox is
// unbounded, so the goroutine applying the log never waits for it.
type Watcher struct {
	lib  *Library
	wake chan struct{} // capacity 1: a change may be pending

	// resumed: made after a cursor; its live changes follow startPos,
	// the library's position when it was registered. Never changed.
	resumed  bool
	startPos uint64

	mu      sync.Mutex
	pending []Change
	closed  bool
}

// Watch returns a watcher of every change applied from now on. With after,
// it first yields every change after that position (a resume's replay),
// then the live ones, with no gap and no duplicate; a position this
// replica has not reached yet (a cursor from a replica that is ahead) is
// waited for, and one past the end of the log is refused (BAD_USER_INPUT).
// Close the watcher when done.
func (l *Library) Watch(ctx context.Context, after *uint64) (*Watcher, error) {
	var from uint64
	if after != nil {
		from = *after
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := l.waitPosition(ctx, from, after != nil); err != nil {
		return nil, err
	}
	w := &Watcher{lib: l, wake: make(chan struct{}, 1), resumed: after != nil}
	l.mu.Lock()
	defer l.mu.Unlock()
	if after != nil {
		w.startPos = l.st.last
		w.push(l.st.changesAfter(from)...)
	}
	l.watchers[w] = struct{}{}
	return w, nil
}

// CaughtUp reports, for a watcher made after a cursor, whether its replay
// holds nothing that keep accepts, and then the position after which its
// live changes lie: its subscriber has everything up to there
// (eventmeta.CaughtUp). Call it before the first Next.
func (w *Watcher) CaughtUp(keep func(Change) bool) (pos uint64, ok bool) {
	if !w.resumed {
		return 0, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range w.pending {
		if c.Seq <= w.startPos && keep(c) {
			return 0, false
		}
	}
	return w.startPos, true
}

// push queues changes; the library calls it under its lock.
func (w *Watcher) push(cs ...Change) {
	if len(cs) == 0 {
		return
	}
	w.mu.Lock()
	w.pending = append(w.pending, cs...)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Next returns the next change, waiting for one until ctx ends.
func (w *Watcher) Next(ctx context.Context) (Change, error) {
	for {
		w.mu.Lock()
		if w.closed {
			w.mu.Unlock()
			return Change{}, ErrWatcherClosed
		}
		if len(w.pending) > 0 {
			c := w.pending[0]
			w.pending[0] = Change{} // let the popped change go
			w.pending = w.pending[1:]
			w.mu.Unlock()
			return c, nil
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
			return Change{}, ctx.Err()
		}
	}
}

// Close stops the watcher: the library forgets it, Next returns
// ErrWatcherClosed, a Next waiting meanwhile too.
func (w *Watcher) Close() {
	w.lib.mu.Lock()
	delete(w.lib.watchers, w)
	w.lib.mu.Unlock()
	w.mu.Lock()
	w.closed, w.pending = true, nil
	w.mu.Unlock()
	select { // wake a Next that is waiting
	case w.wake <- struct{}{}:
	default:
	}
}
