package graph

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/auth"
)

// A model test: what a client rebuilds from a page and the
// roomEvents it receives afterwards must agree, field for field, with
// what a fresh query says, on either replica.

const agreeMsgFields = `id text version deleted createdAt editedAt author { id name } cursor reactions { emoji count viewerHasReacted }`

const agreePageQuery = `query($r: ID!) { room(id: $r) { id messageCount messages(first: 100) { totalCount
  edges { cursor node { ` + agreeMsgFields + ` } }
  pageInfo { hasNextPage hasPreviousPage startCursor endCursor } resumeCursor } } }`

const agreeEventsSub = `subscription($r: ID!, $after: String) { roomEvents(roomId: $r, after: $after) {
  kind cursor room { id messageCount } message { ` + agreeMsgFields + ` } } }`

// agreeEnv is two replicas, each served by Herald's engine, over one NATS.
type agreeEnv struct {
	t      *testing.T
	hs     [2]*httptest.Server
	client *http.Client
	epochR *Resolver
}

func newAgreeEnv(t *testing.T) *agreeEnv {
	a, b, _ := replicaAndLaggard(t) // b is never held back
	e := &agreeEnv{t: t, epochR: &Resolver{epoch: time.Unix(0, 1).UnixNano()}}
	e.hs[0] = presenceServer(t, a, nil, 0)
	e.hs[1] = presenceServer(t, b, nil, 0)
	e.client = &http.Client{Timeout: 20 * time.Second}
	return e
}

// do runs a query or mutation over HTTP on replica i as user ("" anonymous).
func (e *agreeEnv) do(i int, user, query string, vars map[string]any) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest("POST", e.hs[i].URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if user != "" {
		req.Header.Set(auth.DevHeader, user)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer resp.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return gqlResponse{}, fmt.Errorf("decode %s: %v", resp.Status, err)
	}
	return out, nil
}

// seq is a room cursor's position (0 for a malformed one).
func (e *agreeEnv) seq(roomID, cursor string) uint64 {
	pos, err := e.epochR.decodeCursor("after", roomScope(roomID), &cursor)
	if err != nil {
		return 0
	}
	return pos
}

// sseResult is one "next" event of a stream.
type sseResult struct {
	Data   map[string]json.RawMessage `json:"data"`
	Errors []struct {
		Message    string
		Extensions map[string]any
	} `json:"errors"`
	Extensions struct{ Cursor string } `json:"extensions"`
}

// agreeStream is an open graphql-sse stream; results arrive on out, which
// is closed when the stream ends (complete, cut, or cancelled).
type agreeStream struct {
	out    chan sseResult
	cancel func()
	done   chan struct{}
}

func (e *agreeEnv) subscribe(i int, user, query string, vars map[string]any) (*agreeStream, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", e.hs[i].URL+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if user != "" {
		req.Header.Set(auth.DevHeader, user)
	}
	resp, err := e.hs[i].Client().Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("subscribe: %s", resp.Status)
	}
	s := &agreeStream{out: make(chan sseResult, 4096), done: make(chan struct{})}
	s.cancel = func() { cancel(); resp.Body.Close(); <-s.done }
	go func() {
		defer close(s.done)
		defer close(s.out)
		rd := bufio.NewReaderSize(resp.Body, 1<<20)
		event := ""
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
				if event == "complete" {
					return
				}
			case strings.HasPrefix(line, "data: ") && event == "next":
				var r sseResult
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &r); err != nil {
					r.Errors = append(r.Errors, struct {
						Message    string
						Extensions map[string]any
					}{Message: "undecodable: " + line})
				}
				s.out <- r
			}
		}
	}()
	return s, nil
}

// canon returns JSON in canonical form (sorted keys).
func canon(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "!" + string(raw)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

type agreePage struct {
	Room *struct {
		ID           string
		MessageCount int
		Messages     struct {
			TotalCount int
			Edges      []struct {
				Cursor string
				Node   json.RawMessage
			}
			PageInfo struct {
				HasNextPage, HasPreviousPage bool
				StartCursor, EndCursor       *string
			}
			ResumeCursor string
		}
	}
}

func (e *agreeEnv) page(i int, user, roomID string) (agreePage, error) {
	resp, err := e.do(i, user, agreePageQuery, map[string]any{"r": roomID})
	if err != nil {
		return agreePage{}, err
	}
	if len(resp.Errors) > 0 {
		return agreePage{}, fmt.Errorf("page: %s (%s)", resp.Errors[0].Message, resp.code())
	}
	var p agreePage
	if err := json.Unmarshal(resp.Data, &p); err != nil {
		return p, err
	}
	if p.Room == nil {
		return p, fmt.Errorf("page: no room")
	}
	return p, nil
}

// msgOp is one accepted change of a message, as the driver saw it.
type msgOp struct {
	idx  int    // the driver's op index in its room
	seq  uint64 // its log position
	kind string // RoomEventKind
	id   string
}

// agreeRoom is one room the model drives.
type agreeRoom struct {
	id      string
	private bool
	creator string

	mu      sync.Mutex
	ops     []msgOp                  // accepted message changes, in order
	member  map[string][]memberStamp // private: each user's membership changes by op index
	lastIdx int
}

type memberStamp struct {
	idx   int
	added bool
}

// memberAt reports whether user is a member (any user: public) at op index idx.
func (r *agreeRoom) memberAt(user string, idx int) bool {
	if !r.private {
		return true
	}
	in := user == r.creator
	for _, s := range r.member[user] {
		if s.idx < idx {
			in = s.added
		}
	}
	return in
}

// agreeClient is a client rebuilding a room from a page and its events.
type agreeClient struct {
	name, user string
	room       *agreeRoom
	startPos   uint64
	startIdx   int // the driver's op index when the client started (private rooms), -1 unknown

	edges     []string          // edge cursors in order
	ids       []string          // message IDs, by edge
	nodes     map[string]string // id -> canonical message
	lastSeq   uint64
	lastCur   string
	count     int
	received  []uint64
	cursors   []string // every event cursor received
	forbidden bool
	ended     bool
	problems  []string
	resumes   int
}

func (c *agreeClient) problem(format string, args ...any) {
	if len(c.problems) < 20 {
		c.problems = append(c.problems, fmt.Sprintf(format, args...))
	}
}

// run is the client: a page as its user, then roomEvents after its
// resumeCursor; it reconnects to the other replica after resumeEvery
// events (0: never) from the last cursor it got; it stops when stop is
// closed and it has reached target(), or on deadline.
func (c *agreeClient) run(e *agreeEnv, rng *rand.Rand, resumeEvery int, stop <-chan struct{}, target func() uint64) {
	replica := rng.Intn(2)
	p, err := e.page(replica, c.user, c.room.id)
	if err != nil {
		c.problem("initial page: %v", err)
		c.ended = true
		return
	}
	c.nodes = map[string]string{}
	for _, ed := range p.Room.Messages.Edges {
		var id struct{ ID string }
		_ = json.Unmarshal(ed.Node, &id)
		c.edges = append(c.edges, ed.Cursor)
		c.ids = append(c.ids, id.ID)
		c.nodes[id.ID] = canon(ed.Node)
	}
	c.count = p.Room.MessageCount
	c.lastCur = p.Room.Messages.ResumeCursor
	c.startPos = e.seq(c.room.id, c.lastCur)
	c.lastSeq = c.startPos
	deadline := time.Now().Add(45 * time.Second)
	for time.Now().Before(deadline) {
		replica = 1 - replica
		s, err := e.subscribe(replica, c.user, agreeEventsSub, map[string]any{"r": c.room.id, "after": c.lastCur})
		if err != nil {
			c.problem("subscribe: %v", err)
			return
		}
		n := 0
		reconnect := false
	read:
		for {
			select {
			case r, ok := <-s.out:
				if !ok {
					c.ended = true
					break read
				}
				if len(r.Errors) > 0 {
					code, _ := r.Errors[0].Extensions["code"].(string)
					if code == "FORBIDDEN" {
						c.forbidden = true
					} else {
						c.problem("error event: %s (%s)", r.Errors[0].Message, code)
					}
					continue
				}
				c.apply(e, r)
				n++
				if resumeEvery > 0 && n >= resumeEvery && rng.Intn(2) == 0 {
					reconnect = true
					break read
				}
			case <-time.After(50 * time.Millisecond):
				select {
				case <-stop:
					if c.lastSeq >= target() {
						s.cancel()
						return
					}
				default:
				}
				if time.Now().After(deadline) {
					break read
				}
			}
		}
		s.cancel()
		if !reconnect {
			return
		}
		c.resumes++
	}
	if time.Now().After(deadline) {
		c.problem("deadline: reached position %d of %d", c.lastSeq, target())
	}
}

func (c *agreeClient) apply(e *agreeEnv, r sseResult) {
	var ev struct {
		Kind   string
		Cursor string
		Room   struct {
			ID           string
			MessageCount int
		}
		Message json.RawMessage
	}
	if err := json.Unmarshal(r.Data["roomEvents"], &ev); err != nil {
		c.problem("event %s: %v", r.Data["roomEvents"], err)
		return
	}
	seq := e.seq(c.room.id, ev.Cursor)
	if ev.Cursor != r.Extensions.Cursor {
		c.problem("event cursor %q but extensions.cursor %q", ev.Cursor, r.Extensions.Cursor)
	}
	if seq <= c.lastSeq {
		c.problem("event %s at %d after %d: duplicate or out of order", ev.Kind, seq, c.lastSeq)
		return
	}
	c.lastSeq, c.lastCur = seq, ev.Cursor
	c.received = append(c.received, seq)
	c.cursors = append(c.cursors, ev.Cursor)
	c.count = ev.Room.MessageCount
	var id struct{ ID string }
	_ = json.Unmarshal(ev.Message, &id)
	node := canon(ev.Message)
	if ev.Kind == "MESSAGE_POSTED" {
		if _, known := c.nodes[id.ID]; known {
			c.problem("posted %s again at %d", id.ID, seq)
			return
		}
		c.edges = append(c.edges, ev.Cursor)
		c.ids = append(c.ids, id.ID)
		c.nodes[id.ID] = node
		return
	}
	if _, known := c.nodes[id.ID]; !known {
		c.problem("%s of unknown message %s at %d", ev.Kind, id.ID, seq)
		return
	}
	c.nodes[id.ID] = node
}

// compare checks the client's rebuilt room against a fresh page on
// replica i.
func (c *agreeClient) compare(e *agreeEnv, i int) {
	p, err := e.page(i, c.user, c.room.id)
	if err != nil {
		c.problem("final page on replica %d: %v", i, err)
		return
	}
	m := p.Room.Messages
	if len(m.Edges) != len(c.edges) {
		c.problem("replica %d: query has %d messages, rebuilt %d", i, len(m.Edges), len(c.edges))
	}
	for k := 0; k < min(len(m.Edges), len(c.edges)); k++ {
		ed := m.Edges[k]
		if ed.Cursor != c.edges[k] {
			c.problem("replica %d: edge %d cursor %q, rebuilt %q", i, k, ed.Cursor, c.edges[k])
		}
		if got, want := c.nodes[c.ids[k]], canon(ed.Node); got != want {
			c.problem("replica %d: message %d\n   query   %s\n   rebuilt %s", i, k, want, got)
		}
	}
	if m.TotalCount != len(c.edges) {
		c.problem("replica %d: totalCount %d, rebuilt %d messages", i, m.TotalCount, len(c.edges))
	}
	if p.Room.MessageCount != c.count {
		c.problem("replica %d: messageCount %d, rebuilt (last event's) %d", i, p.Room.MessageCount, c.count)
	}
	if m.PageInfo.HasNextPage || m.PageInfo.HasPreviousPage {
		c.problem("replica %d: pageInfo of the whole list %+v", i, m.PageInfo)
	}
	if len(c.edges) > 0 && (m.PageInfo.StartCursor == nil || *m.PageInfo.StartCursor != c.edges[0] ||
		m.PageInfo.EndCursor == nil || *m.PageInfo.EndCursor != c.edges[len(c.edges)-1]) {
		c.problem("replica %d: pageInfo start/end %v/%v, rebuilt %q/%q", i, m.PageInfo.StartCursor, m.PageInfo.EndCursor, c.edges[0], c.edges[len(c.edges)-1])
	}
	if !c.room.private && e.seq(c.room.id, m.ResumeCursor) != c.lastSeq {
		c.problem("replica %d: resumeCursor at %d, the client's last event at %d", i, e.seq(c.room.id, m.ResumeCursor), c.lastSeq)
	}
}

// expected is which accepted message changes the client must receive.
func (c *agreeClient) expected() []uint64 {
	c.room.mu.Lock()
	defer c.room.mu.Unlock()
	var want []uint64
	for _, op := range c.room.ops {
		if op.seq > c.startPos && c.room.memberAt(c.user, op.idx) {
			want = append(want, op.seq)
		}
	}
	return want
}

func agreeSeed(t *testing.T) int64 {
	if s := os.Getenv("HERALD_REBUILD_SEED"); s != "" {
		n, _ := strconv.ParseInt(s, 10, 64)
		return n
	}
	return time.Now().UnixNano() % 1_000_000
}

var agreeUsers = []string{"alice", "bob", "carol", "dave"}
var agreeEmojis = []string{"👍", "❤️", "😂"}

// driveRoom runs ops random commands on room, one after another, from
// random users on random replicas, recording what was accepted. onIdx is
// called between ops with the index of the next op.
func (e *agreeEnv) driveRoom(rng *rand.Rand, room *agreeRoom, ops int, onIdx func(idx int)) []string {
	var problems []string
	type msg struct {
		id, author string
	}
	var msgs []msg
	versions := map[string]int{}
	for idx := 0; idx < ops; idx++ {
		if onIdx != nil {
			onIdx(idx)
		}
		user := agreeUsers[rng.Intn(len(agreeUsers))]
		if room.private {
			// mostly members act
			var members []string
			room.mu.Lock()
			for _, u := range agreeUsers {
				if room.memberAt(u, idx) {
					members = append(members, u)
				}
			}
			room.mu.Unlock()
			if rng.Intn(10) > 0 {
				user = members[rng.Intn(len(members))]
			}
		}
		replica := rng.Intn(2)
		pick := func() (msg, bool) {
			if len(msgs) == 0 {
				return msg{}, false
			}
			return msgs[rng.Intn(len(msgs))], true
		}
		var (
			query string
			vars  map[string]any
			kind  string
			field string
			mid   string
		)
		roll := rng.Intn(100)
		switch {
		case roll < 25 || len(msgs) == 0:
			if len(msgs) >= 80 {
				continue
			}
			query, field, kind = `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id cursor } }`, "postMessage", "MESSAGE_POSTED"
			vars = map[string]any{"r": room.id, "t": fmt.Sprintf("m%d by %s", idx, user)}
		case roll < 45:
			m, _ := pick()
			if rng.Intn(3) == 0 {
				user = m.author
			}
			v := versions[m.id]
			if rng.Intn(5) == 0 {
				v-- // stale
			}
			query, field, kind, mid = `mutation($m: ID!, $v: Int!, $t: String!) { editMessage(id: $m, version: $v, text: $t) { id cursor } }`, "editMessage", "MESSAGE_EDITED", m.id
			vars = map[string]any{"m": m.id, "v": max(v, 1), "t": fmt.Sprintf("e%d by %s", idx, user)}
		case roll < 55:
			m, _ := pick()
			if rng.Intn(2) == 0 {
				user = m.author
			}
			query, field, kind, mid = `mutation($m: ID!, $v: Int!) { deleteMessage(id: $m, version: $v) { id cursor } }`, "deleteMessage", "MESSAGE_DELETED", m.id
			vars = map[string]any{"m": m.id, "v": max(versions[m.id], 1)}
		case roll < 85 || !room.private:
			m, _ := pick()
			query, field, kind, mid = `mutation($m: ID!, $e: String!) { react(messageId: $m, emoji: $e) { id cursor } }`, "react", "REACTIONS_CHANGED", m.id
			vars = map[string]any{"m": m.id, "e": agreeEmojis[rng.Intn(len(agreeEmojis))]}
		default:
			target := agreeUsers[rng.Intn(len(agreeUsers))]
			room.mu.Lock()
			in := room.memberAt(target, idx)
			room.mu.Unlock()
			if in {
				query, field = `mutation($r: ID!, $u: ID!) { removeMember(roomId: $r, userId: $u) { id } }`, "removeMember"
			} else {
				query, field = `mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) { id } }`, "addMember"
			}
			vars = map[string]any{"r": room.id, "u": target}
			resp, err := e.do(replica, user, query, vars)
			if err != nil {
				problems = append(problems, fmt.Sprintf("op %d %s: %v", idx, field, err))
				continue
			}
			if len(resp.Errors) == 0 {
				room.mu.Lock()
				room.member[target] = append(room.member[target], memberStamp{idx: idx, added: !in})
				room.mu.Unlock()
			}
			continue
		}
		resp, err := e.do(replica, user, query, vars)
		if err != nil {
			problems = append(problems, fmt.Sprintf("op %d %s: %v", idx, field, err))
			continue
		}
		if len(resp.Errors) > 0 {
			continue // refused: stale version, not the author, deleted, not a member...
		}
		var out map[string]struct{ ID, Cursor string }
		_ = json.Unmarshal(resp.Data, &out)
		res := out[field]
		seq := e.seq(room.id, res.Cursor)
		if seq == 0 {
			problems = append(problems, fmt.Sprintf("op %d %s: cursor %q", idx, field, res.Cursor))
			continue
		}
		switch kind {
		case "MESSAGE_POSTED":
			msgs = append(msgs, msg{id: res.ID, author: user})
			versions[res.ID] = 1
		case "MESSAGE_EDITED", "MESSAGE_DELETED":
			versions[mid]++
		}
		room.mu.Lock()
		room.ops = append(room.ops, msgOp{idx: idx, seq: seq, kind: kind, id: res.ID})
		room.lastIdx = idx
		room.mu.Unlock()
	}
	return problems
}

func (r *agreeRoom) target() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ops) == 0 {
		return 0
	}
	return r.ops[len(r.ops)-1].seq
}

// TestRebuiltRoomsMatchQueries is the model test: two public
// rooms and a private one driven by random commands of several users on two
// replicas, while clients (some anonymous, some starting late from a
// page's resumeCursor, some reconnecting to the other replica from the
// last cursor they got) rebuild each room from a page and its roomEvents.
// At the end every client's room must be what a fresh query says on both
// replicas, with every accepted change received once, in order, and
// nothing a removed member may not see.
func TestRebuiltRoomsMatchQueries(t *testing.T) {
	seed := agreeSeed(t)
	t.Logf("seed %d (HERALD_REBUILD_SEED=%d to reproduce)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d", seed)
		}
	}()
	e := newAgreeEnv(t)
	rng := rand.New(rand.NewSource(seed))

	var rooms []*agreeRoom
	for k, private := range []bool{false, false, true} {
		q := `mutation($n: String!, $p: Boolean) { createRoom(name: $n, private: $p) { id } }`
		resp, err := e.do(k%2, "alice", q, map[string]any{"n": fmt.Sprintf("agree %d %d", seed, k), "p": private})
		if err != nil || len(resp.Errors) > 0 {
			t.Fatalf("createRoom: %v %+v", err, resp.Errors)
		}
		var out struct{ CreateRoom struct{ ID string } }
		_ = json.Unmarshal(resp.Data, &out)
		rooms = append(rooms, &agreeRoom{id: out.CreateRoom.ID, private: private, creator: "alice", member: map[string][]memberStamp{}})
	}

	const opsPerRoom = 110
	stop := make(chan struct{})
	var (
		wg      sync.WaitGroup
		cmu     sync.Mutex
		clients []*agreeClient
	)
	startClient := func(c *agreeClient, seed int64, resumeEvery int, delay time.Duration) {
		cmu.Lock()
		clients = append(clients, c)
		cmu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			c.run(e, rand.New(rand.NewSource(seed)), resumeEvery, stop, c.room.target)
		}()
	}
	// Public rooms: clients from the start and late ones, some anonymous.
	for k, room := range rooms[:2] {
		for j, user := range []string{"alice", "bob", "", "carol", "dave", ""} {
			delay := time.Duration(rng.Intn(1500)) * time.Millisecond
			if j < 2 {
				delay = 0
			}
			resumeEvery := 0
			if j%2 == 1 {
				resumeEvery = 3 + rng.Intn(15)
			}
			startClient(&agreeClient{name: fmt.Sprintf("public%d/%d(%s)", k, j, user), user: user, room: room, startIdx: -1},
				rng.Int63(), resumeEvery, delay)
		}
	}
	// The private room: its members' clients are started by the driver
	// between two commands, once each time a user becomes a member.
	priv := rooms[2]
	started := map[string]int{}
	privateStart := func(idx int) {
		priv.mu.Lock()
		var now []string
		for _, u := range agreeUsers {
			if priv.memberAt(u, idx) {
				now = append(now, u)
			}
		}
		priv.mu.Unlock()
		for _, u := range now {
			// one client per stint of membership
			stint := 0
			for _, s := range priv.member[u] {
				if s.idx < idx && s.added {
					stint++
				}
			}
			if v, ok := started[u]; ok && v == stint {
				continue
			}
			started[u] = stint
			c := &agreeClient{name: fmt.Sprintf("private(%s#%d@%d)", u, stint, idx), user: u, room: priv, startIdx: idx}
			startClient(c, rng.Int63(), []int{0, 4, 9}[rng.Intn(3)], 0)
			time.Sleep(30 * time.Millisecond) // let it read its page before the next command
		}
	}

	var dmu sync.Mutex
	var driveProblems []string
	var dwg sync.WaitGroup
	for k, room := range rooms {
		dwg.Add(1)
		r := rand.New(rand.NewSource(rng.Int63()))
		go func() {
			defer dwg.Done()
			var onIdx func(int)
			if room.private {
				onIdx = privateStart
			}
			p := e.driveRoom(r, room, opsPerRoom, onIdx)
			dmu.Lock()
			for _, s := range p {
				driveProblems = append(driveProblems, fmt.Sprintf("room %d: %s", k, s))
			}
			dmu.Unlock()
		}()
	}
	dwg.Wait()
	close(stop)
	wg.Wait()
	for _, p := range driveProblems {
		t.Errorf("driver: %s", p)
	}

	var removedSeen int
	for _, c := range clients {
		if c.room.private {
			// A client whose user was removed after it started must have
			// ended with FORBIDDEN and received nothing from after that.
			removal := -1
			for _, s := range c.room.member[c.user] {
				if s.idx >= c.startIdx && !s.added {
					removal = s.idx
					break
				}
			}
			if removal >= 0 {
				removedSeen++
				// Added back later: a client that was reconnecting when
				// the removal came (no subscription open to end) may have
				// resumed once its user was back, without FORBIDDEN.
				readded := false
				for _, s := range c.room.member[c.user] {
					readded = readded || s.idx > removal && s.added
				}
				if !c.forbidden && !readded {
					c.problem("removed at op %d but not ended with FORBIDDEN (ended %v)", removal, c.ended)
				}
				// Changes made while the user was out; a client that
				// resumed once the user was added back may receive those
				// made since.
				c.room.mu.Lock()
				var after []uint64
				for _, op := range c.room.ops {
					if op.idx > removal && !c.room.memberAt(c.user, op.idx) {
						after = append(after, op.seq)
					}
				}
				c.room.mu.Unlock()
				for _, s := range c.received {
					if slices.Contains(after, s) {
						c.problem("received the change at %d, made after the removal at op %d", s, removal)
					}
				}
				report(t, c)
				continue
			}
		}
		if got, want := c.received, c.expected(); !slices.Equal(got, want) {
			c.problem("received positions %v\n   want %v", got, want)
		}
		c.compare(e, 0)
		c.compare(e, 1)
		report(t, c)
	}
	var events, resumes int
	for _, c := range clients {
		events += len(c.received)
		resumes += c.resumes
	}
	t.Logf("%d clients (%d events, %d resumes), %d removed members; ops: %d, %d, %d accepted", len(clients), events, resumes, removedSeen,
		len(rooms[0].ops), len(rooms[1].ops), len(rooms[2].ops))

	// The private room's members: the same on both replicas, and paged by
	// 2 the same as read whole.
	var viewer string
	for _, u := range agreeUsers {
		if priv.memberAt(u, opsPerRoom) {
			viewer = u
			break
		}
	}
	const membersQ = `query($r: ID!, $n: Int, $a: String) { room(id: $r) { members(first: $n, after: $a) { totalCount
	  edges { cursor joinedAt node { id } } pageInfo { hasNextPage endCursor } } } }`
	type membersPage struct {
		Room struct {
			Members struct {
				TotalCount int
				Edges      []struct {
					Cursor, JoinedAt string
					Node             struct{ ID string }
				}
				PageInfo struct {
					HasNextPage bool
					EndCursor   *string
				}
			}
		}
	}
	members := func(i, n int, after *string) membersPage {
		vars := map[string]any{"r": priv.id, "n": n}
		if after != nil {
			vars["a"] = *after
		}
		resp, err := e.do(i, viewer, membersQ, vars)
		var p membersPage
		if err != nil || len(resp.Errors) > 0 {
			t.Errorf("members: %v %+v", err, resp.Errors)
			return p
		}
		_ = json.Unmarshal(resp.Data, &p)
		return p
	}
	var whole [2]string
	for i := range 2 {
		full := members(i, 100, nil)
		b, _ := json.Marshal(full.Room.Members.Edges)
		whole[i] = string(b)
		var paged []byte
		var after *string
		var got []any
		for range 10 {
			p := members(i, 2, after)
			for _, ed := range p.Room.Members.Edges {
				got = append(got, ed)
			}
			if !p.Room.Members.PageInfo.HasNextPage {
				break
			}
			after = p.Room.Members.PageInfo.EndCursor
		}
		paged, _ = json.Marshal(got)
		if string(paged) != whole[i] && !(len(got) == 0 && whole[i] == "[]") {
			t.Errorf("replica %d: members paged by 2 %s, read whole %s", i, paged, whole[i])
		}
		var want int
		for _, u := range agreeUsers {
			if priv.memberAt(u, opsPerRoom) {
				want++
			}
		}
		if full.Room.Members.TotalCount != want || len(full.Room.Members.Edges) != want {
			t.Errorf("replica %d: %d members (totalCount %d), the model has %d", i, len(full.Room.Members.Edges), full.Room.Members.TotalCount, want)
		}
	}
	if whole[0] != whole[1] {
		t.Errorf("members differ between replicas:\n   %s\n   %s", whole[0], whole[1])
	}

	// Pagination from the middle: a page after (and before) an event's
	// cursor agrees with the event stream after it.
	for _, c := range clients {
		if len(c.cursors) == 0 || c.room.private {
			continue
		}
		cur := c.cursors[rng.Intn(len(c.cursors))]
		e.checkMiddle(t, c, cur)
		break
	}
}

func report(t *testing.T, c *agreeClient) {
	t.Helper()
	for _, p := range c.problems {
		t.Errorf("client %s (from %d, %d resumes): %s", c.name, c.startPos, c.resumes, p)
	}
}

// checkMiddle compares messages(first, after: cur), messages(last,
// before: cur) and roomEvents(after: cur) with the client's whole list.
func (e *agreeEnv) checkMiddle(t *testing.T, c *agreeClient, cur string) {
	s := e.seq(c.room.id, cur)
	var afterIDs, beforeIDs []string
	for k, ec := range c.edges {
		if e.seq(c.room.id, ec) > s {
			afterIDs = append(afterIDs, c.ids[k])
		} else if e.seq(c.room.id, ec) < s {
			beforeIDs = append(beforeIDs, c.ids[k])
		}
	}
	for i := range 2 {
		for _, args := range []string{"first: 100, after: $c", "last: 100, before: $c"} {
			q := `query($r: ID!, $c: String) { room(id: $r) { messages(` + args + `) { nodes { id } pageInfo { hasNextPage hasPreviousPage } } } }`
			resp, err := e.do(i, c.user, q, map[string]any{"r": c.room.id, "c": cur})
			if err != nil || len(resp.Errors) > 0 {
				t.Errorf("middle page %s: %v %+v", args, err, resp.Errors)
				continue
			}
			var out struct {
				Room struct {
					Messages struct {
						Nodes    []struct{ ID string }
						PageInfo struct{ HasNextPage, HasPreviousPage bool }
					}
				}
			}
			_ = json.Unmarshal(resp.Data, &out)
			var got []string
			for _, n := range out.Room.Messages.Nodes {
				got = append(got, n.ID)
			}
			want := afterIDs
			if strings.HasPrefix(args, "last") {
				want = beforeIDs
			}
			if !slices.Equal(got, want) {
				t.Errorf("replica %d messages(%s) at %d: %v\n   want %v", i, args, s, got, want)
			}
		}
	}
	// The event stream after cur: every accepted change after it.
	st, err := e.subscribe(1, c.user, agreeEventsSub, map[string]any{"r": c.room.id, "after": cur})
	if err != nil {
		t.Errorf("middle subscribe: %v", err)
		return
	}
	defer st.cancel()
	mid := &agreeClient{name: "middle", user: c.user, room: c.room, nodes: map[string]string{}, startPos: s, lastSeq: s}
	// it knows the messages up to cur from a page
	for k, ec := range c.edges {
		if e.seq(c.room.id, ec) <= s {
			mid.edges = append(mid.edges, ec)
			mid.ids = append(mid.ids, c.ids[k])
			mid.nodes[c.ids[k]] = "?"
		}
	}
	target := c.room.target()
	for deadline := time.Now().Add(10 * time.Second); mid.lastSeq < target && time.Now().Before(deadline); {
		select {
		case r, ok := <-st.out:
			if !ok {
				deadline = time.Now()
				continue
			}
			mid.apply(e, r)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if got, want := mid.received, mid.expected(); !slices.Equal(got, want) {
		t.Errorf("roomEvents after %d: positions %v\n   want %v", s, got, want)
	}
	var posted []string
	for k := range mid.edges {
		if e.seq(c.room.id, mid.edges[k]) > s {
			posted = append(posted, mid.ids[k])
		}
	}
	if !slices.Equal(posted, afterIDs) {
		t.Errorf("roomEvents after %d posted %v; messages after it %v", s, posted, afterIDs)
	}
	for _, p := range mid.problems {
		t.Errorf("roomEvents after %d: %s", s, p)
	}
}

// TestRebuiltRoomListMatchesQueries: clients rebuild the room list from
// a rooms page and roomCreated after its resumeCursor (reconnecting to the
// other replica from their last cursor) while users create public and
// private rooms on both replicas. At the end the public rooms rebuilt must
// be the query's, with the events' cursors as the edges' cursors; the list
// paged in small pages from the start and from an event's cursor must be
// the list read whole.
func TestRebuiltRoomListMatchesQueries(t *testing.T) {
	seed := agreeSeed(t)
	t.Logf("seed %d (HERALD_REBUILD_SEED=%d to reproduce)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("FAILED with seed %d", seed)
		}
	}()
	e := newAgreeEnv(t)
	rng := rand.New(rand.NewSource(seed))
	dirSeq := func(c string) uint64 {
		pos, err := e.epochR.decodeCursor("after", directoryScope(), &c)
		if err != nil {
			return 0
		}
		return pos
	}
	type roomEdge struct {
		Cursor string
		Node   struct {
			ID      string
			Name    string
			Private bool
		}
	}
	type roomsPage struct {
		Rooms struct {
			TotalCount int
			Edges      []roomEdge
			PageInfo   struct {
				HasNextPage, HasPreviousPage bool
				EndCursor                    *string
			}
			ResumeCursor string
		}
	}
	const roomsQ = `query($n: Int, $a: String) { rooms(first: $n, after: $a) { totalCount edges { cursor node { id name private } }
	  pageInfo { hasNextPage hasPreviousPage endCursor } resumeCursor } }`
	rooms := func(i int, user string, n int, after *string) (roomsPage, error) {
		vars := map[string]any{"n": n}
		if after != nil {
			vars["a"] = *after
		}
		resp, err := e.do(i, user, roomsQ, vars)
		if err != nil {
			return roomsPage{}, err
		}
		if len(resp.Errors) > 0 {
			return roomsPage{}, fmt.Errorf("%s", resp.Errors[0].Message)
		}
		var p roomsPage
		return p, json.Unmarshal(resp.Data, &p)
	}
	type listClient struct {
		user     string
		edges    []roomEdge
		last     string
		problems []string
	}
	const sub = `subscription($after: String) { roomCreated(after: $after) { id name private } }`
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var clients []*listClient
	var created []string // public room ids, in creation order
	var cmu sync.Mutex
	for j, user := range []string{"alice", "bob", "", "carol"} {
		c := &listClient{user: user}
		clients = append(clients, c)
		r := rand.New(rand.NewSource(rng.Int63()))
		delay := time.Duration(j*150) * time.Millisecond
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delay)
			replica := r.Intn(2)
			p, err := rooms(replica, c.user, 100, nil)
			if err != nil {
				c.problems = append(c.problems, "page: "+err.Error())
				return
			}
			for _, ed := range p.Rooms.Edges {
				if !ed.Node.Private {
					c.edges = append(c.edges, ed)
				}
			}
			c.last = p.Rooms.ResumeCursor
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				replica = 1 - replica
				s, err := e.subscribe(replica, c.user, sub, map[string]any{"after": c.last})
				if err != nil {
					c.problems = append(c.problems, "subscribe: "+err.Error())
					return
				}
				n, want := 0, 1+r.Intn(6)
			read:
				for {
					select {
					case res, ok := <-s.out:
						if !ok {
							c.problems = append(c.problems, "stream ended")
							s.cancel()
							return
						}
						if len(res.Errors) > 0 {
							c.problems = append(c.problems, "error: "+res.Errors[0].Message)
							continue
						}
						var ev roomEdge
						_ = json.Unmarshal(res.Data["roomCreated"], &ev.Node)
						ev.Cursor = res.Extensions.Cursor
						if dirSeq(ev.Cursor) <= dirSeq(c.last) {
							c.problems = append(c.problems, fmt.Sprintf("room %s at %d after %d", ev.Node.Name, dirSeq(ev.Cursor), dirSeq(c.last)))
						}
						if ev.Node.Private {
							c.problems = append(c.problems, "private room reported: "+ev.Node.Name)
						}
						c.edges = append(c.edges, ev)
						c.last = ev.Cursor
						if n++; n >= want {
							break read
						}
					case <-time.After(50 * time.Millisecond):
						select {
						case <-stop:
							cmu.Lock()
							done := len(c.edges) > 0 && len(created) > 0 && c.edges[len(c.edges)-1].Node.ID == created[len(created)-1]
							cmu.Unlock()
							if done {
								s.cancel()
								return
							}
						default:
						}
					}
				}
				s.cancel()
			}
			c.problems = append(c.problems, "deadline")
		}()
	}
	for k := range 40 {
		user := agreeUsers[rng.Intn(len(agreeUsers))]
		private := rng.Intn(3) == 0
		q := `mutation($n: String!, $p: Boolean) { createRoom(name: $n, private: $p) { id } }`
		resp, err := e.do(rng.Intn(2), user, q, map[string]any{"n": fmt.Sprintf("list %d %d", seed, k), "p": private})
		if err != nil || len(resp.Errors) > 0 {
			t.Fatalf("createRoom: %v %+v", err, resp.Errors)
		}
		var out struct{ CreateRoom struct{ ID string } }
		_ = json.Unmarshal(resp.Data, &out)
		if !private {
			cmu.Lock()
			created = append(created, out.CreateRoom.ID)
			cmu.Unlock()
		}
		time.Sleep(time.Duration(rng.Intn(30)) * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for _, c := range clients {
		for _, p := range c.problems {
			t.Errorf("client %q: %s", c.user, p)
		}
		for i := range 2 {
			full, err := rooms(i, c.user, 100, nil)
			if err != nil {
				t.Errorf("final rooms: %v", err)
				continue
			}
			var public []roomEdge
			for _, ed := range full.Rooms.Edges {
				if !ed.Node.Private {
					public = append(public, ed)
				}
			}
			if !slices.Equal(public, c.edges) {
				t.Errorf("client %q, replica %d: query's public rooms\n   %v\n rebuilt\n   %v", c.user, i, public, c.edges)
			}
			if full.Rooms.TotalCount != len(full.Rooms.Edges) {
				t.Errorf("client %q, replica %d: totalCount %d, %d rooms listed", c.user, i, full.Rooms.TotalCount, len(full.Rooms.Edges))
			}
			// Paged by 3, from the start and from an event's cursor.
			var from *string
			if len(c.edges) > 0 {
				mid := c.edges[rng.Intn(len(c.edges))].Cursor
				from = &mid
			}
			for _, start := range []*string{nil, from} {
				var want []roomEdge
				for _, ed := range full.Rooms.Edges {
					if start == nil || dirSeq(ed.Cursor) > dirSeq(*start) {
						want = append(want, ed)
					}
				}
				var got []roomEdge
				after := start
				for range 40 {
					p, err := rooms(i, c.user, 3, after)
					if err != nil {
						t.Errorf("rooms(first: 3): %v", err)
						break
					}
					got = append(got, p.Rooms.Edges...)
					if (p.Rooms.PageInfo.HasPreviousPage) != (after != nil && dirSeq(*after) >= dirSeq(full.Rooms.Edges[0].Cursor)) {
						t.Errorf("client %q replica %d: hasPreviousPage %v after %v", c.user, i, p.Rooms.PageInfo.HasPreviousPage, after)
					}
					if !p.Rooms.PageInfo.HasNextPage {
						break
					}
					after = p.Rooms.PageInfo.EndCursor
				}
				if !slices.Equal(got, want) {
					t.Errorf("client %q replica %d: paged from %v\n   %v\n want\n   %v", c.user, i, start, got, want)
				}
			}
		}
	}
}
