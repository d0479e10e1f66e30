package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Centrifugo (issue 14): --transport centrifugo drives a Centrifugo server
// with the same runs as Herald, so that the two can be compared. Each
// subscriber is a WebSocket speaking Centrifugo's JSON client protocol
// (protocol v2): a connect command, then one subscribe command per
// subscription, the room's name being the channel's. Events are published
// through Centrifugo's HTTP API, their data carrying the same text the
// GraphQL servers' events carry ({"text":"lg|<room>|<seq>|<sent>"}), so
// that latency, losses, duplicates and order are checked the same way.
// Centrifugo has no rooms to create: a channel exists while it has
// subscribers.

// transportCentrifugo selects Centrifugo's client protocol.
const transportCentrifugo = "centrifugo"

// Centrifugo's endpoints, under the base URL given as --url (and
// --publish-url).
const (
	centrifugoWSPath      = "/connection/websocket"
	centrifugoPublishPath = "/api/publish"
)

// centrifugoConnectID is the connect command's id; subscription j (from 0)
// is subscribed with command id j+centrifugoFirstSubID.
const (
	centrifugoConnectID   = 1
	centrifugoFirstSubID  = 2
	centrifugoPingMessage = "{}"
)

// centrifugoEndpoint is path under the base URL base (a trailing slash of
// base ignored), with ws(s) for http(s) if ws is set.
func centrifugoEndpoint(base, path string, ws bool) string {
	u := strings.TrimRight(base, "/") + path
	if ws {
		u = "ws" + strings.TrimPrefix(u, "http")
	}
	return u
}

// messages yields the messages of one WebSocket frame: Centrifugo's JSON
// protocol puts several in one frame, one a line. Empty lines are skipped.
func messages(frame []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for line := range bytes.SplitSeq(frame, []byte{'\n'}) {
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if len(line) > 0 && !yield(line) {
				return
			}
		}
	}
}

// cfKind is what a message of Centrifugo's JSON protocol is.
type cfKind int

const (
	cfUnknown     cfKind = iota // not understood
	cfPing                      // {}: the server's ping (answered with {})
	cfPub                       // a publication pushed on channel
	cfReply                     // a successful reply to command id
	cfError                     // an error reply to command id
	cfUnsubscribe               // the server ended the subscription to channel
	cfDisconnect                // the server is disconnecting the client
	cfOtherPush                 // a push the load generator does not use (join, leave, …)
)

// cfMessage is one parsed message; channel is a slice of the message
// unless it had to be decoded.
type cfMessage struct {
	kind    cfKind
	id      uint32
	channel []byte
	detail  string // an error's or a disconnect's code and text
}

var (
	cfPushChannel = []byte(`{"push":{"channel":"`)
	cfPubField    = []byte(`,"pub":`)
)

// parseCentrifugo parses one message. A publication, the message that
// thousands of readers see, is recognised by its first bytes without a
// decoder (Centrifugo writes push, channel and pub in that order);
// anything else is decoded.
func parseCentrifugo(msg []byte) cfMessage {
	if string(msg) == centrifugoPingMessage {
		return cfMessage{kind: cfPing}
	}
	if rest, ok := bytes.CutPrefix(msg, cfPushChannel); ok {
		// A channel with an escape in it is left to the decoder.
		if q := bytes.IndexByte(rest, '"'); q >= 0 && bytes.IndexByte(rest[:q], '\\') < 0 && bytes.HasPrefix(rest[q+1:], cfPubField) {
			return cfMessage{kind: cfPub, channel: rest[:q]}
		}
	}
	return decodeCentrifugo(msg)
}

// decodeCentrifugo is parseCentrifugo's slow path.
func decodeCentrifugo(msg []byte) cfMessage {
	var m struct {
		ID    uint32 `json:"id"`
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		Push *struct {
			Channel     string          `json:"channel"`
			Pub         json.RawMessage `json:"pub"`
			Unsubscribe json.RawMessage `json:"unsubscribe"`
			Disconnect  *struct {
				Code   int    `json:"code"`
				Reason string `json:"reason"`
			} `json:"disconnect"`
		} `json:"push"`
	}
	var rest map[string]json.RawMessage // the fields besides these, to tell a ping
	if json.Unmarshal(msg, &m) != nil || json.Unmarshal(msg, &rest) != nil {
		return cfMessage{kind: cfUnknown}
	}
	switch p := m.Push; {
	case m.Error != nil:
		return cfMessage{kind: cfError, id: m.ID, detail: fmt.Sprintf("%d %s", m.Error.Code, m.Error.Message)}
	case p != nil && len(p.Pub) > 0:
		return cfMessage{kind: cfPub, channel: []byte(p.Channel)}
	case p != nil && len(p.Unsubscribe) > 0:
		return cfMessage{kind: cfUnsubscribe, channel: []byte(p.Channel), detail: string(p.Unsubscribe)}
	case p != nil && p.Disconnect != nil:
		return cfMessage{kind: cfDisconnect, detail: fmt.Sprintf("%d %s", p.Disconnect.Code, p.Disconnect.Reason)}
	case p != nil:
		return cfMessage{kind: cfOtherPush, channel: []byte(p.Channel)}
	case m.ID != 0:
		return cfMessage{kind: cfReply, id: m.ID}
	case len(rest) == 0:
		return cfMessage{kind: cfPing}
	}
	return cfMessage{kind: cfUnknown}
}

// connectCentrifugo opens WebSocket i to Centrifugo, connects (waiting for
// the reply within the handshake timeout) and subscribes to its rooms'
// channels; their replies are read by the connection's reader.
func (r *run) connectCentrifugo(ctx context.Context, i int) (*conn, error) {
	d := websocket.Dialer{
		NetDialContext:   r.dialer(i).DialContext,
		HandshakeTimeout: r.cfg.HandshakeTimeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
	}
	hctx, cancel := context.WithTimeout(ctx, r.cfg.HandshakeTimeout)
	defer cancel()
	ws, resp, err := d.DialContext(hctx, r.wsURL, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: %w (HTTP %d)", err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	c := &conn{idx: i, proto: transportCentrifugo, ws: ws, done: make(chan struct{})}
	fail := func(err error) (*conn, error) {
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			r.closeCode(ce.Code)
		}
		ws.Close()
		return nil, err
	}
	deadline, _ := hctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	if err := r.centrifugoConnect(c); err != nil {
		return fail(err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	var cmds []byte
	for j := range r.cfg.SubsPerConn {
		room := (i*r.cfg.SubsPerConn + j) % r.cfg.Rooms
		c.subs = append(c.subs, r.newSub(room))
		cmd, err := json.Marshal(map[string]any{"id": j + centrifugoFirstSubID, "subscribe": map[string]any{"channel": r.rooms[room].id}})
		if err != nil {
			return fail(fmt.Errorf("encoding subscribe: %w", err))
		}
		if j > 0 {
			cmds = append(cmds, '\n')
		}
		cmds = append(cmds, cmd...)
	}
	// All subscribe commands in one frame, as Centrifugo's SDKs batch them.
	if err := c.write(cmds); err != nil {
		return fail(fmt.Errorf("subscribe: %w", err))
	}
	go r.read(c)
	return c, nil
}

// centrifugoConnect sends the connect command and reads until its reply,
// answering pings; it notes whether the server wants its pings answered.
func (r *run) centrifugoConnect(c *conn) error {
	cmd := fmt.Sprintf(`{"id":%d,"connect":{"name":"loadgen"}}`, centrifugoConnectID)
	if err := c.write([]byte(cmd)); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	for {
		_, frame, err := c.ws.ReadMessage()
		if err != nil {
			return fmt.Errorf("waiting for the connect reply: %w", err)
		}
		for msg := range messages(frame) {
			m := parseCentrifugo(msg)
			switch {
			case m.kind == cfPing:
				r.centrifugoPong(c)
			case m.kind == cfReply && m.id == centrifugoConnectID:
				var reply struct {
					Connect struct {
						Pong bool `json:"pong"`
					} `json:"connect"`
				}
				if err := json.Unmarshal(msg, &reply); err != nil {
					return fmt.Errorf("connect reply %.200q: %w", msg, err)
				}
				c.pong = reply.Connect.Pong
				return nil
			default:
				return fmt.Errorf("waiting for the connect reply: got %.200s", msg)
			}
		}
	}
}

// centrifugoFrame handles one WebSocket frame from Centrifugo.
func (r *run) centrifugoFrame(c *conn, frame []byte, now time.Time) {
	for msg := range messages(frame) {
		r.centrifugoMessage(c, msg, now)
	}
}

// centrifugoMessage handles one message: a publication is a result of the
// channel's subscription; a ping is answered; an error or the server's
// unsubscribe ends the subscription it concerns.
func (r *run) centrifugoMessage(c *conn, msg []byte, now time.Time) {
	m := parseCentrifugo(msg)
	switch m.kind {
	case cfPub:
		if s := r.subOnChannel(c, m.channel); s != nil {
			r.result(c, s, msg, now)
			return
		}
		if !validJSON(msg) {
			r.badFrame(c, "bad-frame", msg)
			return
		}
		r.stray(c, "unknown-channel", msg)
	case cfPing:
		r.centrifugoPong(c)
	case cfReply, cfOtherPush:
	case cfError:
		if j := int(m.id) - centrifugoFirstSubID; j >= 0 && j < len(c.subs) {
			c.subs[j].dead.Store(true)
		}
		r.errorf("sub-error", "conn %d (%s) command %d: %s", c.idx, c.proto, m.id, m.detail)
	case cfUnsubscribe:
		if s := r.subOnChannel(c, m.channel); s != nil {
			s.dead.Store(true)
		}
		r.errorf("sub-complete", "conn %d (%s): unsubscribed from %s: %s", c.idx, c.proto, m.channel, m.detail)
	case cfDisconnect:
		if !c.closing.Load() {
			r.errorf("closed", "conn %d (%s): disconnected: %s", c.idx, c.proto, m.detail)
		}
	default:
		if !validJSON(msg) {
			r.badFrame(c, "unexpected-frame", msg)
			return
		}
		r.errorf("unexpected-frame", "conn %d: %.200s", c.idx, msg)
	}
}

// subOnChannel is c's subscription to channel, or nil.
func (r *run) subOnChannel(c *conn, channel []byte) *sub {
	for _, s := range c.subs {
		if r.rooms[s.room].id == string(channel) {
			return s
		}
	}
	return nil
}

// centrifugoPong answers a ping, if the connect reply asked for that.
func (r *run) centrifugoPong(c *conn) {
	if !c.pong {
		r.kas.Add(1)
		return
	}
	if err := c.write([]byte(centrifugoPingMessage)); err != nil && !c.closing.Load() {
		r.errorf("pong", "conn %d: %v", c.idx, err)
		return
	}
	r.pings.Add(1)
}

// centrifugoPublish publishes text to channel through Centrifugo's HTTP
// API at target (its base URL).
func (r *run) centrifugoPublish(ctx context.Context, target, channel, text string) error {
	body, err := json.Marshal(map[string]any{"channel": channel, "data": map[string]string{"text": text}})
	if err != nil {
		return fmt.Errorf("encoding the publication: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, centrifugoEndpoint(target, centrifugoPublishPath, false), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	return centrifugoAnswer(resp.StatusCode, b)
}

// centrifugoAnswer checks an HTTP API answer: HTTP 200 with no error in
// the body (Centrifugo answers API errors with 200 by default).
func centrifugoAnswer(status int, body []byte) error {
	var res struct {
		Error *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if status != http.StatusOK {
		return fmt.Errorf("HTTP %d: %.200s", status, body)
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return fmt.Errorf("HTTP %d: %.200s", status, body)
	}
	if res.Error != nil {
		return fmt.Errorf("API error %d: %s", res.Error.Code, res.Error.Message)
	}
	return nil
}
