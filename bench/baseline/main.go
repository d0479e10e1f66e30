// Command baseline is the ceiling for Herald's benchmarks: the least work a
// Go server can do per delivery. It is a minimal gorilla/websocket broadcaster
// that speaks just enough of GraphQL over WebSocket (graphql-transport-ws, and
// the legacy graphql-ws) and of GraphQL over HTTP for the load generator's
// operations, with no GraphQL engine at all:
//
//   - POST /graphql: the mutations createRoom(name) and postMessage(roomId,
//     text). The arguments are found by a string scan of the query: each is a
//     variable ($r, read from "variables") or a plain string literal. The
//     selection set is a flat list of scalar fields (Room: id name; Message:
//     id text roomId; __typename). Anything else is refused.
//   - WebSocket /graphql: connection_init → connection_ack, ping → pong,
//     subscribe to messagePosted(roomId) with a flat selection (id text
//     roomId __typename), complete.
//
// Delivery: a room's subscribers are grouped by what their frame looks like
// (subprotocol, subscription id, selected fields). A post encodes ONE frame
// per group into a websocket.PreparedMessage, whose wire bytes are built once
// and written to every socket of the group. The load generator gives every
// socket's subscription the same id ("1"), so in a benchmark a room has one
// group and each event is encoded exactly once; other ids stay correct, they
// just cost one encoding per distinct id per event.
//
// Each socket has one writer goroutine draining a bounded queue (--queue); a
// socket whose queue is full is closed with 1013, as Herald does. gorilla's
// default buffer sizes are used. No keepalive pings are sent.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

const (
	protoTransportWS = "graphql-transport-ws"
	protoLegacyWS    = "graphql-ws"

	writeTimeout = 10 * time.Second
	// closeTimeout bounds the wait to write a close frame: a slow consumer's
	// socket is stalled, so its 1013 rarely gets through anyway.
	closeTimeout = 250 * time.Millisecond
	readLimit    = 1 << 20
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	queue := flag.Int("queue", 1024, "outbound queue per socket, in frames; a full queue closes the socket with 1013")
	flag.Parse()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: newServer(*queue).mux(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	log.Printf("baseline listening on http://%s/graphql", ln.Addr())
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

type server struct {
	queue    int
	upgrader websocket.Upgrader

	mu    sync.RWMutex
	rooms map[string]*room

	lastRoom, lastMessage atomic.Int64
}

func newServer(queue int) *server {
	if queue < 1 {
		queue = 1
	}
	return &server{
		queue: queue,
		upgrader: websocket.Upgrader{
			// Default ReadBufferSize/WriteBufferSize (4096).
			Subprotocols: []string{protoTransportWS, protoLegacyWS},
			CheckOrigin:  func(*http.Request) bool { return true },
		},
		rooms: map[string]*room{},
	}
}

func (s *server) mux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/graphql", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case websocket.IsWebSocketUpgrade(r):
			s.serveWS(w, r)
		case r.Method == http.MethodPost:
			s.serveHTTP(w, r)
		default:
			w.Header().Set("Allow", "POST")
			http.Error(w, "POST or WebSocket only", http.StatusMethodNotAllowed)
		}
	})
	return mux
}

func (s *server) room(id string) *room {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rooms[id]
}

// A room holds its subscribers, grouped by frame shape.
type room struct {
	id, name string

	mu     sync.RWMutex
	groups map[groupKey]*group
}

// groupKey is what makes two subscribers' frames for one event identical.
type groupKey struct {
	proto  string
	id     string // the subscription id, chosen by the client
	fields string // the selection, comma-separated
}

type group struct {
	prefix []byte // `{"id":"1","type":"next","payload":{"data":{"messagePosted":`
	fields []string
	conns  map[*conn]struct{}
}

type message struct{ id, text, roomID string }

// publish writes one frame per group of the room to all its sockets.
func (r *room) publish(m message) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, g := range r.groups {
		buf := make([]byte, 0, len(g.prefix)+len(m.text)+64)
		buf = append(buf, g.prefix...)
		buf = appendObject(buf, g.fields, m.field)
		buf = append(buf, "}}}"...)
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, buf)
		if err != nil {
			continue // cannot happen without compression
		}
		for c := range g.conns {
			c.send(pm)
		}
	}
}

func (m message) field(name string) string {
	switch name {
	case "id":
		return m.id
	case "text":
		return m.text
	case "roomId":
		return m.roomID
	}
	return "Message" // __typename
}

func (r *room) field(name string) string {
	switch name {
	case "id":
		return r.id
	case "name":
		return r.name
	}
	return "Room" // __typename
}

// appendObject appends {"f1":"v1",...}; every value is a string.
func appendObject(buf []byte, fields []string, value func(string) string) []byte {
	buf = append(buf, '{')
	for i, f := range fields {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, f)
		buf = append(buf, ':')
		buf = appendJSONString(buf, value(f))
	}
	return append(buf, '}')
}

func appendJSONString(buf []byte, s string) []byte {
	b, _ := json.Marshal(s) // json.Marshal of a string cannot fail
	return append(buf, b...)
}

// ---- GraphQL over HTTP ----------------------------------------------------

const (
	nameRE   = `[_A-Za-z][_0-9A-Za-z]*`
	stringRE = `"(?:[^"\\]|\\.)*"`
	valueRE  = `\$` + nameRE + `|` + stringRE
	// A field's argument list, and its flat selection set.
	argsRE = `\(((?:[^()"]|` + stringRE + `)*)\)`
	setRE  = `\{([^{}]*)\}`
)

var (
	createRoomRE    = regexp.MustCompile(`\bcreateRoom\s*` + argsRE + `\s*` + setRE)
	postMessageRE   = regexp.MustCompile(`\bpostMessage\s*` + argsRE + `\s*` + setRE)
	messagePostedRE = regexp.MustCompile(`\bmessagePosted\s*` + argsRE + `\s*` + setRE)
	argRE           = regexp.MustCompile(`(` + nameRE + `)\s*:\s*(` + valueRE + `)`)
	fieldSepRE      = regexp.MustCompile(`[\s,]+`)
)

// body is the query from its first '{' on: the operation's selection set,
// past the operation name and variable definitions (a mutation may be named
// postMessage too).
func body(query string) string {
	if i := strings.IndexByte(query, '{'); i >= 0 {
		return query[i:]
	}
	return ""
}

type request struct {
	Query     string                     `json:"query"`
	Variables map[string]json.RawMessage `json:"variables"`
}

// args reads the arguments of a field: each a variable or a string literal.
func args(list string, vars map[string]json.RawMessage) (map[string]string, error) {
	out := map[string]string{}
	for _, m := range argRE.FindAllStringSubmatch(list, -1) {
		raw := []byte(m[2])
		if m[2][0] == '$' {
			v, ok := vars[m[2][1:]]
			if !ok {
				return nil, fmt.Errorf("variable %s is not provided", m[2])
			}
			raw = v
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("argument %s must be a string", m[1])
		}
		out[m[1]] = s
	}
	return out, nil
}

// selection parses a flat selection set against the allowed scalar fields.
func selection(set string, allowed ...string) ([]string, error) {
	var fields []string
	for _, f := range fieldSepRE.Split(strings.TrimSpace(set), -1) {
		if f == "" {
			continue
		}
		ok := f == "__typename"
		for _, a := range allowed {
			ok = ok || f == a
		}
		if !ok {
			return nil, fmt.Errorf("field %q is not supported by the baseline", f)
		}
		dup := false
		for _, g := range fields {
			dup = dup || g == f
		}
		if !dup {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 {
		return nil, errors.New("a selection set is required")
	}
	return fields, nil
}

func (s *server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// X-Herald-User is accepted and ignored.
	var req request
	if err := json.NewDecoder(io.LimitReader(r.Body, readLimit)).Decode(&req); err != nil {
		writeErrors(w, http.StatusBadRequest, "invalid JSON body")
		return
	}
	var (
		out []byte
		err error
	)
	if m := createRoomRE.FindStringSubmatch(body(req.Query)); m != nil {
		out, err = s.createRoom(m[1], m[2], req.Variables)
	} else if m := postMessageRE.FindStringSubmatch(body(req.Query)); m != nil {
		out, err = s.postMessage(m[1], m[2], req.Variables)
	} else {
		writeErrors(w, http.StatusBadRequest, "the baseline serves only the mutations createRoom and postMessage")
		return
	}
	if err != nil {
		writeErrors(w, http.StatusOK, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func writeErrors(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	buf := appendJSONString([]byte(`{"errors":[{"message":`), msg)
	_, _ = w.Write(append(buf, "}],\"data\":null}"...))
}

func (s *server) createRoom(argList, set string, vars map[string]json.RawMessage) ([]byte, error) {
	a, err := args(argList, vars)
	if err != nil {
		return nil, err
	}
	name, ok := a["name"]
	if !ok {
		return nil, errors.New("createRoom: name is required")
	}
	fields, err := selection(set, "id", "name")
	if err != nil {
		return nil, err
	}
	rm := &room{id: "r" + strconv.FormatInt(s.lastRoom.Add(1), 10), name: name, groups: map[groupKey]*group{}}
	s.mu.Lock()
	s.rooms[rm.id] = rm
	s.mu.Unlock()
	buf := appendObject([]byte(`{"data":{"createRoom":`), fields, rm.field)
	return append(buf, "}}"...), nil
}

func (s *server) postMessage(argList, set string, vars map[string]json.RawMessage) ([]byte, error) {
	a, err := args(argList, vars)
	if err != nil {
		return nil, err
	}
	roomID, ok1 := a["roomId"]
	text, ok2 := a["text"]
	if !ok1 || !ok2 {
		return nil, errors.New("postMessage: roomId and text are required")
	}
	fields, err := selection(set, "id", "text", "roomId")
	if err != nil {
		return nil, err
	}
	rm := s.room(roomID)
	if rm == nil {
		return nil, fmt.Errorf("room %q not found", roomID)
	}
	m := message{id: "m" + strconv.FormatInt(s.lastMessage.Add(1), 10), text: text, roomID: roomID}
	rm.publish(m)
	buf := appendObject([]byte(`{"data":{"postMessage":`), fields, m.field)
	return append(buf, "}}"...), nil
}

// ---- GraphQL over WebSocket -----------------------------------------------

var (
	ackFrame  = mustPrepare(`{"type":"connection_ack"}`)
	pongFrame = mustPrepare(`{"type":"pong"}`)
	kaFrame   = mustPrepare(`{"type":"ka"}`)
)

func mustPrepare(s string) *websocket.PreparedMessage {
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, []byte(s))
	if err != nil {
		panic(err)
	}
	return pm
}

type conn struct {
	ws    *websocket.Conn
	proto string
	out   chan *websocket.PreparedMessage
	done  chan struct{}
	once  sync.Once

	// Owned by the reading goroutine.
	inited bool
	subs   map[string]subscription
}

type subscription struct {
	room *room
	key  groupKey
}

// send queues a frame without blocking; a full queue closes the socket.
func (c *conn) send(pm *websocket.PreparedMessage) {
	select {
	case c.out <- pm:
	case <-c.done:
	default:
		c.close(websocket.CloseTryAgainLater, "slow consumer")
	}
}

// close ends the socket once, with a close frame when code is not 0.
func (c *conn) close(code int, reason string) {
	c.once.Do(func() {
		close(c.done)
		go func() {
			if code != 0 {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeTimeout))
			}
			_ = c.ws.Close()
		}()
	})
}

func (c *conn) writeLoop() {
	for {
		select {
		case pm := <-c.out:
			_ = c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
			if err := c.ws.WritePreparedMessage(pm); err != nil {
				c.close(0, "")
				return
			}
		case <-c.done:
			return
		}
	}
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	offered := false
	for _, p := range websocket.Subprotocols(r) {
		offered = offered || p == protoTransportWS || p == protoLegacyWS
	}
	if !offered {
		http.Error(w, "subprotocol graphql-transport-ws or graphql-ws required", http.StatusBadRequest)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	ws.SetReadLimit(readLimit)
	c := &conn{
		ws:    ws,
		proto: ws.Subprotocol(),
		out:   make(chan *websocket.PreparedMessage, s.queue),
		done:  make(chan struct{}),
		subs:  map[string]subscription{},
	}
	go c.writeLoop()
	defer func() {
		for id := range c.subs {
			s.unsubscribe(c, id)
		}
		c.close(0, "")
	}()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		if code, reason := s.handle(c, data); code != 0 {
			c.close(code, reason)
			return
		}
	}
}

type frame struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// handle acts on one client frame; a non-zero code closes the socket.
func (s *server) handle(c *conn, data []byte) (int, string) {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return 4400, "invalid message"
	}
	legacy := c.proto == protoLegacyWS
	switch {
	case f.Type == "connection_init":
		if c.inited {
			return 4429, "too many initialisation requests"
		}
		c.inited = true
		c.send(ackFrame)
		if legacy {
			c.send(kaFrame)
		}
	case f.Type == "ping" && !legacy:
		c.send(pongFrame)
	case f.Type == "pong" && !legacy:
	case f.Type == "subscribe" && !legacy, f.Type == "start" && legacy:
		if !c.inited {
			return 4401, "unauthorized"
		}
		if f.ID == "" {
			return 4400, "invalid message"
		}
		if _, dup := c.subs[f.ID]; dup {
			return 4409, "subscriber for " + f.ID + " already exists"
		}
		if err := s.subscribe(c, f.ID, f.Payload); err != nil {
			c.sendError(f.ID, err.Error())
		}
	case f.Type == "complete" && !legacy, f.Type == "stop" && legacy:
		if _, ok := c.subs[f.ID]; ok {
			s.unsubscribe(c, f.ID)
			if legacy {
				c.sendComplete(f.ID)
			}
		}
	case f.Type == "connection_terminate" && legacy:
		return websocket.CloseNormalClosure, ""
	default:
		return 4400, "invalid message type " + strconv.Quote(f.Type)
	}
	return 0, ""
}

func (c *conn) sendError(id, msg string) {
	buf := appendJSONString([]byte(`{"id":`), id)
	if c.proto == protoLegacyWS {
		buf = append(buf, `,"type":"error","payload":{"message":`...)
		buf = append(appendJSONString(buf, msg), "}}"...)
	} else {
		buf = append(buf, `,"type":"error","payload":[{"message":`...)
		buf = append(appendJSONString(buf, msg), "}]}"...)
	}
	c.send(mustPrepare(string(buf)))
}

func (c *conn) sendComplete(id string) {
	buf := appendJSONString([]byte(`{"id":`), id)
	c.send(mustPrepare(string(append(buf, `,"type":"complete"}`...))))
}

func (s *server) subscribe(c *conn, id string, payload json.RawMessage) error {
	var req request
	if err := json.Unmarshal(payload, &req); err != nil {
		return errors.New("invalid subscribe payload")
	}
	m := messagePostedRE.FindStringSubmatch(body(req.Query))
	if m == nil {
		return errors.New("the baseline serves only the subscription messagePosted")
	}
	a, err := args(m[1], req.Variables)
	if err != nil {
		return err
	}
	roomID, ok := a["roomId"]
	if !ok {
		return errors.New("messagePosted: roomId is required")
	}
	fields, err := selection(m[2], "id", "text", "roomId")
	if err != nil {
		return err
	}
	rm := s.room(roomID)
	if rm == nil {
		return fmt.Errorf("room %q not found", roomID)
	}
	key := groupKey{proto: c.proto, id: id, fields: strings.Join(fields, ",")}
	rm.mu.Lock()
	g := rm.groups[key]
	if g == nil {
		typ := "next"
		if c.proto == protoLegacyWS {
			typ = "data"
		}
		var prefix bytes.Buffer
		prefix.WriteString(`{"id":`)
		prefix.Write(appendJSONString(nil, id))
		prefix.WriteString(`,"type":"` + typ + `","payload":{"data":{"messagePosted":`)
		g = &group{prefix: prefix.Bytes(), fields: fields, conns: map[*conn]struct{}{}}
		rm.groups[key] = g
	}
	g.conns[c] = struct{}{}
	rm.mu.Unlock()
	c.subs[id] = subscription{room: rm, key: key}
	return nil
}

func (s *server) unsubscribe(c *conn, id string) {
	sub := c.subs[id]
	delete(c.subs, id)
	rm := sub.room
	rm.mu.Lock()
	if g := rm.groups[sub.key]; g != nil {
		delete(g.conns, c)
		if len(g.conns) == 0 {
			delete(rm.groups, sub.key)
		}
	}
	rm.mu.Unlock()
}
