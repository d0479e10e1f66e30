package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// sub is one client's subscription to one room.
type sub struct {
	room   *room
	cursor string // extensions.cursor of the last event received (the seed's at first)
	next   int    // the n of the next "<room>:<n>" expected

	received     int
	lastAt       time.Time
	maxGap       time.Duration
	maxGapBefore string
	latencies    []time.Duration
}

// transport is how a client subscribes.
type transport int

const (
	overWebSocket transport = iota // graphql-transport-ws, every room on one socket
	overSSE                        // graphql-sse distinct connections: a stream per room
	overMultipart                  // Apollo's multipart subscriptions: a stream per room
)

// client is one WebSocket client, or one HTTP-stream client (SSE or
// multipart: a stream per room); it reconnects until its context ends.
type client struct {
	n    int
	url  string // ws://…/graphql, or http://…/graphql for an HTTP-stream client
	kind transport
	http *http.Client // HTTP-stream clients
	cfg  config
	rep  *report

	everConnected atomic.Bool

	mu         sync.Mutex // guards what follows; held briefly by the reader
	subs       []*sub
	connected  bool
	connects   int
	reconnects int
	closes     map[string]int // why sockets ended
	lastReason string
	lastEnd    time.Time // when the last acknowledged socket ended
	maxOutage  time.Duration
}

// wsMessage is a graphql-transport-ws message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

const subscription = `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`

func (c *client) run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	var downSince time.Time // when the last working socket ended
	for ctx.Err() == nil {
		began := time.Now()
		session := c.session
		if c.kind != overWebSocket {
			session = c.streamSession
		}
		reason, acked, stop := session(ctx)
		if stop || ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.connected = false
		c.reconnects++
		c.closes[reason]++
		c.lastReason = reason
		c.mu.Unlock()
		if acked {
			downSince = time.Now()
			if time.Since(began) > 2*time.Second {
				backoff = 100 * time.Millisecond
			}
		} else if downSince.IsZero() {
			downSince = began
		}
		if time.Since(downSince) > c.cfg.reconnectLimit {
			c.rep.abort("client %d could not reconnect for %s; last attempt: %s", c.n, c.cfg.reconnectLimit, reason)
			return
		}
		// Jittered, bounded exponential backoff; after a working socket,
		// some clients stay away longer so that there is more to replay.
		d := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, 2*time.Second)
		if acked {
			d += time.Duration(c.n%4) * c.cfg.stagger
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return
		}
	}
}

// session is one socket: connect, init, subscribe every room after its
// cursor, then read until the socket ends. It returns why it ended, whether
// the server acknowledged the connection, and whether the client must stop
// (a fatal violation was recorded).
func (c *client) session(ctx context.Context) (reason string, acked, stop bool) {
	dialer := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := dialer.DialContext(ctx, c.url, nil)
	if err != nil {
		if resp != nil {
			return "dial: http " + strconv.Itoa(resp.StatusCode), false, false
		}
		return "dial: " + classifyNetErr(err), false, false
	}
	defer ws.Close()
	if ws.Subprotocol() != "graphql-transport-ws" {
		c.rep.abort("client %d: server chose subprotocol %q", c.n, ws.Subprotocol())
		return "", false, true
	}
	// Unblock the reader when the run ends.
	sessionDone := make(chan struct{})
	defer close(sessionDone)
	go func() {
		select {
		case <-ctx.Done():
			_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			_ = ws.SetReadDeadline(time.Now())
		case <-sessionDone:
		}
	}()
	write := func(m any) error {
		_ = ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
		return ws.WriteJSON(m)
	}
	read := func(timeout time.Duration) (wsMessage, error) {
		var m wsMessage
		_ = ws.SetReadDeadline(time.Now().Add(timeout))
		_, data, err := ws.ReadMessage()
		if err != nil {
			return m, err
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return m, fmt.Errorf("undecodable message %q: %w", clip(string(data), 200), err)
		}
		return m, nil
	}

	user := fmt.Sprintf("client-%d", c.n)
	if err := write(map[string]any{"type": "connection_init", "payload": map[string]any{"user": user}}); err != nil {
		return "init: " + endReason(err), false, false
	}
	for {
		m, err := read(5 * time.Second)
		if err != nil {
			return "init: " + endReason(err), false, false
		}
		if m.Type == "ping" {
			if err := write(map[string]any{"type": "pong"}); err != nil {
				return "init: " + endReason(err), false, false
			}
			continue
		}
		if m.Type != "connection_ack" {
			c.rep.abort("client %d: got %q instead of connection_ack", c.n, m.Type)
			return "", false, true
		}
		break
	}

	// Subscribe every room after its last cursor. Ids carry the
	// connection number, for the messages below.
	c.mu.Lock()
	c.connects++
	conn := c.connects
	byID := map[string]*sub{}
	type subscribe struct {
		id, cursor, roomID string
	}
	var subscribes []subscribe
	for _, s := range c.subs {
		id := fmt.Sprintf("%s.%d", s.room.label, conn)
		byID[id] = s
		cursor := s.cursor
		if conn > 1 && !c.cfg.resume {
			cursor = ""
		}
		subscribes = append(subscribes, subscribe{id, cursor, s.room.id})
	}
	c.mu.Unlock()
	for _, s := range subscribes {
		vars := map[string]any{"r": s.roomID}
		if s.cursor != "" {
			vars["after"] = s.cursor
		}
		err := write(map[string]any{"id": s.id, "type": "subscribe", "payload": map[string]any{
			"query": subscription, "variables": vars,
		}})
		if err != nil {
			return "subscribe: " + endReason(err), true, false
		}
	}
	c.markConnected(conn)
	defer func() {
		c.mu.Lock()
		c.lastEnd = time.Now()
		c.mu.Unlock()
	}()

	for {
		m, err := read(c.cfg.readTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return "", true, true
			}
			return endReason(err), true, false
		}
		switch m.Type {
		case "ping":
			if err := write(map[string]any{"type": "pong"}); err != nil {
				return endReason(err), true, false
			}
		case "pong":
		case "next":
			s := byID[m.ID]
			if s == nil {
				c.rep.violation("client %d connection %d: next for unknown id %q", c.n, conn, m.ID)
				continue
			}
			c.deliver(s, conn, m.Payload)
		case "error":
			s := byID[m.ID]
			var errs []gqlError
			_ = json.Unmarshal(m.Payload, &errs)
			code, msg := "no code", string(m.Payload)
			if len(errs) > 0 {
				code, msg = errs[0].Extensions.Code, errs[0].Message
			}
			label, cursor := "?", ""
			if s != nil {
				c.mu.Lock()
				label, cursor = s.room.label, s.cursor
				c.mu.Unlock()
			}
			if permanent[code] || code == "" {
				c.rep.abort("client %d room %s: subscribe after cursor %q rejected: %s %s", c.n, label, cursor, code, msg)
				return "", true, true
			}
			// Transient (e.g. a replica still catching up): reconnect
			// and subscribe everything again from the cursors.
			c.rep.mu.Lock()
			c.rep.subErrors[code]++
			c.rep.mu.Unlock()
			return "subscribe error " + code, true, false
		case "complete":
			c.rep.mu.Lock()
			c.rep.unexpComplete++
			c.rep.mu.Unlock()
			return "server completed " + m.ID, true, false
		default:
			c.rep.violation("client %d connection %d: unexpected message type %q", c.n, conn, m.Type)
		}
	}
}

// deliver checks one event against what s expects next.
func (c *client) deliver(s *sub, conn int, payload json.RawMessage) {
	now := time.Now()
	var p struct {
		Data *struct {
			MessagePosted *struct{ Text string }
		}
		Errors     []gqlError
		Extensions struct{ Cursor string }
	}
	if err := json.Unmarshal(payload, &p); err != nil || p.Data == nil || p.Data.MessagePosted == nil {
		c.rep.violation("client %d room %s connection %d: next without a message: %s", c.n, s.room.label, conn, clip(string(payload), 300))
		return
	}
	text := p.Data.MessagePosted.Text
	c.mu.Lock()
	defer c.mu.Unlock()
	label, num, ok := strings.Cut(text, ":")
	n, err := strconv.Atoi(num)
	switch {
	case !ok || label != s.room.label || err != nil:
		c.rep.violation("client %d room %s connection %d: got %q, which is not a message of this room after the seed (cursor %q, previous cursor %q)",
			c.n, s.room.label, conn, text, p.Extensions.Cursor, s.cursor)
		return
	case p.Extensions.Cursor == "":
		c.rep.violation("client %d room %s connection %d: %q came without extensions.cursor", c.n, s.room.label, conn, text)
	case n < s.next:
		c.rep.violation("client %d room %s connection %d: %q again or out of order (expected %s:%d next; cursor %q, previous cursor %q)",
			c.n, s.room.label, conn, text, s.room.label, s.next, p.Extensions.Cursor, s.cursor)
		return // keep expecting s.next
	case n > s.next:
		c.rep.violation("client %d room %s connection %d: got %q but expected %s:%d: %s:%d..%d missing (cursor %q, previous cursor %q)",
			c.n, s.room.label, conn, text, s.room.label, s.next, s.room.label, s.next, n-1, p.Extensions.Cursor, s.cursor)
	}
	if p.Extensions.Cursor != "" {
		s.cursor = p.Extensions.Cursor
	}
	s.next = n + 1
	s.received++
	if !s.lastAt.IsZero() {
		if gap := now.Sub(s.lastAt); gap > s.maxGap {
			s.maxGap, s.maxGapBefore = gap, text
		}
	}
	s.lastAt = now
	if n < len(s.room.firstTry) {
		if t := s.room.firstTry[n].Load(); t != 0 {
			s.latencies = append(s.latencies, now.Sub(time.Unix(0, t)))
		}
	}
}

// endReason names why a socket ended: its close code, or the kind of error.
func endReason(err error) string {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return "close " + strconv.Itoa(ce.Code)
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return "silent past -read-timeout"
	}
	if errors.Is(err, websocket.ErrBadHandshake) {
		return "bad handshake"
	}
	return classifyNetErr(err)
}
