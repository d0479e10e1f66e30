package pubsub

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// A replica's members on a topic are one key, <topic>.<replica>, holding
// their sorted JSON list, while that list fits in one page (see
// presencePageBudget): the layout every version of Herald reads. A longer
// list cannot be one NATS message; it is cut, in order, into N pages:
//
//	<topic>.<replica>      {"gen":G,"pages":N,"members":[...]}  the head: page 0
//	<topic>.<replica>.<i>  {"gen":G,"members":[...]}            page i, 1 ≤ i < N
//
// G is new at every write of the topic's keys. The writer puts pages 1 to
// N-1 first, and the head only once they are stored: a watcher takes the
// pages as the replica's set when the head names N pages and it holds each
// of pages 1 to N-1 with the head's G; until then it keeps the whole set it
// had (presenceAssembly.assemble), so that a set half written (new pages,
// the old head; or a head whose pages are not all in) is never shown as
// members leaving. Pages from N on, left by a longer list, are deleted
// after the head; a plain list as the head means no pages, whatever pages
// are still stored. Deleting a topic's keys deletes the head first.
//
// Replicas of versions before the pages watch <topic>.* only, so never
// see a page; they read a paged head as an entry they cannot decode, log
// it and keep what they had of that replica (nothing, for a watch started
// since): a set that no longer fits in a message could not be written at
// all by those versions. Every set that fits in one page is written as
// before.

// presenceHeadroomMax bounds the headroom presencePageBudget leaves below
// max_payload: headers, the subject, and the page's envelope.
const presenceHeadroomMax = 8 << 10

// presenceEnvelope is at most the bytes of a page besides its members:
// {"gen":<20 digits>,"pages":<19 digits>,"members":[]}.
const presenceEnvelope = 80

// defaultMaxPayload is NATS's default max_payload, taken when the
// connection does not know its server's (it never connected).
const defaultMaxPayload = 1 << 20

// presencePageBudget is how many bytes one member key may hold on a
// connection whose server takes messages of up to maxPayload bytes: an
// eighth less, or 8 KiB less when that is smaller.
func presencePageBudget(maxPayload int64) int {
	if maxPayload <= 0 {
		maxPayload = defaultMaxPayload
	}
	return int(maxPayload - min(maxPayload/8, presenceHeadroomMax))
}

// presenceHead is a paged head.
type presenceHead struct {
	Gen     uint64   `json:"gen"`
	Pages   int      `json:"pages"`
	Members []string `json:"members"`
}

// presencePage is page 1 or later of a paged set.
type presencePage struct {
	Gen     uint64   `json:"gen"`
	Members []string `json:"members"`
}

// encodePresence returns the values of a replica's keys for members
// (sorted, not empty) within budget bytes each: values[0] is the head's, a
// plain JSON list when the whole list fits, else page 0 of the pages
// generation gen; values[i] is page i's. A member too long for a page of
// its own still gets one (which NATS will refuse).
func encodePresence(members []string, budget int, gen uint64) [][]byte {
	list, _ := json.Marshal(members) // a []string always encodes
	if len(list) <= budget {
		return [][]byte{list}
	}
	enc := make([][]byte, len(members))
	for i, m := range members {
		enc[i], _ = json.Marshal(m)
	}
	var starts []int // the first member of each page
	size := budget + 1
	for i, e := range enc {
		if size+len(e)+1 > budget {
			starts = append(starts, i)
			size = presenceEnvelope
		}
		size += len(e) + 1
	}
	values := make([][]byte, len(starts))
	for page, lo := range starts {
		hi := len(enc)
		if page+1 < len(starts) {
			hi = starts[page+1]
		}
		b := make([]byte, 0, budget)
		b = append(b, `{"gen":`...)
		b = strconv.AppendUint(b, gen, 10)
		if page == 0 {
			b = append(b, `,"pages":`...)
			b = strconv.AppendInt(b, int64(len(starts)), 10)
		}
		b = append(b, `,"members":[`...)
		for i := lo; i < hi; i++ {
			if i > lo {
				b = append(b, ',')
			}
			b = append(b, enc[i]...)
		}
		values[page] = append(b, "]}"...)
	}
	return values
}

// presenceKeys is what a watch holds of one replica's keys on its topic.
type presenceKeys struct {
	hasHead bool
	head    []string // the head's members: page 0's
	gen     uint64   // the head's generation, when paged
	pages   int      // how many pages the head names: 1 for a plain list
	extra   map[int]presencePage

	hasWhole bool
	whole    []string // the last whole set assembled
}

// presenceAssembly puts each replica's pages on one topic back together
// from a watch's entries. Not safe for concurrent use: it belongs to the
// watch's goroutine.
type presenceAssembly struct {
	keys map[string]*presenceKeys
	sets map[string][]string // replica → its members now, for Presence.merge
}

func newPresenceAssembly() *presenceAssembly {
	return &presenceAssembly{keys: map[string]*presenceKeys{}, sets: map[string][]string{}}
}

// reset forgets every entry: a new watch's initial values follow.
func (a *presenceAssembly) reset() {
	clear(a.keys)
	clear(a.sets)
}

// errNotPresenceKey: a key under the topic that is neither a head nor a
// page.
var errNotPresenceKey = errors.New("not a presence key: want <topic>.<replica> or <topic>.<replica>.<page>")

// apply takes the entry of the key <topic>.<rest>. An entry it cannot
// read is an error and changes nothing.
func (a *presenceAssembly) apply(rest string, op jetstream.KeyValueOp, value []byte) error {
	replica, pageToken, paged := strings.Cut(rest, ".")
	page := 0
	if paged {
		n, err := strconv.Atoi(pageToken)
		if err != nil || n < 1 || strconv.Itoa(n) != pageToken {
			return errNotPresenceKey
		}
		page = n
	}
	k := a.keys[replica]
	if op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge {
		switch {
		case page == 0: // the replica's members left; its pages, if any, follow
			delete(a.keys, replica)
			delete(a.sets, replica)
		case k != nil:
			delete(k.extra, page)
			a.assemble(replica, k)
		}
		return nil
	}
	var (
		head []string
		gen  uint64
		n    = 1
		pg   presencePage
	)
	if page == 0 {
		if v := bytes.TrimLeft(value, " \t\r\n"); len(v) > 0 && v[0] == '{' {
			var h presenceHead
			if err := json.Unmarshal(value, &h); err != nil {
				return fmt.Errorf("decode a paged head: %w", err)
			}
			if h.Pages < 1 {
				return fmt.Errorf("a paged head names %d pages", h.Pages)
			}
			head, gen, n = h.Members, h.Gen, h.Pages
		} else if err := json.Unmarshal(value, &head); err != nil {
			return fmt.Errorf("decode a member list: %w", err)
		}
	} else if err := json.Unmarshal(value, &pg); err != nil {
		return fmt.Errorf("decode page %d: %w", page, err)
	}
	if k == nil {
		k = &presenceKeys{extra: map[int]presencePage{}}
		a.keys[replica] = k
	}
	if page == 0 {
		k.hasHead, k.head, k.gen, k.pages = true, head, gen, n
	} else {
		k.extra[page] = pg
	}
	a.assemble(replica, k)
	return nil
}

// assemble sets the replica's members from its keys: the head and pages 1
// to N-1 of the head's generation when all are in; else the whole set it
// had before, so that a write under way shows nothing leaving; else (a
// watch that never saw this replica whole: its writer failed half way)
// every member of the head and of pages 1 to N-1, of any generation. A
// replica without a head has no members, whatever pages are left.
func (a *presenceAssembly) assemble(replica string, k *presenceKeys) {
	if !k.hasHead {
		delete(a.sets, replica)
		return
	}
	whole := true
	for i := 1; i < k.pages && whole; i++ {
		pg, ok := k.extra[i]
		whole = ok && pg.Gen == k.gen
	}
	switch {
	case whole:
		set := k.head
		if k.pages > 1 {
			set = slices.Clone(k.head)
			for i := 1; i < k.pages; i++ {
				set = append(set, k.extra[i].Members...)
			}
		}
		k.hasWhole, k.whole = true, set
		a.sets[replica] = set
	case k.hasWhole:
		a.sets[replica] = k.whole
	default:
		set := slices.Clone(k.head)
		for _, i := range slices.Sorted(maps.Keys(k.extra)) {
			if i < k.pages {
				set = append(set, k.extra[i].Members...)
			}
		}
		a.sets[replica] = set
	}
}
