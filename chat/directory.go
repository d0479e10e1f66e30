package chat

import (
	"sort"
	"time"
)

// directory is the room metadata every replica holds in full: what the
// rooms list, roomCreated and room look-ups need. It costs O(rooms), never
// O(messages). Room names are kept unique by the log itself (one directory
// entry per name key, ever), so the directory only records what the log
// accepted. Not safe for concurrent use: Service guards it.
type directory struct {
	rooms map[string]*Room // by ID
	order []*Room          // by directory sequence
	// public and private split order, so that listing the rooms a viewer
	// may see costs what it did before private rooms for public ones.
	public, private []*Room
	names           map[string]string
	last            uint64
}

func newDirectory() *directory {
	return &directory{rooms: make(map[string]*Room), names: make(map[string]string)}
}

// apply folds the directory entry stored at seq under key. An entry that
// breaks the rules (malformed, a room ID used twice) is skipped by every
// replica alike and reported.
func (d *directory) apply(seq uint64, key string, data []byte, at time.Time) (Room, *Error) {
	if seq <= d.last {
		return Room{}, nil
	}
	d.last = seq
	e, err := decodeDirectoryEntry(key, data)
	if err != nil {
		return Room{}, err
	}
	if err := checkActor(e.Actor); err != nil {
		return Room{}, err
	}
	if err := checkRoomName(e.Name); err != nil {
		return Room{}, err
	}
	if _, exists := d.rooms[e.RoomID]; exists {
		return Room{}, errorf(CodeConflict, "room %s already exists", e.RoomID)
	}
	if e.At != 0 {
		at = time.Unix(0, e.At).UTC()
	}
	room := &Room{ID: e.RoomID, Name: e.Name, CreatedAt: at, CreatedBy: e.Actor, Private: e.Private, Seq: seq}
	d.rooms[room.ID] = room
	d.order = append(d.order, room)
	if room.Private {
		d.private = append(d.private, room)
	} else {
		d.public = append(d.public, room)
		d.names[nameTakenKey(e.Name)] = room.ID
	}
	return *room, nil
}

func (d *directory) room(id string) (Room, bool) {
	r := d.rooms[id]
	if r == nil {
		return Room{}, false
	}
	return *r, true
}

// mergedPage returns the page w selects of the rooms of a and b together,
// in sequence order; a and b are each ascending by sequence. It costs a
// binary search in each and the page's length, as bounds does over one
// list, so that a few private rooms do not make listing the public ones
// cost O(rooms).
func mergedPage(a, b []*Room, w Window) Page[Room] {
	after := func(s []*Room, seq uint64) int { // how many are at or before seq
		return sort.Search(len(s), func(i int) bool { return s[i].Seq > seq })
	}
	before := func(s []*Room, seq uint64) int { // how many are before seq
		return sort.Search(len(s), func(i int) bool { return s[i].Seq >= seq })
	}
	aLo, bLo, aHi, bHi := 0, 0, len(a), len(b)
	if w.After > 0 {
		aLo, bLo = after(a, w.After), after(b, w.After)
	}
	if w.Before > 0 {
		aHi, bHi = max(aLo, before(a, w.Before)), max(bLo, before(b, w.Before))
	}
	total, n := len(a)+len(b), aHi-aLo+bHi-bLo
	page := Page[Room]{TotalCount: total}
	lo, hi := aLo+bLo, aHi+bHi
	from, to := lo, hi
	switch {
	case w.Last > 0 && n > w.Last:
		lo = hi - w.Last
		page.Items = make([]Room, w.Last)
		i, j := aHi, bHi
		for k := w.Last - 1; k >= 0; k-- {
			if j == bLo || (i > aLo && a[i-1].Seq > b[j-1].Seq) {
				i--
				page.Items[k] = *a[i]
			} else {
				j--
				page.Items[k] = *b[j]
			}
		}
	default:
		if w.First > 0 && n > w.First {
			n, hi = w.First, lo+w.First
		}
		if n > 0 {
			page.Items = make([]Room, 0, n)
		}
		i, j := aLo, bLo
		for range n {
			if j == bHi || (i < aHi && a[i].Seq < b[j].Seq) {
				page.Items = append(page.Items, *a[i])
				i++
			} else {
				page.Items = append(page.Items, *b[j])
				j++
			}
		}
	}
	page.HasPreviousPage, page.HasNextPage = pageFlags(w, lo, hi, from, to, total)
	return page
}

// createdAfter returns the creations after directory position after, as
// roomCreated subscribers see them.
func (d *directory) createdAfter(after uint64) []Change {
	lo := sort.Search(len(d.order), func(i int) bool { return d.order[i].Seq > after })
	changes := make([]Change, 0, len(d.order)-lo)
	for _, r := range d.order[lo:] {
		changes = append(changes, Change{Seq: r.Seq, At: r.CreatedAt, Type: RoomCreated, Room: *r})
	}
	return changes
}
