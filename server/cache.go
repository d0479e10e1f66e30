package server

import (
	"container/list"
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// boundedCache is a least-recently-used graphql.Cache bounded both by its
// number of entries and by the bytes they hold, as weigh estimates them.
// gqlgen's lru counts entries only: a thousand documents of a megabyte
// each, sent once, would be kept for good.
type boundedCache[T any] struct {
	maxEntries int
	maxBytes   int
	weigh      func(key string, value T) int

	mu    sync.Mutex
	bytes int
	order *list.List // of *cacheEntry[T], the most recently used first
	index map[string]*list.Element
}

type cacheEntry[T any] struct {
	key    string
	value  T
	weight int
}

var _ graphql.Cache[string] = (*boundedCache[string])(nil)

func newBoundedCache[T any](maxEntries, maxBytes int, weigh func(string, T) int) *boundedCache[T] {
	return &boundedCache[T]{
		maxEntries: maxEntries,
		maxBytes:   maxBytes,
		weigh:      weigh,
		order:      list.New(),
		index:      map[string]*list.Element{},
	}
}

// Get returns the value cached under key, if any, and marks it used.
func (c *boundedCache[T]) Get(_ context.Context, key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.index[key]
	if !ok {
		var zero T
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry[T]).value, true
}

// Add caches value under key, evicting the least recently used entries
// until both bounds hold. A value heavier than the whole budget is not
// cached.
func (c *boundedCache[T]) Add(_ context.Context, key string, value T) {
	w := c.weigh(key, value)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.index[key]; ok {
		c.remove(el)
	}
	if w > c.maxBytes {
		return
	}
	c.index[key] = c.order.PushFront(&cacheEntry[T]{key: key, value: value, weight: w})
	c.bytes += w
	for c.order.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.remove(c.order.Back())
	}
}

func (c *boundedCache[T]) remove(el *list.Element) {
	e := c.order.Remove(el).(*cacheEntry[T])
	delete(c.index, e.key)
	c.bytes -= e.weight
}

// len is the number of entries cached.
func (c *boundedCache[T]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

const (
	// documentBytesPerQueryByte estimates what a parsed document holds per
	// byte of its text: about 24 for text made of one-letter fields, the
	// densest (an 868 KB document held about 20 MB).
	documentBytesPerQueryByte = 24
	// queryCacheBytesPerEntry is the parsed documents' budget per entry of
	// Options.QueryCacheSize: 64 KiB, which a document of 2.7 KB of text
	// takes, well above the few hundred bytes to few kilobytes of the
	// documents applications send.
	queryCacheBytesPerEntry = 64 << 10
	// apqCacheBytesPerEntry is the persisted queries' budget of text per
	// entry of Options.APQCacheSize.
	apqCacheBytesPerEntry = 8 << 10
)

// newQueryCache is the cache of parsed and validated documents.
func newQueryCache(entries int) *boundedCache[*ast.QueryDocument] {
	return newBoundedCache(entries, entries*queryCacheBytesPerEntry, func(query string, _ *ast.QueryDocument) int {
		return len(query) * documentBytesPerQueryByte
	})
}

// newAPQCache is the cache of automatic persisted queries, by hash.
func newAPQCache(entries int) *boundedCache[string] {
	return newBoundedCache(entries, entries*apqCacheBytesPerEntry, func(hash, query string) int {
		return len(hash) + len(query)
	})
}
