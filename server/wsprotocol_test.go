package server

// Protocol conformance of the WebSocket transport: graphql-transport-ws
// (the graphql-ws library) and the legacy graphql-ws subprotocol
// (subscriptions-transport-ws). Every message rule and close code is
// asserted on the exact frame or the exact close code, for each protocol
// the rule applies to.
//
// gorilla's client cannot read again after a read deadline has passed, so
// "nothing more arrives" is checked by waiting and then sending a sentinel
// (a ping, or a query) whose answer must be the very next frame.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/internal/testrig"
)

// wspProto describes one subprotocol for table tests.
type wspProto struct {
	name   string // the Sec-WebSocket-Protocol value
	legacy bool
	start  string // subscribe / start
	next   string // next / data
	stop   string // complete / stop
}

var (
	wspTransport = wspProto{name: subprotocolTransportWS, start: "subscribe", next: "next", stop: "complete"}
	wspLegacy    = wspProto{name: subprotocolLegacy, legacy: true, start: "start", next: "data", stop: "stop"}
	wspProtocols = []wspProto{wspTransport, wspLegacy}
)

// dial opens a socket of this protocol and completes init as user.
func (p wspProto) dial(r *replica, user string) *wsClient {
	r.t.Helper()
	if p.legacy {
		return r.dialLegacy(user)
	}
	return r.dialTransport(user)
}

const (
	wspMessagePosted = `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	wspRoomEvents    = `subscription($r: ID!) { roomEvents(roomId: $r) { kind cursor message { text } } }`
	wspViewerQuery   = `query { viewer { id name } }`
	wspSilence       = 200 * time.Millisecond
)

// wspFrame reads the next frame, skipping the given types (keepalive),
// and fails the test if none arrives within 5s.
func wspFrame(c *wsClient, skip ...string) frame {
	c.t.Helper()
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if slices.Contains(skip, f.Type) {
			continue
		}
		return f
	}
}

// wspExpect reads the next frame (skipping ka) and checks its type and id.
func wspExpect(c *wsClient, typ, id string) frame {
	c.t.Helper()
	f := wspFrame(c, "ka")
	if f.Type != typ || f.ID != id {
		c.t.Fatalf("got %s, want a %s message for id %q", f.raw, typ, id)
	}
	return f
}

// wspExpectComplete reads the next frame and checks it is exactly
// {"id":id,"type":"complete"}.
func wspExpectComplete(c *wsClient, id string) {
	c.t.Helper()
	f := wspFrame(c, "ka")
	wspSameJSON(c.t, f.raw, fmt.Sprintf(`{"id":%q,"type":"complete"}`, id))
}

// wspSameJSON fails unless got and want are the same JSON value.
func wspSameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("not JSON: %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("frame\n  %s\nwant\n  %s", got, want)
	}
}

// wspGQLError is one GraphQL error as sent.
type wspGQLError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// wspResultErrors decodes a next/data payload that must carry errors and a null
// data member.
func wspResultErrors(t *testing.T, f frame) []wspGQLError {
	t.Helper()
	var p struct {
		Data   *json.RawMessage `json:"data"`
		Errors []wspGQLError    `json:"errors"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatalf("payload of %s: %v", f.raw, err)
	}
	if len(p.Errors) == 0 || p.Errors[0].Message == "" {
		t.Fatalf("want errors with a message in %s", f.raw)
	}
	if p.Data != nil && string(*p.Data) != "null" {
		t.Fatalf("want data null beside the errors in %s", f.raw)
	}
	return p.Errors
}

// wspCursor returns a payload's extensions.cursor.
func wspCursor(t *testing.T, f frame) string {
	t.Helper()
	var p struct {
		Extensions struct {
			Cursor string `json:"cursor"`
		} `json:"extensions"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil {
		t.Fatalf("payload of %s: %v", f.raw, err)
	}
	if p.Extensions.Cursor == "" {
		t.Fatalf("no extensions.cursor in %s", f.raw)
	}
	return p.Extensions.Cursor
}

// wspExpectClose reads until the server closes the socket and checks the
// code. Any message before the close whose type is not in skip fails the
// test. It returns the close reason and when the close arrived.
func wspExpectClose(c *wsClient, code int, within time.Duration, skip ...string) (string, time.Time) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(within))
	for {
		_, data, err := c.conn.ReadMessage()
		if err == nil {
			var f frame
			_ = json.Unmarshal(data, &f)
			if slices.Contains(skip, f.Type) {
				continue
			}
			c.t.Fatalf("got %s, want the socket closed with %d", data, code)
		}
		at := time.Now()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			c.t.Fatalf("socket ended with %v, want close code %d", err, code)
		}
		if ce.Code != code {
			c.t.Fatalf("close code %d (%q), want %d", ce.Code, ce.Text, code)
		}
		return ce.Text, at
	}
}

// wspPingPong sends a graphql-transport-ws ping and checks that the very
// next frame is exactly {"type":"pong"}; after a wait, that proves nothing
// else was sent in between.
func wspPingPong(c *wsClient) {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	f := wspFrame(c)
	wspSameJSON(c.t, f.raw, `{"type":"pong"}`)
}

// wspSentinelQuery runs the viewer query under id and checks that its
// answer (next/data, then complete) are the very next frames.
func wspSentinelQuery(c *wsClient, p wspProto, id, user string) {
	c.t.Helper()
	c.subscribe(p.start, id, wspViewerQuery, nil)
	f := wspFrame(c, "ka")
	viewer := "null"
	if user != "" {
		viewer = fmt.Sprintf(`{"id":%q,"name":%q}`, user, user)
	}
	wspSameJSON(c.t, f.raw, fmt.Sprintf(`{"id":%q,"type":%q,"payload":{"data":{"viewer":%s}}}`, id, p.next, viewer))
	wspExpectComplete(c, id)
}

// wspQuiet waits d and then checks, with a sentinel, that the socket sent
// nothing meanwhile and still works.
func wspQuiet(c *wsClient, p wspProto, d time.Duration, user string) {
	c.t.Helper()
	time.Sleep(d) // silence check
	if p.legacy {
		wspSentinelQuery(c, p, "sentinel", user)
	} else {
		wspPingPong(c)
	}
}

func TestProtocolNegotiation(t *testing.T) {
	r := newReplica(t, nil)
	for _, tc := range []struct {
		name    string
		offered []string
		want    string
	}{
		{"both offered, transport first", []string{subprotocolTransportWS, subprotocolLegacy}, subprotocolTransportWS},
		{"both offered, legacy first", []string{subprotocolLegacy, subprotocolTransportWS}, subprotocolTransportWS},
		{"only graphql-transport-ws", []string{subprotocolTransportWS}, subprotocolTransportWS},
		{"only graphql-ws is legacy", []string{subprotocolLegacy}, subprotocolLegacy},
		{"unknown besides legacy", []string{"graphql-sse", subprotocolLegacy}, subprotocolLegacy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := r.forTest(t)
			c := r.dial(tc.offered...)
			if got := c.conn.Subprotocol(); got != tc.want {
				t.Fatalf("negotiated %q, want %q", got, tc.want)
			}
			// The protocol spoken is the one negotiated: legacy acks with ka.
			c.init("")
			wspSameJSON(t, wspFrame(c).raw, `{"type":"connection_ack"}`)
			if tc.want == subprotocolLegacy {
				wspSameJSON(t, wspFrame(c).raw, `{"type":"ka"}`)
				wspSentinelQuery(c, wspLegacy, "q", "")
			} else {
				wspPingPong(c)
			}
		})
	}
	for _, tc := range []struct {
		name    string
		offered []string
	}{
		{"none offered", nil},
		{"unknown offered", []string{"graphql-sse", "mqtt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := websocket.Dialer{Subprotocols: tc.offered, HandshakeTimeout: 5 * time.Second}
			conn, resp, err := d.Dial(r.wsURL, nil)
			if err == nil {
				_ = conn.Close()
				t.Fatalf("upgraded with subprotocol %q, want HTTP 400", conn.Subprotocol())
			}
			if !errors.Is(err, websocket.ErrBadHandshake) || resp == nil {
				t.Fatalf("dial: %v (response %v), want a bad handshake", err, resp)
			}
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Fatalf("Content-Type %q, want JSON", ct)
			}
			body, _ := io.ReadAll(resp.Body)
			var got struct {
				Errors []wspGQLError `json:"errors"`
			}
			if err := json.Unmarshal(body, &got); err != nil || len(got.Errors) != 1 {
				t.Fatalf("body %s: want one GraphQL error (%v)", body, err)
			}
			msg := got.Errors[0].Message
			if !strings.Contains(msg, subprotocolTransportWS) ||
				!strings.Contains(strings.ReplaceAll(msg, subprotocolTransportWS, ""), subprotocolLegacy) {
				t.Fatalf("message %q does not name both %s and %s", msg, subprotocolTransportWS, subprotocolLegacy)
			}
		})
	}
}

// TestProtocolInitTimeout: a socket without connection_init is closed with
// 4408 once InitTimeout has passed, not before; one that inits is not.
func TestProtocolInitTimeout(t *testing.T) {
	const initTimeout = 200 * time.Millisecond
	r := newReplica(t, func(o *Options) { o.InitTimeout = initTimeout })
	for _, p := range wspProtocols {
		t.Run(p.name+"/4408 without init", func(t *testing.T) {
			t.Parallel()
			r := r.forTest(t)
			start := time.Now()
			c := r.dial(p.name)
			_, at := wspExpectClose(c, closeInitTimeout, initTimeout+time.Second)
			if took := at.Sub(start); took < initTimeout {
				t.Fatalf("closed after %v, before the init timeout of %v", took, initTimeout)
			}
		})
		t.Run(p.name+"/kept open after init", func(t *testing.T) {
			t.Parallel()
			r := r.forTest(t)
			c := p.dial(r, "")
			wspQuiet(c, p, 2*initTimeout, "")
		})
	}
}

// TestProtocolCloseCodes runs every client that breaks the protocol against
// one replica, each on a fresh socket, and then checks that the replica
// still serves a good subscription on both protocols.
func TestProtocolCloseCodes(t *testing.T) {
	const maxMessage = 2048
	r := newReplica(t, func(o *Options) { o.MaxMessageBytes = maxMessage })
	room := r.room("close-codes")
	valid := map[string]any{"query": wspViewerQuery}
	long := strings.Repeat("x", 100)
	huge := `{ viewer { id } }` + strings.Repeat(" ", 4096)

	type row struct {
		p    wspProto
		name string
		code int
		// do opens a socket and breaks the protocol on it; frames it
		// expects before the close it reads itself.
		do func(t *testing.T, r *replica) *wsClient
	}
	// raw opens a socket (acked when ack) and sends msg.
	raw := func(ack bool, msg string) func(*testing.T, *replica) *wsClient {
		return func(t *testing.T, r *replica) *wsClient {
			c := r.dial(wspTransport.name)
			if ack {
				c.init("")
				c.expectType("connection_ack")
			}
			c.sendRaw(msg)
			return c
		}
	}
	legacyRaw := func(ack bool, msg string) func(*testing.T, *replica) *wsClient {
		return func(t *testing.T, r *replica) *wsClient {
			c := r.dial(wspLegacy.name)
			if ack {
				c.init("")
				c.expectType("connection_ack")
				c.expectType("ka")
			}
			c.sendRaw(msg)
			return c
		}
	}
	rejected := func(p wspProto, user any) func(*testing.T, *replica) *wsClient {
		return func(t *testing.T, r *replica) *wsClient {
			c := r.dial(p.name)
			c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": user}})
			if p.legacy {
				f := wspFrame(c)
				var payload struct{ Message string }
				if f.Type != "connection_error" || f.ID != "" || json.Unmarshal(f.Payload, &payload) != nil ||
					!strings.Contains(payload.Message, "invalid credentials") {
					t.Fatalf("got %s, want connection_error with a message", f.raw)
				}
			}
			return c
		}
	}
	binary := func(p wspProto) func(*testing.T, *replica) *wsClient {
		return func(t *testing.T, r *replica) *wsClient {
			c := p.dial(r, "")
			if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte(`{"type":"connection_init"}`)); err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
	oversized := func(p wspProto) func(*testing.T, *replica) *wsClient {
		return func(t *testing.T, r *replica) *wsClient {
			c := p.dial(r, "")
			msg, _ := json.Marshal(map[string]any{"id": "big", "type": p.start, "payload": map[string]any{"query": huge}})
			// The server may stop reading (and reset the connection) as
			// soon as the frame header shows the length; what counts is
			// the close code the client reads.
			if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				t.Logf("writing the oversized message: %v", err)
			}
			return c
		}
	}
	subscribe := func(id string, payload any) string {
		b, _ := json.Marshal(map[string]any{"type": "subscribe", "id": id, "payload": payload})
		return string(b)
	}
	start := func(id string, payload any) string {
		b, _ := json.Marshal(map[string]any{"type": "start", "id": id, "payload": payload})
		return string(b)
	}

	rows := []row{
		// graphql-transport-ws
		{wspTransport, "4429 second connection_init", closeTooManyInits, func(t *testing.T, r *replica) *wsClient {
			c := r.dialTransport("alice")
			c.init("alice")
			return c
		}},
		{wspTransport, "4401 subscribe before ack", closeUnauthorized, raw(false, subscribe("1", valid))},
		{wspTransport, "4403 init user not a string", closeForbidden, rejected(wspTransport, 7)},
		{wspTransport, "4403 init user name too long", closeForbidden, rejected(wspTransport, long)},
		{wspTransport, "4400 not JSON", closeBadRequest, raw(true, `{"type":"ping"`)},
		{wspTransport, "4400 JSON array", closeBadRequest, raw(true, `[{"type":"ping"}]`)},
		{wspTransport, "4400 JSON string", closeBadRequest, raw(true, `"ping"`)},
		{wspTransport, "4400 missing type", closeBadRequest, raw(true, `{"id":"1","payload":{"query":"{ viewer { id } }"}}`)},
		{wspTransport, "4400 type not a string", closeBadRequest, raw(true, `{"type":1}`)},
		{wspTransport, "4400 unknown type", closeBadRequest, raw(true, `{"type":"subscribe_all"}`)},
		{wspTransport, "4400 unknown type before init", closeBadRequest, raw(false, `{"type":"hello"}`)},
		{wspTransport, "4400 legacy-only start", closeBadRequest, raw(true, start("1", valid))},
		{wspTransport, "4400 legacy-only connection_terminate", closeBadRequest, raw(true, `{"type":"connection_terminate"}`)},
		{wspTransport, "4400 subscribe without id", closeBadRequest, raw(true, `{"type":"subscribe","payload":{"query":"{ viewer { id } }"}}`)},
		{wspTransport, "4400 subscribe with empty id", closeBadRequest, raw(true, subscribe("", valid))},
		{wspTransport, "4400 subscribe with numeric id", closeBadRequest, raw(true, `{"type":"subscribe","id":1,"payload":{"query":"{ viewer { id } }"}}`)},
		{wspTransport, "4400 subscribe without payload", closeBadRequest, raw(true, `{"type":"subscribe","id":"1"}`)},
		{wspTransport, "4400 subscribe with null payload", closeBadRequest, raw(true, `{"type":"subscribe","id":"1","payload":null}`)},
		{wspTransport, "4400 subscribe payload not an object", closeBadRequest, raw(true, subscribe("1", "{ viewer { id } }"))},
		{wspTransport, "4400 subscribe payload without query", closeBadRequest, raw(true, subscribe("1", map[string]any{"variables": map[string]any{}}))},
		{wspTransport, "4400 subscribe query not a string", closeBadRequest, raw(true, subscribe("1", map[string]any{"query": 5}))},
		{wspTransport, "4400 complete without id", closeBadRequest, raw(true, `{"type":"complete"}`)},
		{wspTransport, "4400 init payload not an object", closeBadRequest, raw(false, `{"type":"connection_init","payload":[1]}`)},
		{wspTransport, "4400 binary frame", closeBadRequest, binary(wspTransport)},
		{wspTransport, "4409 subscriber id already active", closeSubscriberExists, subscribeTwice(room, "a")},
		// The reason quotes the id, cut between characters.
		{wspTransport, "4409 with a long multibyte id", closeSubscriberExists, subscribeTwice(room, strings.Repeat("a", 59)+"é")},
		{wspTransport, "4400 unknown type full of escapes (the reason fits a close frame)", closeBadRequest,
			raw(true, `{"type":"`+strings.Repeat(`\u0001`, 30)+strings.Repeat(`\"`, 50)+`"}`)},
		{wspTransport, "1009 message over MaxMessageBytes", websocket.CloseMessageTooBig, oversized(wspTransport)},
		{wspTransport, "1007 text frame not UTF-8", websocket.CloseInvalidFramePayloadData, raw(true, wsmNotUTF8Subscribe)},

		// legacy graphql-ws
		{wspLegacy, "4403 init user not a string", closeForbidden, rejected(wspLegacy, 7)},
		{wspLegacy, "4403 init user name too long", closeForbidden, rejected(wspLegacy, long)},
		{wspLegacy, "4400 JSON array", closeBadRequest, legacyRaw(true, `[]`)},
		{wspLegacy, "4400 missing type", closeBadRequest, legacyRaw(true, `{"id":"1","payload":{"query":"{ viewer { id } }"}}`)},
		{wspLegacy, "4400 unknown type", closeBadRequest, legacyRaw(true, `{"type":"subscribe_all"}`)},
		{wspLegacy, "4400 transport-only subscribe", closeBadRequest, legacyRaw(true, subscribe("1", valid))},
		{wspLegacy, "4400 transport-only ping", closeBadRequest, legacyRaw(true, `{"type":"ping"}`)},
		{wspLegacy, "4400 start without id", closeBadRequest, legacyRaw(true, `{"type":"start","payload":{"query":"{ viewer { id } }"}}`)},
		{wspLegacy, "4400 start with numeric id", closeBadRequest, legacyRaw(true, `{"type":"start","id":1,"payload":{"query":"{ viewer { id } }"}}`)},
		{wspLegacy, "4400 start without payload", closeBadRequest, legacyRaw(true, `{"type":"start","id":"1"}`)},
		{wspLegacy, "4400 start payload not an object", closeBadRequest, legacyRaw(true, start("1", []any{1}))},
		{wspLegacy, "4400 start payload without query", closeBadRequest, legacyRaw(true, start("1", map[string]any{"operationName": "x"}))},
		{wspLegacy, "4400 stop without id", closeBadRequest, legacyRaw(true, `{"type":"stop"}`)},
		{wspLegacy, "4400 binary frame", closeBadRequest, binary(wspLegacy)},
		{wspLegacy, "1000 connection_terminate", websocket.CloseNormalClosure, legacyRaw(true, `{"type":"connection_terminate"}`)},
		{wspLegacy, "1009 message over MaxMessageBytes", websocket.CloseMessageTooBig, oversized(wspLegacy)},
		{wspLegacy, "1007 text frame not UTF-8", websocket.CloseInvalidFramePayloadData, legacyRaw(true, wsmNotUTF8Start)},
	}
	for _, tc := range rows {
		t.Run(tc.p.name+"/"+tc.name, func(t *testing.T) {
			r := r.forTest(t)
			c := tc.do(t, r)
			reason, _ := wspExpectClose(c, tc.code, 3*time.Second)
			if tc.code == closeBadRequest && !strings.HasPrefix(reason, "Invalid message") {
				t.Fatalf("close reason %q, want one that starts with %q", reason, "Invalid message")
			}
		})
	}

	// After all of that, the replica still serves fresh sockets, and a
	// message just under the limit is accepted.
	waitFor(t, "the closed sockets to release their subscriptions", func() bool { return r.members() == 0 })
	clients := map[wspProto]*wsClient{}
	for _, p := range wspProtocols {
		c := p.dial(r, "alice")
		padded := `{ viewer { id name } }` + strings.Repeat(" ", maxMessage-200)
		c.subscribe(p.start, "big-but-fine", padded, nil)
		f := wspExpect(c, p.next, "big-but-fine")
		wspSameJSON(t, string(f.Payload), `{"data":{"viewer":{"id":"alice","name":"alice"}}}`)
		wspExpectComplete(c, "big-but-fine")
		c.subscribe(p.start, "s", wspMessagePosted, map[string]any{"r": room})
		clients[p] = c
	}
	waitFor(t, "both subscriptions to start", func() bool { return r.members() == 2 })
	r.post(room, "bob", "still serving")
	for p, c := range clients {
		f := wspExpect(c, p.next, "s")
		var got struct{ MessagePosted struct{ Text string } }
		f.data(t, &got)
		if got.MessagePosted.Text != "still serving" {
			t.Fatalf("%s: got %s", p.name, f.raw)
		}
	}
}

// TestProtocolUnparseableJSON: a frame that is not JSON at all closes a
// graphql-transport-ws socket with 4400. The legacy protocol answers it
// with connection_error and keeps the socket open, as
// subscriptions-transport-ws does, before connection_init as after it.
func TestProtocolUnparseableJSON(t *testing.T) {
	r := newReplica(t, nil)
	frames := []struct {
		name       string
		data       string
		beforeInit bool
	}{
		{"truncated object", `{"type":"start"`, false},
		{"bare word", `ping`, false},
		{"trailing garbage", `{"type":"connection_init"} x`, false},
		{"empty frame", ``, false},
		{"before connection_init", `{"type":"connection_init",}`, true},
	}
	for _, p := range wspProtocols {
		for _, f := range frames {
			t.Run(p.name+"/"+f.name, func(t *testing.T) {
				r := r.forTest(t)
				var c *wsClient
				if f.beforeInit {
					c = r.dial(p.name)
				} else {
					c = p.dial(r, "alice")
				}
				c.sendRaw(f.data)
				if !p.legacy {
					reason, _ := wspExpectClose(c, closeBadRequest, 3*time.Second)
					if !strings.HasPrefix(reason, "Invalid message") {
						t.Fatalf("close reason %q, want one that starts with %q", reason, "Invalid message")
					}
					return
				}
				got := wspFrame(c, "ka")
				var payload struct{ Message string }
				if got.Type != "connection_error" || got.ID != "" || json.Unmarshal(got.Payload, &payload) != nil ||
					!strings.HasPrefix(payload.Message, "Invalid message: not JSON: ") {
					t.Fatalf("got %s, want connection_error with a message that says the frame is not JSON", got.raw)
				}
				if f.beforeInit {
					c.init("alice")
					c.expectType("connection_ack")
				}
				// The socket still works: a valid operation is answered.
				wspSentinelQuery(c, p, "after", "alice")
			})
		}
	}
}

// TestProtocolKeepalive checks server pings (legacy: ka), liveness while
// the client answers and the close of a client that never answers.
func TestProtocolKeepalive(t *testing.T) {
	// The client answers pings only while its test goroutine reads: a pong
	// timeout of 100 ms closed an answering socket once in five make test
	// runs on two loaded cores. A second still tells answered from silent.
	const ping, pong = 100 * time.Millisecond, time.Second
	r := newReplica(t, func(o *Options) {
		o.PingInterval = ping
		o.PongTimeout = pong
	})

	t.Run("graphql-transport-ws/pings answered keep the socket open", func(t *testing.T) {
		t.Parallel()
		r := r.forTest(t)
		c := r.dial(wspTransport.name)
		start := time.Now()
		c.init("")
		c.expectType("connection_ack")
		const want = 16 // 1.6 s: longer than PingInterval+PongTimeout
		for i := range want {
			f := wspFrame(c)
			wspSameJSON(t, f.raw, `{"type":"ping"}`)
			if i == 0 {
				if took := time.Since(start); took < ping {
					t.Fatalf("first ping after %v, before PingInterval %v", took, ping)
				}
			}
			c.send(map[string]any{"type": "pong"})
		}
		// Still open and serving: a ping of ours is answered (skipping
		// any server ping that comes first).
		c.send(map[string]any{"type": "ping"})
		for {
			f := wspFrame(c)
			if f.Type == "ping" {
				c.send(map[string]any{"type": "pong"})
				continue
			}
			wspSameJSON(t, f.raw, `{"type":"pong"}`)
			break
		}
	})

	t.Run("graphql-transport-ws/silent client closed 1001", func(t *testing.T) {
		t.Parallel()
		r := r.forTest(t)
		c := r.dial(wspTransport.name)
		start := time.Now()
		c.init("")
		c.expectType("connection_ack")
		_, at := wspExpectClose(c, closeGoingAway, ping+pong+time.Second, "ping")
		if took := at.Sub(start); took < ping+pong {
			t.Fatalf("closed after %v, before PingInterval+PongTimeout", took)
		}
	})

	t.Run("graphql-ws/ka repeats and WebSocket pongs keep the socket open", func(t *testing.T) {
		t.Parallel()
		r := r.forTest(t)
		c := r.dial(wspLegacy.name)
		start := time.Now()
		c.init("")
		c.expectType("connection_ack")
		c.expectType("ka")
		// gorilla answers the server's WebSocket pings while reading.
		const want = 16 // 1.6 s: longer than PingInterval+PongTimeout
		for i := range want {
			f := wspFrame(c)
			wspSameJSON(t, f.raw, `{"type":"ka"}`)
			if i == 0 {
				if took := time.Since(start); took < ping {
					t.Fatalf("second ka after %v, before PingInterval %v", took, ping)
				}
			}
		}
		wspSentinelQuery(c, wspLegacy, "q", "")
	})

	t.Run("graphql-ws/silent client closed 1001", func(t *testing.T) {
		t.Parallel()
		r := r.forTest(t)
		c := r.dial(wspLegacy.name)
		c.conn.SetPingHandler(func(string) error { return nil }) // never pong
		start := time.Now()
		c.init("")
		c.expectType("connection_ack")
		_, at := wspExpectClose(c, closeGoingAway, ping+pong+time.Second, "ka")
		if took := at.Sub(start); took < ping+pong {
			t.Fatalf("closed after %v, before PingInterval+PongTimeout", took)
		}
	})
}

// TestProtocolTransportMessages covers the graphql-transport-ws message
// rules on an acknowledged socket.
func TestProtocolTransportMessages(t *testing.T) {
	r := newReplica(t, nil)
	p := wspTransport

	t.Run("ping before ack gets pong, then init still acks", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dial(p.name)
		wspPingPong(c)
		c.init("alice")
		wspSameJSON(t, wspFrame(c).raw, `{"type":"connection_ack"}`)
		wspPingPong(c)
	})

	t.Run("unsolicited pong is ignored", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "")
		c.send(map[string]any{"type": "pong", "payload": map[string]any{"x": 1}})
		wspPingPong(c)
	})

	t.Run("anonymous init acks", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dial(p.name)
		c.sendRaw(`{"type":"connection_init"}`)
		wspSameJSON(t, wspFrame(c).raw, `{"type":"connection_ack"}`)
		wspSentinelQuery(c, p, "q", "")
	})

	t.Run("query: next then complete", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("transport-query")
		c := p.dial(r, "alice")
		c.subscribe(p.start, "q1", `query($id: ID!) { room(id: $id) { id name } viewer { id } }`, map[string]any{"id": room})
		f := wspFrame(c)
		wspSameJSON(t, f.raw, fmt.Sprintf(
			`{"id":"q1","type":"next","payload":{"data":{"room":{"id":%q,"name":"transport-query"},"viewer":{"id":"alice"}}}}`, room))
		wspExpectComplete(c, "q1")
	})

	t.Run("mutation: next then complete", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "alice")
		c.subscribe(p.start, "m1", `mutation { createRoom(name: "made-by-alice") { name createdBy { id } } }`, nil)
		f := wspFrame(c)
		wspSameJSON(t, f.raw, `{"id":"m1","type":"next","payload":{"data":{"createRoom":{"name":"made-by-alice","createdBy":{"id":"alice"}}}}}`)
		wspExpectComplete(c, "m1")
	})

	t.Run("resolver error in a mutation: next with errors then complete", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "") // anonymous: mutations need an identity
		c.subscribe(p.start, "m1", `mutation { createRoom(name: "anonymous") { name } }`, nil)
		errs := wspResultErrors(t, wspExpect(c, p.next, "m1"))
		if errs[0].Extensions["code"] != "UNAUTHENTICATED" {
			t.Fatalf("errors %+v, want extensions.code UNAUTHENTICATED", errs)
		}
		wspExpectComplete(c, "m1")
	})

	for _, tc := range []struct{ name, query, mention string }{
		{"validation error (unknown field)", `{ nope }`, `"nope"`},
		{"parse error", `{ viewer { id `, "Expected"},
		{"missing variable", `query($id: ID!) { room(id: $id) { id } }`, "must be defined"},
	} {
		t.Run(tc.name+": error, no complete, socket usable", func(t *testing.T) {
			r := r.forTest(t)
			c := p.dial(r, "alice")
			c.subscribe(p.start, "v", tc.query, nil)
			f := wspExpect(c, "error", "v")
			var errs []wspGQLError
			if err := json.Unmarshal(f.Payload, &errs); err != nil || len(errs) == 0 || errs[0].Message == "" {
				t.Fatalf("error payload of %s: want an array of errors with a message (%v)", f.raw, err)
			}
			if !strings.Contains(errs[0].Message, tc.mention) {
				t.Fatalf("error message %q does not mention %s", errs[0].Message, tc.mention)
			}
			wspQuiet(c, p, wspSilence, "alice") // no complete after error
			// The id is free again and the socket serves operations.
			wspSentinelQuery(c, p, "v", "alice")
		})
	}

	t.Run("client complete silences the subscription", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("transport-complete")
		a, b := p.dial(r, "alice"), p.dial(r, "bob")
		a.subscribe(p.start, "a", wspMessagePosted, map[string]any{"r": room})
		b.subscribe(p.start, "b", wspMessagePosted, map[string]any{"r": room})
		waitFor(t, "both subscriptions to start", func() bool { return r.members() == 2 })
		a.send(map[string]any{"type": "complete", "id": "a"})
		waitFor(t, "the completed subscription to leave", func() bool { return r.members() == 1 })
		r.post(room, "carol", "after complete")
		wspExpect(b, p.next, "b") // the execution still runs and delivers
		wspQuiet(a, p, wspSilence, "alice")
		b.send(map[string]any{"type": "complete", "id": "b"})
		waitFor(t, "the subscriptions to be released", func() bool { return r.members() == 0 })
	})

	t.Run("complete for an unknown id is ignored", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "alice")
		c.send(map[string]any{"type": "complete", "id": "never-used"})
		wspPingPong(c)
	})

	t.Run("id reused after complete", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("transport-reuse")
		c := p.dial(r, "alice")
		c.subscribe(p.start, "a", wspMessagePosted, map[string]any{"r": room})
		waitFor(t, "the subscription to start", func() bool { return r.members() == 1 })
		c.send(map[string]any{"type": "complete", "id": "a"})
		waitFor(t, "the subscription to leave", func() bool { return r.members() == 0 })
		c.subscribe(p.start, "a", `subscription($r: ID!) { messagePosted(roomId: $r) { text author { id } } }`, map[string]any{"r": room})
		waitFor(t, "the new subscription to start", func() bool { return r.members() == 1 })
		r.post(room, "bob", "for the new a")
		f := wspExpect(c, p.next, "a")
		var got struct {
			MessagePosted struct {
				Text   string
				Author struct{ ID string }
			}
		}
		f.data(t, &got)
		if got.MessagePosted.Text != "for the new a" || got.MessagePosted.Author.ID != "bob" {
			t.Fatalf("got %s, want the event of the new subscription", f.raw)
		}
		c.send(map[string]any{"type": "complete", "id": "a"})
		waitFor(t, "the subscription to be released", func() bool { return r.members() == 0 })
	})

	t.Run("subscription to an unknown room: next with NOT_FOUND then complete", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "alice")
		c.subscribe(p.start, "x", wspMessagePosted, map[string]any{"r": "no-such-room"})
		errs := wspResultErrors(t, wspExpect(c, p.next, "x"))
		if errs[0].Extensions["code"] != "NOT_FOUND" {
			t.Fatalf("errors %+v, want extensions.code NOT_FOUND", errs)
		}
		wspExpectComplete(c, "x")
		waitFor(t, "the failed subscription to be released", func() bool { return r.members() == 0 })
	})

	t.Run("roomEvents: posted, edited, reactions changed, each with its cursor", func(t *testing.T) {
		r := r.forTest(t)
		wspRoomEventKinds(t, r, p)
	})
}

// wspRoomEventKinds subscribes to roomEvents, posts, edits and reacts, and
// checks three events of the right kinds, in order, with distinct cursors.
func wspRoomEventKinds(t *testing.T, r *replica, p wspProto) {
	t.Helper()
	room := r.room("events-" + p.name)
	c := p.dial(r, "alice")
	c.subscribe(p.start, "ev", wspRoomEvents, map[string]any{"r": room})
	waitFor(t, "the subscription to start", func() bool { return r.members() == 1 })
	ctx := context.Background()
	m := r.post(room, "bob", "first")
	if _, err := r.chat.EditMessage(ctx, chat.Actor{ID: "bob"}, m.ID, m.Version, "second"); err != nil {
		t.Fatalf("edit: %v", err)
	}
	if _, err := r.chat.React(ctx, chat.Actor{ID: "carol"}, m.ID, "👍"); err != nil {
		t.Fatalf("react: %v", err)
	}
	seen := map[string]bool{}
	for _, want := range []struct{ kind, text string }{
		{"MESSAGE_POSTED", "first"},
		{"MESSAGE_EDITED", "second"},
		{"REACTIONS_CHANGED", "second"},
	} {
		f := wspExpect(c, p.next, "ev")
		var got struct {
			RoomEvents struct {
				Kind    string
				Cursor  string
				Message struct{ Text string }
			}
		}
		f.data(t, &got)
		if got.RoomEvents.Kind != want.kind || got.RoomEvents.Message.Text != want.text {
			t.Fatalf("got %s, want a %s event with text %q", f.raw, want.kind, want.text)
		}
		cursor := wspCursor(t, f)
		if cursor != got.RoomEvents.Cursor {
			t.Fatalf("extensions.cursor %q differs from the event's cursor %q", cursor, got.RoomEvents.Cursor)
		}
		if seen[cursor] {
			t.Fatalf("cursor %q repeated in %s", cursor, f.raw)
		}
		seen[cursor] = true
	}
	c.send(map[string]any{"type": p.stop, "id": "ev"})
	waitFor(t, "the subscription to be released", func() bool { return r.members() == 0 })
}

// TestProtocolLegacyMessages covers the legacy graphql-ws message rules.
func TestProtocolLegacyMessages(t *testing.T) {
	r := newReplica(t, nil)
	p := wspLegacy

	t.Run("connection_ack then ka immediately", func(t *testing.T) {
		r := r.forTest(t)
		c := r.dial(p.name)
		c.init("alice")
		wspSameJSON(t, wspFrame(c).raw, `{"type":"connection_ack"}`)
		f, err := c.read(2 * time.Second) // PingInterval is 15s: this is the immediate ka
		if err != nil {
			t.Fatalf("no ka right after the ack: %v", err)
		}
		wspSameJSON(t, f.raw, `{"type":"ka"}`)
	})

	t.Run("start: data frames for each event", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("legacy-start")
		c := p.dial(r, "alice")
		c.subscribe(p.start, "s1", wspMessagePosted, map[string]any{"r": room})
		waitFor(t, "the subscription to start", func() bool { return r.members() == 1 })
		r.post(room, "bob", "one")
		r.post(room, "bob", "two")
		var cursors []string
		for _, text := range []string{"one", "two"} {
			f := wspExpect(c, "data", "s1")
			cursor := wspCursor(t, f)
			wspSameJSON(t, string(f.Payload),
				fmt.Sprintf(`{"data":{"messagePosted":{"text":%q}},"extensions":{"cursor":%q}}`, text, cursor))
			cursors = append(cursors, cursor)
		}
		if cursors[0] == cursors[1] {
			t.Fatalf("both events carry cursor %q", cursors[0])
		}
		c.send(map[string]any{"type": "stop", "id": "s1"})
		waitFor(t, "the subscription to be released", func() bool { return r.members() == 0 })
	})

	t.Run("stop silences the subscription", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("legacy-stop")
		a, b := p.dial(r, "alice"), p.dial(r, "bob")
		a.subscribe(p.start, "a", wspMessagePosted, map[string]any{"r": room})
		b.subscribe(p.start, "b", wspMessagePosted, map[string]any{"r": room})
		waitFor(t, "both subscriptions to start", func() bool { return r.members() == 2 })
		a.send(map[string]any{"type": "stop", "id": "a"})
		waitFor(t, "the stopped subscription to leave", func() bool { return r.members() == 1 })
		r.post(room, "carol", "after stop")
		wspExpect(b, "data", "b")
		wspQuiet(a, p, wspSilence, "alice")
		b.send(map[string]any{"type": "stop", "id": "b"})
		waitFor(t, "the subscriptions to be released", func() bool { return r.members() == 0 })
	})

	t.Run("stop for an unknown id is ignored", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "alice")
		c.send(map[string]any{"type": "stop", "id": "never-used"})
		wspSentinelQuery(c, p, "q", "alice")
	})

	t.Run("validation error: data with errors then complete", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "alice")
		c.subscribe(p.start, "v", `subscription { nope }`, nil)
		errs := wspResultErrors(t, wspExpect(c, "data", "v"))
		if !strings.Contains(errs[0].Message, `"nope"`) {
			t.Fatalf("error message %q does not name the unknown field", errs[0].Message)
		}
		wspExpectComplete(c, "v")
		wspSentinelQuery(c, p, "v", "alice") // the id is free again
	})

	t.Run("query: data then complete", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("legacy-query")
		c := p.dial(r, "alice")
		c.subscribe(p.start, "q1", `query($id: ID!) { room(id: $id) { id name } viewer { id } }`, map[string]any{"id": room})
		f := wspFrame(c, "ka")
		wspSameJSON(t, f.raw, fmt.Sprintf(
			`{"id":"q1","type":"data","payload":{"data":{"room":{"id":%q,"name":"legacy-query"},"viewer":{"id":"alice"}}}}`, room))
		wspExpectComplete(c, "q1")
	})

	t.Run("mutation: data then complete", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "alice")
		c.subscribe(p.start, "m1", `mutation { createRoom(name: "legacy-by-alice") { name createdBy { id } } }`, nil)
		f := wspFrame(c, "ka")
		wspSameJSON(t, f.raw, `{"id":"m1","type":"data","payload":{"data":{"createRoom":{"name":"legacy-by-alice","createdBy":{"id":"alice"}}}}}`)
		wspExpectComplete(c, "m1")
	})

	t.Run("second start with an id in use: the running one stops, the new one starts", func(t *testing.T) {
		// As subscriptions-transport-ws's server: the operation running
		// under the id is stopped, silently (a complete would end the
		// new one for the client), and the new one runs under it.
		r := r.forTest(t)
		oldRoom, newRoom := r.room("legacy-dup-old"), r.room("legacy-dup-new")
		c := p.dial(r, "alice")
		c.subscribe(p.start, "s1", wspMessagePosted, map[string]any{"r": oldRoom})
		waitFor(t, "the subscription to start", func() bool { return r.members() == 1 })
		c.subscribe(p.start, "s1", wspMessagePosted, map[string]any{"r": newRoom})
		// Nothing is sent for s1 (no error, no complete), and once the
		// query after it is answered, the new start has been handled.
		wspSentinelQuery(c, p, "q", "alice")
		if n := r.members(); n != 1 {
			t.Fatalf("%d subscriptions after the second start, want the new one alone", n)
		}
		r.post(oldRoom, "bob", "to the old one")
		r.post(newRoom, "bob", "to the new one")
		f := wspExpect(c, "data", "s1")
		var got struct{ MessagePosted struct{ Text string } }
		f.data(t, &got)
		if got.MessagePosted.Text != "to the new one" {
			t.Fatalf("got %s, want the new subscription's event only", f.raw)
		}
		wspSentinelQuery(c, p, "q2", "alice")
		c.send(map[string]any{"type": "stop", "id": "s1"})
		waitFor(t, "the subscription to be released", func() bool { return r.members() == 0 })
	})

	t.Run("subscription to an unknown room: data with NOT_FOUND then complete", func(t *testing.T) {
		r := r.forTest(t)
		c := p.dial(r, "alice")
		c.subscribe(p.start, "x", wspMessagePosted, map[string]any{"r": "no-such-room"})
		errs := wspResultErrors(t, wspExpect(c, "data", "x"))
		if errs[0].Extensions["code"] != "NOT_FOUND" {
			t.Fatalf("errors %+v, want extensions.code NOT_FOUND", errs)
		}
		wspExpectComplete(c, "x")
		waitFor(t, "the failed subscription to be released", func() bool { return r.members() == 0 })
	})

	t.Run("roomEvents: posted, edited, reactions changed, each with its cursor", func(t *testing.T) {
		r := r.forTest(t)
		wspRoomEventKinds(t, r, p)
	})
}

// TestProtocolSubscribeThenMutate: once the server has read a subscribe,
// the subscription sees every change applied after it, so a mutation sent
// next on the same socket (without waiting for anything) is delivered to it.
func TestProtocolSubscribeThenMutate(t *testing.T) {
	r := newReplica(t, nil)
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			room := r.room("own-" + p.name)
			c := p.dial(r, "alice")
			c.subscribe(p.start, "s", `subscription($r: ID!) { roomEvents(roomId: $r) { kind message { text } } }`, map[string]any{"r": room})
			c.subscribe(p.start, "m", `mutation($r: ID!) { postMessage(roomId: $r, text: "mine") { text } }`, map[string]any{"r": room})
			var event, result, completed bool
			for !(event && result && completed) {
				f := wspFrame(c, "ka")
				switch {
				case f.ID == "s" && f.Type == p.next:
					wspSameJSON(t, string(f.Payload), fmt.Sprintf(
						`{"data":{"roomEvents":{"kind":"MESSAGE_POSTED","message":{"text":"mine"}}},"extensions":{"cursor":%q}}`, wspCursor(t, f)))
					event = true
				case f.ID == "m" && f.Type == p.next && !result:
					wspSameJSON(t, string(f.Payload), `{"data":{"postMessage":{"text":"mine"}}}`)
					result = true
				case f.ID == "m" && f.Type == "complete" && result:
					completed = true
				default:
					t.Fatalf("unexpected %s", f.raw)
				}
			}
			c.send(map[string]any{"type": p.stop, "id": "s"})
			waitFor(t, "the subscription to be released", func() bool { return r.members() == 0 })
		})
	}
}

// subscribeTwice opens a socket that subscribes with id twice, the second
// time while the first is active.
func subscribeTwice(room, id string) func(t *testing.T, r *replica) *wsClient {
	return func(t *testing.T, r *replica) *wsClient {
		c := r.dialTransport("alice")
		c.subscribe("subscribe", id, wspMessagePosted, map[string]any{"r": room})
		waitFor(t, "the subscription to start", func() bool { return r.members() == 1 })
		c.subscribe("subscribe", id, wspMessagePosted, map[string]any{"r": room})
		return c
	}
}

// stallingAuth is the Dev authenticator whose connection_init check waits
// until its context ends (or the test releases it): an authenticator that
// asks a service that does not answer.
type stallingAuth struct {
	auth.Dev
	release  chan struct{}      // closed by the test's cleanup
	returned chan error         // the context's error, once the check gave up
	left     chan time.Duration // what the context's deadline left the check as it began (none: a day)
}

func (a stallingAuth) FromInitPayload(ctx context.Context, _ map[string]any) (auth.Identity, bool, error) {
	left := 24 * time.Hour
	if deadline, ok := ctx.Deadline(); ok {
		left = time.Until(deadline)
	}
	a.left <- left
	select {
	case <-ctx.Done():
		a.returned <- ctx.Err()
		return auth.Identity{}, false, fmt.Errorf("ask the identity service: %w", ctx.Err())
	case <-a.release:
		return auth.Identity{}, false, errors.New("released by the test")
	}
}

// TestProtocolInitTimeoutWhileAuthenticating: a connection_init whose
// credentials are still being checked at the init timeout closes the
// socket with 4408, as one never sent does, and the check's context ends
// then: the socket is released rather than held, reader and place, for as
// long as the authenticator waits.
func TestProtocolInitTimeoutWhileAuthenticating(t *testing.T) {
	const initTimeout = 300 * time.Millisecond
	authn := stallingAuth{release: make(chan struct{}), returned: make(chan error, 4), left: make(chan time.Duration, 4)}
	r := newReplica(t, func(o *Options) {
		o.InitTimeout = initTimeout
		o.Authenticator = authn
	})
	t.Cleanup(func() { close(authn.release) }) // runs before the replica's shutdown
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			r := r.forTest(t)
			c := r.dial(p.name)
			c.init("alice")
			select {
			case left := <-authn.left:
				if left > initTimeout {
					t.Fatalf("the check's context left it %v, want at most the init timeout (%v)", left, initTimeout)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the credentials were never checked")
			}
			wspExpectClose(c, closeInitTimeout, initTimeout+2*time.Second)
			// The deadline ends the check's context, or the 4408 close does
			// (sendClose cancels the socket's): the keeper closes the socket
			// at the same instant, and on a loaded machine it can come
			// before the goroutine the deadline's timer starts.
			select {
			case err := <-authn.returned:
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					t.Fatalf("the check's context ended with %v, want the init deadline or the 4408 close", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the credentials are still being checked after the socket was closed for its init timeout")
			}
			waitFor(t, "the socket to be released", func() bool { return r.placesTaken() == 0 })
		})
	}
}

// unavailableAuth cannot check any credentials: its identity service is
// down.
type unavailableAuth struct{ auth.Dev }

func (unavailableAuth) FromInitPayload(context.Context, map[string]any) (auth.Identity, bool, error) {
	return auth.Identity{}, false, errors.New("ask the identity service: connection refused")
}

// TestProtocolAuthUnavailable: credentials that cannot be checked close
// the socket with 1013 (try again later), which graphql-ws clients retry,
// not with 1011, on which they give up; and it is not counted as a slow
// consumer, whose close shares the code. The ERROR line an operator gets
// names the client's address, so that one client's bad payload can be told
// from the identity service being down.
func TestProtocolAuthUnavailable(t *testing.T) {
	for _, p := range wspProtocols {
		t.Run(p.name, func(t *testing.T) {
			// A replica each: its first failure is logged whole (see
			// TestAuthFailuresLoggedOncePerInterval).
			logs := &testrig.LogBuffer{}
			r := newReplica(t, func(o *Options) {
				o.Authenticator = unavailableAuth{}
				o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			})
			c := r.dial(p.name)
			c.init("alice")
			reason, _ := wspExpectClose(c, closeTryAgainLater, 2*time.Second)
			if reason != "authentication is unavailable; try again later" {
				t.Errorf("close reason %q", reason)
			}
			named := slices.ContainsFunc(strings.Split(logs.String(), "\n"), func(line string) bool {
				return strings.Contains(line, "cannot authenticate WebSocket connection") &&
					strings.Contains(line, "remote_addr="+c.conn.LocalAddr().String())
			})
			if !named {
				t.Errorf("no authentication failure logged with the client's address %s:\n%s", c.conn.LocalAddr(), logs)
			}
			if n := testutil.ToFloat64(r.server.ws.metrics.slowCloses); n != 0 {
				t.Errorf("herald_ws_slow_consumer_closes_total = %v after an authentication failure, want 0", n)
			}
		})
	}
}
