package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/chat"
)

// A seeded, model-based test of one WebSocket session's operation
// lifecycle on both subprotocols: random interleavings of subscribes (the
// same and different documents and variables, so shared executions are
// joined and left), client completes, id reuse, duplicate ids, queries,
// mutations, refused operations, events published meanwhile, pings and
// sockets closed at random points. Each seed is printed so a failure
// replays with HERALD_WSMODEL_SEED.

// The subscription documents; each (document, room) pair is one shared
// execution, whoever subscribes.
var wsModelDocs = []string{
	`subscription($r: ID!) { messagePosted(roomId: $r) { text } }`,
	`subscription($r: ID!) { messagePosted(roomId: $r) { text author { id } } }`,
	`subscription($r: ID!) { roomEvents(roomId: $r) { message { text } } }`,
	`subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`,
	`subscription($r: ID!, $after: String) { roomEvents(roomId: $r, after: $after) { message { text } } }`,
}

// wsmResumable are the documents that take a cursor.
var wsmResumable = []int{3, 4}

const (
	wsmSub    = iota // a live subscription: never ends by itself
	wsmSingle        // ends by itself with exactly one terminal (query, mutation, refused, failing)
)

type wsmOp struct {
	id       string
	kind     int
	what     string // for messages
	room     string
	doc      int
	expect   []string // texts a subscription must receive, in order
	got      int
	nexts    int
	ended    bool // terminal received
	replaced bool // legacy: stopped silently by a start with its id
	// completed: the client completed it; frames may still arrive until
	// the next barrier (fenced), after which none may.
	completed bool
	fenced    bool
	prefixOK  bool // completed during a burst: any prefix of expect is fine
	// handoff: a resumed subscription whose private replay may still run
	// (it is retired at the first live result after the replay).
	handoff, settled bool
}

func (o *wsmOp) live() bool { return o.kind == wsmSub && !o.ended && !o.completed && !o.replaced }

type wsmSock struct {
	name   string
	legacy bool
	user   string
	c      *wsClient
	frames chan frame
	rerr   chan error
	ops    map[string]*wsmOp // the current operation of each id
	all    []*wsmOp
	n      int
}

type wsmRun struct {
	t     *testing.T
	seed  int64
	rng   *rand.Rand
	r     *replica
	rooms []string
	socks []*wsmSock
	posts int
	// history is each room's posted texts in order; cursors the cursor
	// each text was delivered with.
	history map[string][]string
	cursors map[string]string
	dialed  int
	trace   []string
}

func (m *wsmRun) fail(format string, args ...any) {
	m.t.Helper()
	tail := m.trace
	if len(tail) > 25 {
		tail = tail[len(tail)-25:]
	}
	m.t.Fatalf("seed %d: %s\nlast steps:\n  %s", m.seed, fmt.Sprintf(format, args...), strings.Join(tail, "\n  "))
}

func (m *wsmRun) note(format string, args ...any) {
	m.trace = append(m.trace, fmt.Sprintf(format, args...))
}

func (m *wsmRun) dial(legacy bool) *wsmSock {
	m.dialed++
	user := fmt.Sprintf("u%d", m.dialed%3)
	s := &wsmSock{legacy: legacy, user: user, frames: make(chan frame, 4096), rerr: make(chan error, 1), ops: map[string]*wsmOp{}}
	if legacy {
		s.c = m.r.dialLegacy(user)
		s.name = fmt.Sprintf("legacy#%d", m.dialed)
	} else {
		s.c = m.r.dialTransport(user)
		s.name = fmt.Sprintf("transport#%d", m.dialed)
	}
	conn := s.c.conn
	go func() {
		for {
			_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
			kind, data, err := conn.ReadMessage()
			if err != nil {
				s.rerr <- err
				close(s.frames)
				return
			}
			if kind != websocket.TextMessage {
				continue
			}
			var f frame
			if json.Unmarshal(data, &f) != nil {
				f = frame{Type: "<not json>"}
			}
			f.raw = string(data)
			s.frames <- f
		}
	}()
	m.note("dial %s as %s", s.name, user)
	return s
}

func (s *wsmSock) startType() string {
	if s.legacy {
		return "start"
	}
	return "subscribe"
}

func (s *wsmSock) stopType() string {
	if s.legacy {
		return "stop"
	}
	return "complete"
}

func (s *wsmSock) nextType() string {
	if s.legacy {
		return "data"
	}
	return "next"
}

// wsmEventText finds the message text in an event's data.
func wsmEventText(f frame) (string, error) {
	var p struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []any                      `json:"errors"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		return "", err
	}
	if len(p.Errors) > 0 {
		return "", fmt.Errorf("errors in event %s", f.raw)
	}
	var v struct {
		Text    string `json:"text"`
		Message struct {
			Text string `json:"text"`
		} `json:"message"`
	}
	for _, raw := range p.Data {
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", err
		}
	}
	if v.Text != "" {
		return v.Text, nil
	}
	if v.Message.Text != "" {
		return v.Message.Text, nil
	}
	return "", fmt.Errorf("no text in %s", f.raw)
}

// apply checks one frame against the model.
func (m *wsmRun) apply(s *wsmSock, f frame) {
	m.t.Helper()
	if f.keepalive() {
		return
	}
	if f.ID == "" {
		m.fail("%s: unexpected connection-level frame %s", s.name, f.raw)
	}
	op := s.ops[f.ID]
	switch {
	case op == nil:
		m.fail("%s: frame for id %q never used: %s", s.name, f.ID, f.raw)
	case op.ended:
		m.fail("%s: frame for %q (%s) after its terminal: %s", s.name, f.ID, op.what, f.raw)
	case op.fenced:
		m.fail("%s: frame for %q (%s) after the client completed it: %s", s.name, f.ID, op.what, f.raw)
	case op.replaced:
		m.fail("%s: frame for %q (%s) after a start with its id replaced it: %s", s.name, f.ID, op.what, f.raw)
	}
	switch f.Type {
	case s.nextType():
		op.nexts++
		if op.kind == wsmSingle {
			if op.nexts > 1 {
				m.fail("%s: second result for single operation %q (%s): %s", s.name, f.ID, op.what, f.raw)
			}
			return
		}
		text, err := wsmEventText(f)
		if err != nil {
			m.fail("%s: %q (%s): %v", s.name, f.ID, op.what, err)
		}
		if op.got >= len(op.expect) {
			m.fail("%s: %q (%s) got %q beyond the %d expected %v", s.name, f.ID, op.what, text, len(op.expect), op.expect)
		}
		if text != op.expect[op.got] {
			m.fail("%s: %q (%s) event %d is %q, want %q (expected %v)", s.name, f.ID, op.what, op.got, text, op.expect[op.got], op.expect)
		}
		op.got++
		var ext struct {
			Extensions struct {
				Cursor string `json:"cursor"`
			} `json:"extensions"`
		}
		if json.Unmarshal(f.Payload, &ext) == nil && ext.Extensions.Cursor != "" {
			if c, seen := m.cursors[text]; seen && c != ext.Extensions.Cursor {
				m.fail("%s: %q carries cursor %s, another subscription had %s", s.name, text, ext.Extensions.Cursor, c)
			}
			m.cursors[text] = ext.Extensions.Cursor
		}
	case "complete", "error":
		if op.kind == wsmSub && !op.completed {
			m.fail("%s: live subscription %q (%s) ended by itself: %s", s.name, f.ID, op.what, f.raw)
		}
		if op.kind == wsmSub && op.completed && f.Type == "complete" {
			m.fail("%s: %q (%s) got %s in answer to the client's complete", s.name, f.ID, op.what, f.raw)
		}
		op.ended = true // a single operation's terminal may cross the client's complete
	default:
		m.fail("%s: unexpected frame %s", s.name, f.raw)
	}
}

// pump applies frames of s until done() or the timeout.
func (m *wsmRun) pump(s *wsmSock, what string, done func() bool) {
	m.t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for !done() {
		select {
		case f, ok := <-s.frames:
			if !ok {
				err := <-s.rerr
				s.rerr <- err
				m.fail("%s: socket ended (%v) while waiting for %s", s.name, err, what)
			}
			m.apply(s, f)
		case <-deadline.C:
			m.fail("%s: timed out waiting for %s", s.name, what)
		}
	}
}

// newOp registers an operation under id (replacing the id's old one).
func (m *wsmRun) newOp(s *wsmSock, id string, kind int, what string) *wsmOp {
	op := &wsmOp{id: id, kind: kind, what: what}
	s.ops[id] = op
	s.all = append(s.all, op)
	return op
}

func (m *wsmRun) freshID(s *wsmSock, prefix string) string {
	s.n++
	return fmt.Sprintf("%s%d", prefix, s.n)
}

// single sends a self-ending operation and, if wait, waits for its terminal.
func (m *wsmRun) single(s *wsmSock, id, what, query string, vars map[string]any, wait bool) *wsmOp {
	op := m.newOp(s, id, wsmSingle, what)
	s.c.subscribe(s.startType(), id, query, vars)
	if wait {
		m.pump(s, "the terminal of "+id+" ("+what+")", func() bool { return op.ended })
	}
	return op
}

// barrier runs a query on s and waits for its complete: whatever the
// server decided before reading it has been decided.
func (m *wsmRun) barrier(s *wsmSock) {
	m.t.Helper()
	id := m.freshID(s, "bar")
	m.single(s, id, "barrier query", `{ __typename }`, nil, true)
	for _, op := range s.all {
		if op.completed {
			op.fenced = true
		}
	}
}

func (m *wsmRun) liveSubs() (n, pending int, keys map[string]bool) {
	keys = map[string]bool{}
	for _, s := range m.socks {
		for _, op := range s.ops {
			if op.live() {
				n++
				if op.handoff {
					pending++
				}
				keys[fmt.Sprintf("%d/%s", op.doc, op.room)] = true
			}
		}
	}
	return n, pending, keys
}

// settle waits until every socket has handled what it was sent, every
// subscription has joined, and checks the gauges against the model.
func (m *wsmRun) settle() {
	m.t.Helper()
	for _, s := range m.socks {
		m.barrier(s)
		for _, op := range s.all {
			if op.kind == wsmSingle && !op.ended && !op.completed && !op.replaced {
				m.pump(s, "the terminal of "+op.id+" ("+op.what+")", func() bool { return op.ended })
			}
		}
	}
	n, pending, keys := m.liveSubs()
	for _, s := range m.socks {
		for _, op := range s.ops {
			if op.live() {
				op.settled = true
			}
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		members := m.r.members()
		ops := metricsTestScrape(m.t, m.r)
		gOps, gExecs := ops[`herald_ws_operations`], ops[`herald_shared_executions`]
		if members >= n && members <= n+pending && gOps == float64(n) &&
			gExecs >= float64(len(keys)) && gExecs <= float64(len(keys)+pending) {
			return
		}
		if time.Now().After(deadline) {
			var ks []string
			for k := range keys {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			m.fail("model has %d live subscriptions (%d maybe still replaying) in %d executions %v; server: members=%d herald_ws_operations=%v herald_shared_executions=%v",
				n, pending, len(keys), ks, members, gOps, gExecs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// published records text posted to room and waits for every live
// subscription of the room to receive it.
func (m *wsmRun) published(room string, texts ...string) {
	m.t.Helper()
	m.expectPublished(room, texts...)
	m.awaitPublished(room, texts...)
}

func (m *wsmRun) expectPublished(room string, texts ...string) {
	m.history[room] = append(m.history[room], texts...)
	for _, s := range m.socks {
		for _, op := range s.ops {
			if op.kind == wsmSub && op.room == room && !op.ended && !op.replaced && (op.live() || op.prefixOK) {
				op.expect = append(op.expect, texts...)
				if op.settled {
					op.handoff = false // a live result after the replay retires it
				}
			}
		}
	}
}

func (m *wsmRun) awaitPublished(room string, texts ...string) {
	m.t.Helper()
	for _, s := range m.socks {
		for _, op := range s.ops {
			if op.live() && op.room == room {
				m.pump(s, fmt.Sprintf("events %v for %q (%s)", texts, op.id, op.what), func() bool { return op.got == len(op.expect) })
			}
		}
	}
}

func (m *wsmRun) text() string {
	m.posts++
	return fmt.Sprintf("s%d-e%d", m.seed, m.posts)
}

func (m *wsmRun) pickLive(s *wsmSock) *wsmOp {
	var live []*wsmOp
	for _, op := range s.ops {
		if op.live() {
			live = append(live, op)
		}
	}
	if len(live) == 0 {
		return nil
	}
	sort.Slice(live, func(i, j int) bool { return live[i].id < live[j].id })
	return live[m.rng.Intn(len(live))]
}

// subscribe starts a live subscription under id on s.
func (m *wsmRun) subscribe(s *wsmSock, id string) *wsmOp {
	room := m.rooms[m.rng.Intn(len(m.rooms))]
	doc := m.rng.Intn(len(wsModelDocs))
	op := m.newOp(s, id, wsmSub, fmt.Sprintf("sub doc%d %s", doc, room))
	op.room, op.doc = room, doc
	s.c.subscribe(s.startType(), id, wsModelDocs[doc], map[string]any{"r": room})
	m.note("%s: subscribe %s doc%d room %s", s.name, id, doc, room)
	return op
}

// resume starts a subscription after a cursor of the room's history: it
// must replay what came after, then go on live.
func (m *wsmRun) resume(s *wsmSock, id string) *wsmOp {
	room := m.rooms[m.rng.Intn(len(m.rooms))]
	hist := m.history[room]
	var known []int
	for i, text := range hist {
		if _, ok := m.cursors[text]; ok {
			known = append(known, i)
		}
	}
	if len(known) == 0 {
		return nil
	}
	at := known[m.rng.Intn(len(known))]
	doc := wsmResumable[m.rng.Intn(len(wsmResumable))]
	op := m.newOp(s, id, wsmSub, fmt.Sprintf("resumed doc%d %s after %s", doc, room, hist[at]))
	op.room, op.doc, op.handoff = room, doc, true
	op.expect = append([]string(nil), hist[at+1:]...)
	s.c.subscribe(s.startType(), id, wsModelDocs[doc], map[string]any{"r": room, "after": m.cursors[hist[at]]})
	m.note("%s: resume %s doc%d room %s after %s (%d to replay)", s.name, id, doc, room, hist[at], len(op.expect))
	return op
}

func (m *wsmRun) complete(s *wsmSock, op *wsmOp) {
	s.c.send(map[string]any{"id": op.id, "type": s.stopType()})
	op.completed = true
	m.note("%s: complete %s", s.name, op.id)
}

// replace closes s's socket (abruptly or with a close frame) and dials a
// new one in its place.
func (m *wsmRun) replace(i int, abrupt bool) {
	s := m.socks[i]
	if abrupt {
		_ = s.c.conn.Close()
	} else {
		_ = s.c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
		// Drain until the server's answer.
		timeout := time.After(5 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-s.frames:
				if !ok {
					break drain
				}
			case <-timeout:
				m.fail("%s: no close answer", s.name)
			}
		}
		_ = s.c.conn.Close()
	}
	m.note("%s: closed (abrupt %v)", s.name, abrupt)
	m.socks[i] = m.dial(s.legacy)
}

func (m *wsmRun) step() {
	t := m.t
	t.Helper()
	i := m.rng.Intn(len(m.socks))
	s := m.socks[i]
	switch k := m.rng.Intn(100); {
	case k < 16: // a new subscription
		m.subscribe(s, m.freshID(s, "s"))
		m.settle()
	case k < 22: // a resumed subscription; sometimes completed or published to at once
		op := m.resume(s, m.freshID(s, "r"))
		if op == nil {
			return
		}
		switch m.rng.Intn(3) {
		case 0:
			m.complete(s, op)
			op.prefixOK = true
		case 1:
			text := m.text()
			m.note("post %s to %s during the replay", text, op.room)
			m.r.post(op.room, "poster", text)
			m.expectPublished(op.room, text)
		}
		m.settle()
		if op.live() {
			m.pump(s, "the replay of "+op.id, func() bool { return op.got == len(op.expect) })
		}
		m.settle()
	case k < 32: // complete a subscription, maybe reuse its id at once
		op := m.pickLive(s)
		if op == nil {
			return
		}
		m.complete(s, op)
		if m.rng.Intn(2) == 0 {
			m.subscribe(s, op.id)
		}
		m.settle()
	case k < 36: // a duplicate id
		op := m.pickLive(s)
		if op == nil {
			return
		}
		if s.legacy {
			op.replaced = true
			m.note("%s: start with running id %s", s.name, op.id)
			m.subscribe(s, op.id)
			m.settle()
			return
		}
		m.note("%s: subscribe with running id %s", s.name, op.id)
		s.c.subscribe("subscribe", op.id, wsModelDocs[0], map[string]any{"r": m.rooms[0]})
		m.expectClose(s, 4409)
		m.socks[i] = m.dial(false)
		m.settle()
	case k < 44: // a query
		m.note("%s: query", s.name)
		m.single(s, m.freshID(s, "q"), "query", `{ rooms { nodes { id name } } }`, nil, m.rng.Intn(2) == 0)
	case k < 52: // a mutation over the socket, which publishes too
		room := m.rooms[m.rng.Intn(len(m.rooms))]
		text := m.text()
		m.note("%s: mutation %s to %s", s.name, text, room)
		m.expectPublished(room, text)
		m.single(s, m.freshID(s, "m"), "mutation", `mutation($r: ID!, $t: String!) { postMessage(roomId: $r, text: $t) { id } }`,
			map[string]any{"r": room, "t": text}, true) // answered: stored, so later subscriptions start after it
		m.awaitPublished(room, text)
	case k < 70: // events published meanwhile
		room := m.rooms[m.rng.Intn(len(m.rooms))]
		text := m.text()
		m.note("post %s to %s", text, room)
		m.r.post(room, "poster", text)
		m.published(room, text)
	case k < 75: // a burst with a client complete in the middle
		op := m.pickLive(s)
		if op == nil {
			return
		}
		texts := []string{m.text(), m.text(), m.text(), m.text(), m.text()}
		m.note("%s: burst %v to %s, completing %s meanwhile", s.name, texts, op.room, op.id)
		done := make(chan error, 1)
		go func() {
			for _, text := range texts {
				if _, err := m.r.chat.PostMessage(context.Background(), chat.Actor{ID: "poster"}, op.room, text, ""); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
		time.Sleep(time.Duration(m.rng.Intn(3000)) * time.Microsecond)
		m.complete(s, op)
		op.prefixOK = true
		if err := <-done; err != nil {
			m.fail("post: %v", err)
		}
		m.expectPublished(op.room, texts...)
		m.awaitPublished(op.room, texts...)
		m.settle()
		if op.got > len(op.expect) {
			m.fail("completed %s got more than published", op.id)
		}
	case k < 80: // bad variables
		m.note("%s: bad variables", s.name)
		m.single(s, m.freshID(s, "bv"), "bad variables", wsModelDocs[m.rng.Intn(len(wsModelDocs))], map[string]any{"r": nil}, m.rng.Intn(2) == 0)
	case k < 85: // unknown room
		m.note("%s: unknown room", s.name)
		m.single(s, m.freshID(s, "nf"), "unknown room", wsModelDocs[m.rng.Intn(len(wsModelDocs))], map[string]any{"r": "no-such-room"}, m.rng.Intn(2) == 0)
	case k < 90: // a ping
		if !s.legacy {
			s.c.send(map[string]any{"type": "ping"})
		}
	case k < 94: // complete an operation that may have ended by itself
		id := m.freshID(s, "qc")
		m.note("%s: query completed at once %s", s.name, id)
		op := m.single(s, id, "query completed at once", `{ rooms { nodes { id } } }`, nil, false)
		op.completed = true
		s.c.send(map[string]any{"id": id, "type": s.stopType()})
		m.settle()
	default: // the socket closes
		m.replace(i, m.rng.Intn(2) == 0)
		m.settle()
	}
}

func (m *wsmRun) expectClose(s *wsmSock, code int) {
	m.t.Helper()
	for f := range s.frames {
		m.apply(s, f)
	}
	err := <-s.rerr
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code {
		m.fail("%s ended with %v, want close %d", s.name, err, code)
	}
	_ = s.c.conn.Close()
}

func TestWSSessionAgreesWithModel(t *testing.T) {
	seeds := []int64{1, 2, 3}
	steps := 150
	if v := wsmGetenvInt("HERALD_WSMODEL_SEED"); v != 0 {
		seeds = []int64{int64(v)}
	}
	if v := wsmGetenvInt("HERALD_WSMODEL_STEPS"); v != 0 {
		steps = v
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Logf("seed %d (replay: HERALD_HERALD_WSMODEL_SEED=%d)", seed, seed)
			r := newReplica(t, nil)
			m := &wsmRun{t: t, seed: seed, rng: rand.New(rand.NewSource(seed)), r: r, history: map[string][]string{}, cursors: map[string]string{}}
			m.rooms = []string{r.room(fmt.Sprintf("a%d", seed)), r.room(fmt.Sprintf("b%d", seed))}
			m.socks = []*wsmSock{m.dial(false), m.dial(false), m.dial(true), m.dial(true)}
			started := time.Now()
			for n := 0; n < steps && time.Since(started) < 20*time.Second; n++ {
				m.step()
			}
			m.settle()
			kinds := map[string]int{}
			for _, line := range m.trace {
				for _, k := range []string{"subscribe", "resume", "complete", "running id", "mutation", "post", "burst", "query", "bad variables", "unknown room", "closed"} {
					if strings.Contains(line, k) {
						kinds[k]++
					}
				}
			}
			t.Logf("seed %d: %d steps traced: %v", seed, len(m.trace), kinds)
			for _, s := range m.socks {
				_ = s.c.conn.Close()
			}
			m.socks = nil
			metricsTestZero(t, r, fmt.Sprintf("seed %d: closing every socket", seed))
		})
	}
}

func wsmGetenvInt(name string) int {
	v, _ := strconv.Atoi(os.Getenv(name))
	return v
}
