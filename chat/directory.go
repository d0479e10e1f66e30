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
	names map[string]string
	last  uint64
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
	if !room.Private {
		d.names[roomNameKey(e.Name)] = room.ID
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

// page returns a page of rooms in creation order.
func (d *directory) page(w Window) Page[Room] {
	lo, hi := bounds(len(d.order), func(i int) uint64 { return d.order[i].Seq }, w)
	page := Page[Room]{TotalCount: len(d.order)}
	for _, r := range d.order[lo:hi] {
		page.Items = append(page.Items, *r)
	}
	page.HasPreviousPage, page.HasNextPage = lo > 0, hi < len(d.order)
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
