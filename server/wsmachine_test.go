package server

// Unit tests of the WebSocket protocols' state machine (wsmachine.go),
// with no socket: client messages go in, and what the protocol decided
// (frames, close, operation to start or stop) is compared as text. The
// frames are rendered as the client would read them, so these tables are
// also a summary of what each protocol says to what.

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/heraldhq/herald/auth"
)

// wsmConfig is the keepalive configuration of these tests.
var wsmConfig = wsConfig{initTimeout: 3 * time.Second, pingInterval: 15 * time.Second, pongTimeout: 10 * time.Second}

// wsmT0 is when the tests' sockets open.
var wsmT0 = time.Unix(1_700_000_000, 0)

// Client messages.
const (
	wsmInit      = `{"type":"connection_init"}`
	wsmInitAlice = `{"type":"connection_init","payload":{"user":"alice"}}`
	wsmSubscribe = `{"type":"subscribe","id":"1","payload":{"query":"{ viewer { id } }"}}`
	wsmStart     = `{"type":"start","id":"1","payload":{"query":"{ viewer { id } }"}}`
	wsmComplete  = `{"type":"complete","id":"1"}`
	wsmStop      = `{"type":"stop","id":"1"}`
	wsmPing      = `{"type":"ping"}`
	wsmPong      = `{"type":"pong"}`
	wsmTerminate = `{"type":"connection_terminate"}`
	wsmNotJSON   = `{"type":"start"`
	// An id with a byte that is not UTF-8, which the JSON decoder would
	// replace with U+FFFD.
	wsmNotUTF8Subscribe = "{\"type\":\"subscribe\",\"id\":\"a\xffb\",\"payload\":{\"query\":\"{ viewer { id } }\"}}"
	wsmNotUTF8Start     = "{\"type\":\"start\",\"id\":\"a\xffb\",\"payload\":{\"query\":\"{ viewer { id } }\"}}"
	wsmNotUTF8Close     = `close 1007 "Invalid message: a text frame must be valid UTF-8"`
)

// What the protocols answer, as described by wsmDescribe.
const (
	wsmAuth    = `authenticate {}`
	wsmAck     = `acked | send {"type":"connection_ack"}`
	wsmAckKA   = `acked | send {"type":"connection_ack"} | send {"type":"ka"}`
	wsmStarted = `start "1" { viewer { id } }`
)

// wsmWithID is msg, whose id is "1", with an id of n bytes instead.
func wsmWithID(msg string, n int) string {
	return strings.Replace(msg, `"id":"1"`, `"id":"`+strings.Repeat("i", n)+`"`, 1)
}

// wsmStartedAs is wsmStarted for the operation wsmWithID(wsmSubscribe, n)
// starts.
func wsmStartedAs(n int) string {
	return strings.Replace(wsmStarted, `"1"`, `"`+strings.Repeat("i", n)+`"`, 1)
}

// wsmMachine is a fresh socket's machine, opened at wsmT0.
func wsmMachine(p protocol) *wsMachine {
	m := &wsMachine{proto: p}
	m.heard(wsmT0)
	return m
}

// wsmFeed gives the machine each message in turn and describes what it
// decided for each. A connection_init's credentials get verdict v, and
// the answer is described after an arrow.
func wsmFeed(m *wsMachine, v initVerdict, msgs ...string) []string {
	var got []string
	for _, msg := range msgs {
		s := m.receive([]byte(msg))
		d := wsmDescribe(m.proto, s)
		if s.act == actAuthenticate {
			d += " → " + wsmDescribe(m.proto, m.answerInit(v, wsmT0, &wsmConfig))
		}
		got = append(got, d)
	}
	return got
}

// wsmDescribe renders a step: its frames as the client reads them, its
// close, its operation. The zero step is "".
func wsmDescribe(p protocol, s wsStep) string {
	var parts []string
	if s.nowAcked {
		parts = append(parts, "acked")
	}
	for i := range s.n {
		parts = append(parts, "send "+wsmWire(p, s.frames[i]))
	}
	if s.close != 0 {
		parts = append(parts, fmt.Sprintf("close %d %q", s.close, s.reason))
	}
	switch s.act {
	case actAuthenticate:
		payload, _ := json.Marshal(s.initPayload)
		parts = append(parts, "authenticate "+string(payload))
	case actStart:
		parts = append(parts, fmt.Sprintf("start %q %s", s.id, s.params.Query))
	case actStop:
		parts = append(parts, fmt.Sprintf("stop %q", s.id))
	}
	return strings.Join(parts, " | ")
}

// wsmWire renders a frame as the writer would write it, without the
// WebSocket frame header: the text message, or a control frame.
func wsmWire(p protocol, it outItem) string {
	switch it.kind {
	case frameRaw:
		return it.raw
	case framePingCtl:
		return "(ping control frame)"
	case framePongCtl:
		return "(pong control frame " + it.raw + ")"
	}
	n, payload := -1, ""
	switch it.kind {
	case frameNext:
		payload = string(it.data.bytes)
		n = len(payload)
	case frameError:
		payload = it.raw
		n = len(payload)
	}
	msg := appendOpFrameHead(nil, p, it.kind, it.op.idJSON, n)
	msg = msg[wsmHeaderLen(msg):]
	if n < 0 {
		return string(msg)
	}
	return string(msg) + payload + "}"
}

// wsmHeaderLen is the length of a server frame's header (RFC 6455 5.2).
func wsmHeaderLen(frame []byte) int {
	switch frame[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

var (
	wsmAccepted = initVerdict{}
	wsmRefused  = initVerdict{err: fmt.Errorf("%w: user must be a string", auth.ErrInvalidCredentials)}
)

// TestWSMachineMessages feeds each protocol sequences of client messages,
// credentials accepted unless the row says otherwise, and checks what the
// protocol decides for each message.
func TestWSMachineMessages(t *testing.T) {
	for _, tc := range []struct {
		p       protocol
		name    string
		verdict initVerdict
		msgs    []string
		want    []string
	}{
		// graphql-transport-ws
		{transportWS, "init is authenticated, then acknowledged", wsmAccepted,
			[]string{wsmInit}, []string{wsmAuth + " → " + wsmAck}},
		{transportWS, "init hands its payload to authentication", wsmAccepted,
			[]string{wsmInitAlice}, []string{`authenticate {"user":"alice"} → ` + wsmAck}},
		{transportWS, "second init: 4429", wsmAccepted,
			[]string{wsmInit, wsmInit}, []string{wsmAuth + " → " + wsmAck, `close 4429 "Too many initialisation requests"`}},
		{transportWS, "second init after a refusal: 4429", wsmRefused,
			[]string{wsmInit, wsmInit}, []string{wsmAuth + ` → close 4403 "Forbidden: invalid credentials: user must be a string"`,
				`close 4429 "Too many initialisation requests"`}},
		{transportWS, "subscribe before init: 4401", wsmAccepted,
			[]string{wsmSubscribe}, []string{`close 4401 "Unauthorized"`}},
		{transportWS, "subscribe after a refused init: 4401", wsmRefused,
			[]string{wsmInit, wsmSubscribe}, []string{wsmAuth + ` → close 4403 "Forbidden: invalid credentials: user must be a string"`,
				`close 4401 "Unauthorized"`}},
		{transportWS, "subscribe after the ack starts the operation", wsmAccepted,
			[]string{wsmInit, wsmSubscribe}, []string{wsmAuth + " → " + wsmAck, wsmStarted}},
		{transportWS, "complete stops the operation", wsmAccepted,
			[]string{wsmInit, wsmSubscribe, wsmComplete}, []string{wsmAuth + " → " + wsmAck, wsmStarted, `stop "1"`}},
		{transportWS, "complete before init stops nothing that runs, quietly", wsmAccepted,
			[]string{wsmComplete}, []string{`stop "1"`}},
		{transportWS, "ping before init: pong", wsmAccepted,
			[]string{wsmPing, wsmInit}, []string{`send {"type":"pong"}`, wsmAuth + " → " + wsmAck}},
		{transportWS, "ping with a payload: pong echoes it", wsmAccepted,
			[]string{`{"type":"ping","payload":{"n":1}}`}, []string{`send {"type":"pong","payload":{"n":1}}`}},
		{transportWS, "pong: nothing", wsmAccepted,
			[]string{wsmPong, `{"type":"pong","payload":{"x":1}}`}, []string{"", ""}},
		{transportWS, "not JSON: 4400", wsmAccepted,
			[]string{wsmNotJSON}, []string{`close 4400 "Invalid message: not a JSON object"`}},
		{transportWS, "a JSON array: 4400", wsmAccepted,
			[]string{`[]`}, []string{`close 4400 "Invalid message: not a JSON object"`}},
		{transportWS, "legacy start: 4400", wsmAccepted,
			[]string{wsmInit, wsmStart}, []string{wsmAuth + " → " + wsmAck, `close 4400 "Invalid message: unknown type \"start\""`}},
		{transportWS, "legacy connection_terminate: 4400", wsmAccepted,
			[]string{wsmTerminate}, []string{`close 4400 "Invalid message: unknown type \"connection_terminate\""`}},
		{transportWS, "subscribe without payload: 4400", wsmAccepted,
			[]string{wsmInit, `{"type":"subscribe","id":"1"}`},
			[]string{wsmAuth + " → " + wsmAck, `close 4400 "Invalid message: subscribe needs a payload"`}},
		{transportWS, "subscribe without query: 4400", wsmAccepted,
			[]string{wsmInit, `{"type":"subscribe","id":"1","payload":{"variables":{}}}`},
			[]string{wsmAuth + " → " + wsmAck, `close 4400 "Invalid message: the operation payload has no query"`}},
		{transportWS, "init payload not an object: 4400", wsmAccepted,
			[]string{`{"type":"connection_init","payload":[1]}`}, []string{`close 4400 "Invalid message: connection_init payload must be an object"`}},
		{transportWS, "text not UTF-8: 1007, not a subscribe under a mangled id", wsmAccepted,
			[]string{wsmInit, wsmNotUTF8Subscribe}, []string{wsmAuth + " → " + wsmAck, wsmNotUTF8Close}},
		{transportWS, "subscribe with an id of 256 bytes starts", wsmAccepted,
			[]string{wsmInit, wsmWithID(wsmSubscribe, 256)}, []string{wsmAuth + " → " + wsmAck, wsmStartedAs(256)}},
		{transportWS, "subscribe with an id over 256 bytes: 4400", wsmAccepted,
			[]string{wsmInit, wsmWithID(wsmSubscribe, 257)},
			[]string{wsmAuth + " → " + wsmAck, `close 4400 "Invalid message: subscribe id is 257 bytes, at most 256 allowed"`}},
		{transportWS, "complete with an id over 256 bytes: 4400", wsmAccepted,
			[]string{wsmInit, wsmWithID(wsmComplete, 70000)},
			[]string{wsmAuth + " → " + wsmAck, `close 4400 "Invalid message: complete id is 70000 bytes, at most 256 allowed"`}},
		{transportWS, "ping not UTF-8: 1007", wsmAccepted,
			[]string{"{\"type\":\"ping\",\"payload\":{\"x\":\"\xc3\"}}"}, []string{wsmNotUTF8Close}},

		// legacy graphql-ws
		{legacyWS, "init is acknowledged with ka right after", wsmAccepted,
			[]string{wsmInit}, []string{wsmAuth + " → " + wsmAckKA}},
		{legacyWS, "second init: 4429", wsmAccepted,
			[]string{wsmInit, wsmInit}, []string{wsmAuth + " → " + wsmAckKA, `close 4429 "Too many initialisation requests"`}},
		{legacyWS, "start before init is held until the ack", wsmAccepted,
			[]string{wsmStart}, []string{""}},
		{legacyWS, "start after the ack starts the operation", wsmAccepted,
			[]string{wsmInit, wsmStart}, []string{wsmAuth + " → " + wsmAckKA, wsmStarted}},
		{legacyWS, "stop stops the operation", wsmAccepted,
			[]string{wsmInit, wsmStart, wsmStop}, []string{wsmAuth + " → " + wsmAckKA, wsmStarted, `stop "1"`}},
		{legacyWS, "connection_terminate: 1000", wsmAccepted,
			[]string{wsmInit, wsmTerminate}, []string{wsmAuth + " → " + wsmAckKA, `close 1000 ""`}},
		{legacyWS, "not JSON: connection_error, the socket stays open", wsmAccepted,
			[]string{wsmInit, wsmNotJSON, wsmStart}, []string{wsmAuth + " → " + wsmAckKA,
				`send {"payload":{"message":"Invalid message: not JSON: unexpected end of JSON input"},"type":"connection_error"}`,
				wsmStarted}},
		{legacyWS, "not JSON before init: connection_error, init still acknowledged", wsmAccepted,
			[]string{`{"type":"connection_init",}`, wsmInit}, []string{
				`send {"payload":{"message":"Invalid message: not JSON: invalid character '}' looking for beginning of object key string"},"type":"connection_error"}`,
				wsmAuth + " → " + wsmAckKA}},
		{legacyWS, "JSON that is no object: 4400", wsmAccepted,
			[]string{`[]`}, []string{`close 4400 "Invalid message: not a JSON object"`}},
		{legacyWS, "ping is graphql-transport-ws's: 4400", wsmAccepted,
			[]string{wsmInit, wsmPing}, []string{wsmAuth + " → " + wsmAckKA, `close 4400 "Invalid message: unknown type \"ping\""`}},
		{legacyWS, "subscribe is graphql-transport-ws's: 4400", wsmAccepted,
			[]string{wsmInit, wsmSubscribe}, []string{wsmAuth + " → " + wsmAckKA, `close 4400 "Invalid message: unknown type \"subscribe\""`}},
		{legacyWS, "text not UTF-8: 1007, not a start under a mangled id", wsmAccepted,
			[]string{wsmInit, wsmNotUTF8Start}, []string{wsmAuth + " → " + wsmAckKA, wsmNotUTF8Close}},
		{legacyWS, "an id escaping a lone surrogate: 4400, not a start under U+FFFD", wsmAccepted,
			[]string{wsmInit, strings.Replace(wsmStart, `"id":"1"`, `"id":"a\ud800"`, 1)},
			[]string{wsmAuth + " → " + wsmAckKA, `close 4400 "Invalid message: it escapes half of a UTF-16 surrogate pair alone, which is no character"`}},
		{legacyWS, "text not UTF-8 nor JSON: 1007, not connection_error", wsmAccepted,
			[]string{"{\"type\":\xff"}, []string{wsmNotUTF8Close}},
		{legacyWS, "start with an id over 256 bytes: 4400", wsmAccepted,
			[]string{wsmInit, wsmWithID(wsmStart, 257)},
			[]string{wsmAuth + " → " + wsmAckKA, `close 4400 "Invalid message: start id is 257 bytes, at most 256 allowed"`}},
		{legacyWS, "stop without id: 4400", wsmAccepted,
			[]string{wsmInit, `{"type":"stop"}`}, []string{wsmAuth + " → " + wsmAckKA, `close 4400 "Invalid message: stop needs a non-empty string id"`}},
	} {
		t.Run(tc.p.String()+"/"+tc.name, func(t *testing.T) {
			got := wsmFeed(wsmMachine(tc.p), tc.verdict, tc.msgs...)
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Errorf("message %d, %s:\n got %s\nwant %s", i+1, tc.msgs[i], got[i], tc.want[i])
				}
			}
		})
	}
}

// TestWSMachineBinary: neither protocol has binary messages.
func TestWSMachineBinary(t *testing.T) {
	for _, p := range []protocol{transportWS, legacyWS} {
		got := wsmDescribe(p, wsmMachine(p).receiveBinary())
		if want := `close 4400 "Invalid message: binary frames are not supported"`; got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
}

// TestWSMachineAnswersInit: what each protocol answers connection_init
// with once its credentials are judged.
func TestWSMachineAnswersInit(t *testing.T) {
	later := wsmT0.Add(time.Hour)
	for _, tc := range []struct {
		p       protocol
		name    string
		verdict initVerdict
		want    string
		acked   bool
	}{
		{transportWS, "accepted", wsmAccepted, wsmAck, true},
		{legacyWS, "accepted", wsmAccepted, wsmAckKA, true},
		{transportWS, "accepted until later", initVerdict{expires: later}, wsmAck, true},
		{transportWS, "refused: 4403 with the reason",
			wsmRefused, `close 4403 "Forbidden: invalid credentials: user must be a string"`, false},
		{legacyWS, "refused: connection_error, then 4403",
			wsmRefused, `send {"payload":{"message":"invalid credentials: user must be a string"},"type":"connection_error"} | ` +
				`close 4403 "Forbidden: invalid credentials: user must be a string"`, false},
		{transportWS, "refused with a long reason: clipped",
			initVerdict{err: fmt.Errorf("%w: %s", auth.ErrInvalidCredentials, strings.Repeat("é", 40))},
			`close 4403 "Forbidden: invalid credentials: ` + strings.Repeat("é", 19) + `…"`, false},
		{transportWS, "not checked: 1013", initVerdict{err: errors.New("key server down")},
			`close 1013 "authentication is unavailable; try again later"`, false},
		{legacyWS, "not checked: 1013", initVerdict{err: errors.New("key server down")},
			`close 1013 "authentication is unavailable; try again later"`, false},
		{transportWS, "expired already: 4403", initVerdict{expires: wsmT0},
			`close 4403 "Forbidden: the token has expired"`, false},
		{legacyWS, "expired already: connection_error, then 4403", initVerdict{expires: wsmT0.Add(-time.Second)},
			`send {"payload":{"message":"the token has expired"},"type":"connection_error"} | ` +
				`close 4403 "Forbidden: the token has expired"`, false},
	} {
		t.Run(tc.p.String()+"/"+tc.name, func(t *testing.T) {
			m := wsmMachine(tc.p)
			if got := wsmDescribe(tc.p, m.receive([]byte(wsmInit))); got != wsmAuth {
				t.Fatalf("init: %s, want %s", got, wsmAuth)
			}
			if got := wsmDescribe(tc.p, m.answerInit(tc.verdict, wsmT0, &wsmConfig)); got != tc.want {
				t.Fatalf("answer:\n got %s\nwant %s", got, tc.want)
			}
			if m.acked.Load() != tc.acked {
				t.Fatalf("acked %v, want %v", m.acked.Load(), tc.acked)
			}
			if !tc.acked {
				return
			}
			if got, want := m.expires.Load(), wsmUnixNano(tc.verdict.expires); got != want {
				t.Fatalf("expires %d, want %d", got, want)
			}
			if got, want := m.nextPing.Load(), wsmT0.Add(wsmConfig.pingInterval).UnixNano(); got != want {
				t.Fatalf("first ping due at %d, want PingInterval after the ack (%d)", got, want)
			}
		})
	}
}

func wsmUnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// TestWSMachineIDInUse: a subscribe (start) whose id is still open.
// graphql-transport-ws closes with 4409; the legacy protocol stops the
// running operation, silently, for the new one to start, as
// subscriptions-transport-ws's server does.
func TestWSMachineIDInUse(t *testing.T) {
	for _, tc := range []struct {
		p    protocol
		id   string
		want string
	}{
		{transportWS, "a", `close 4409 "Subscriber for a already exists"`},
		{transportWS, strings.Repeat("a", 59) + "é", `close 4409 "Subscriber for ` + strings.Repeat("a", 59) + `… already exists"`},
		{legacyWS, "a", `stop "a"`},
	} {
		t.Run(tc.p.String()+"/"+tc.id, func(t *testing.T) {
			if got := wsmDescribe(tc.p, wsmMachine(tc.p).idInUse(tc.id)); got != tc.want {
				t.Fatalf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestWSMachineReject: an operation refused before it ran (parse,
// validation, limits).
func TestWSMachineReject(t *testing.T) {
	resp := &graphql.Response{Errors: gqlerror.List{{Message: "boom"}}}
	for _, tc := range []struct {
		p    protocol
		want string
	}{
		{transportWS, `send {"id":"v","type":"error","payload":[{"message":"boom"}]}`},
		{legacyWS, `send {"id":"v","type":"data","payload":{"errors":[{"message":"boom"}]}} | send {"id":"v","type":"complete"}`},
	} {
		op := &operation{id: "v", idJSON: `"v"`}
		if got := wsmDescribe(tc.p, wsmMachine(tc.p).reject(op, resp)); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.p, got, tc.want)
		}
	}
}

// TestWSMachineTick: the keeper's tick enforces the init timeout, the
// credentials' expiry and keepalive, each protocol with its own frames.
func TestWSMachineTick(t *testing.T) {
	ping, pong := wsmConfig.pingInterval, wsmConfig.pongTimeout
	type tick struct {
		at    time.Duration // after wsmT0
		heard time.Duration // the client was last heard from at this time after wsmT0; 0: not since the ack
		want  string
	}
	for _, tc := range []struct {
		p       protocol
		name    string
		verdict *initVerdict // nil: no connection_init
		ticks   []tick
	}{
		{transportWS, "no init: 4408 at the init timeout", nil, []tick{
			{at: wsmConfig.initTimeout - time.Millisecond, want: ""},
			{at: wsmConfig.initTimeout, want: `close 4408 "Connection initialisation timeout"`},
		}},
		{legacyWS, "no init: 4408 at the init timeout", nil, []tick{
			{at: wsmConfig.initTimeout, want: `close 4408 "Connection initialisation timeout"`},
		}},
		{transportWS, "refused init: still 4408", &wsmRefused, []tick{
			{at: wsmConfig.initTimeout, want: `close 4408 "Connection initialisation timeout"`},
		}},
		{transportWS, "acknowledged: ping every PingInterval", &wsmAccepted, []tick{
			{at: wsmConfig.initTimeout, want: ""},
			{at: ping - time.Millisecond, want: ""},
			{at: ping, heard: ping - time.Second, want: `send {"type":"ping"}`},
			{at: ping + time.Second, heard: ping - time.Second, want: ""},
			{at: 2 * ping, heard: 2*ping - time.Second, want: `send {"type":"ping"}`},
		}},
		{legacyWS, "acknowledged: ka and a WebSocket ping every PingInterval", &wsmAccepted, []tick{
			{at: ping - time.Millisecond, want: ""},
			{at: ping, heard: ping - time.Second, want: `send {"type":"ka"} | send (ping control frame)`},
			{at: ping + time.Second, heard: ping - time.Second, want: ""},
		}},
		{transportWS, "silent client: 1001 after PingInterval+PongTimeout", &wsmAccepted, []tick{
			{at: ping, want: `send {"type":"ping"}`},
			{at: ping + pong, want: ""},
			{at: ping + pong + time.Millisecond, want: `close 1001 "keepalive timeout: nothing received from the client"`},
		}},
		{legacyWS, "silent client: 1001 after PingInterval+PongTimeout", &wsmAccepted, []tick{
			{at: ping + pong + time.Millisecond, want: `close 1001 "keepalive timeout: nothing received from the client"`},
		}},
		{transportWS, "credentials expire: 4403", &initVerdict{expires: wsmT0.Add(5 * time.Second)}, []tick{
			{at: 5*time.Second - time.Millisecond, heard: time.Second, want: ""},
			{at: 5 * time.Second, heard: time.Second, want: `close 4403 "Forbidden: the token has expired; reconnect with a fresh one"`},
		}},
	} {
		t.Run(tc.p.String()+"/"+tc.name, func(t *testing.T) {
			m := wsmMachine(tc.p)
			if tc.verdict != nil {
				wsmFeed(m, *tc.verdict, wsmInit)
			}
			for _, k := range tc.ticks {
				if k.heard != 0 {
					m.heard(wsmT0.Add(k.heard))
				}
				// The keeper skips an acknowledged socket until nextDue:
				// no tick may act before it.
				acked, due := m.acked.Load(), m.nextDue(&wsmConfig)
				got := wsmDescribe(tc.p, m.tick(wsmT0.Add(k.at), wsmT0, &wsmConfig))
				if got != k.want {
					t.Fatalf("tick at %v:\n got %s\nwant %s", k.at, got, k.want)
				}
				if at := wsmT0.Add(k.at).UnixNano(); acked && got != "" && at < due {
					t.Fatalf("tick at %v acted (%s) %v before the socket was due", k.at, got, time.Duration(due-at))
				}
			}
		})
	}
}

// TestWSMachineNextDue: an acknowledged socket is next due at the
// earliest of its next ping, the end of its keepalive allowance and its
// credentials' expiry.
func TestWSMachineNextDue(t *testing.T) {
	ping, pong := wsmConfig.pingInterval, wsmConfig.pongTimeout
	at := func(d time.Duration) int64 { return wsmT0.Add(d).UnixNano() }
	for _, tc := range []struct {
		name    string
		verdict initVerdict
		pinged  bool          // a ping went out at PingInterval
		heard   time.Duration // last heard from, after wsmT0
		want    int64
	}{
		{"just acknowledged: the first ping", wsmAccepted, false, 0, at(ping)},
		{"expiring before the first ping", initVerdict{expires: wsmT0.Add(5 * time.Second)}, false, 0, at(5 * time.Second)},
		{"pinged, answered: the next ping", wsmAccepted, true, ping, at(2 * ping)},
		{"pinged, silent since the ack: the allowance's end", wsmAccepted, true, 0, at(ping+pong) + 1},
	} {
		m := wsmMachine(transportWS)
		wsmFeed(m, tc.verdict, wsmInit)
		if tc.pinged {
			m.tick(wsmT0.Add(ping), wsmT0, &wsmConfig)
		}
		if tc.heard != 0 {
			m.heard(wsmT0.Add(tc.heard))
		}
		if got := m.nextDue(&wsmConfig); got != tc.want {
			t.Errorf("%s: next due %v after the open, want %v", tc.name, time.Duration(got-wsmT0.UnixNano()), time.Duration(tc.want-wsmT0.UnixNano()))
		}
	}
}

// TestWSMachineKeepaliveFastPath: the exact ping and pong messages of
// graphql-transport-ws are answered without the decoder; anything else,
// and every legacy message, goes to receive.
func TestWSMachineKeepaliveFastPath(t *testing.T) {
	for _, tc := range []struct {
		p       protocol
		msg     string
		reply   string
		handled bool
	}{
		{transportWS, wsmPing, `{"type":"pong"}`, true},
		{transportWS, wsmPong, "", true},
		{transportWS, `{"type": "ping"}`, "", false},
		{transportWS, `{"type":"ka"}`, "", false},
		{legacyWS, wsmPing, "", false},
		{legacyWS, wsmPong, "", false},
	} {
		reply, handled := wsmMachine(tc.p).keepalive([]byte(tc.msg))
		if reply != tc.reply || handled != tc.handled {
			t.Errorf("%s %s: reply %q handled %v, want %q %v", tc.p, tc.msg, reply, handled, tc.reply, tc.handled)
		}
	}
}

// TestWSMachineIdleCostsNothing: what an idle socket's machine does
// tens of thousands of times a second on a busy replica (the keeper's
// ticks, keepalive messages) allocates nothing.
func TestWSMachineIdleCostsNothing(t *testing.T) {
	for _, p := range []protocol{transportWS, legacyWS} {
		m := wsmMachine(p)
		wsmFeed(m, wsmAccepted, wsmInit)
		now := wsmT0
		tick := func() {
			now = now.Add(wsmConfig.pingInterval) // a ping is due every time
			m.heard(now)
			m.tick(now, wsmT0, &wsmConfig)
		}
		if n := testing.AllocsPerRun(100, tick); n != 0 {
			t.Errorf("%s: a tick allocates %.1f times; want 0", p, n)
		}
		data := []byte(wsmPing)
		if n := testing.AllocsPerRun(100, func() { m.keepalive(data) }); n != 0 {
			t.Errorf("%s: the keepalive fast path allocates %.1f times; want 0", p, n)
		}
	}
}

// TestWSMachineStartable: an operation is not started once the
// credentials have expired, whether or not the keeper has looked.
func TestWSMachineStartable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expires time.Time
		want    string
	}{
		{"never expires", time.Time{}, ""},
		{"expires later", wsmT0.Add(time.Second), ""},
		{"expires now", wsmT0, `close 4403 "Forbidden: the token has expired; reconnect with a fresh one"`},
		{"expired", wsmT0.Add(-time.Second), `close 4403 "Forbidden: the token has expired; reconnect with a fresh one"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := wsmMachine(transportWS)
			m.answerInit(initVerdict{}, wsmT0.Add(-time.Minute), &wsmConfig)
			m.extendExpiry(tc.expires)
			s, ok := m.startable(wsmT0)
			if got := wsmDescribe(transportWS, s); got != tc.want || ok != (tc.want == "") {
				t.Fatalf("startable = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// TestWSMachineLegacyKeepAliveBound: subscriptions-transport-ws's client
// closes a socket on which it heard no ka within its timeout (30 s by
// default), so with --ws-ping-interval of a minute a legacy socket still
// gets a ka (and a WebSocket ping) every 20 s; graphql-transport-ws
// sockets get their ping at the interval.
func TestWSMachineLegacyKeepAliveBound(t *testing.T) {
	cfg := wsmConfig
	cfg.pingInterval = time.Minute
	for _, tc := range []struct {
		p     protocol
		ticks map[time.Duration]string // after wsmT0, the client heard a second before
	}{
		{legacyWS, map[time.Duration]string{
			20*time.Second - time.Millisecond: "",
			20 * time.Second:                  `send {"type":"ka"} | send (ping control frame)`,
			40 * time.Second:                  `send {"type":"ka"} | send (ping control frame)`,
		}},
		{transportWS, map[time.Duration]string{
			20 * time.Second:               "",
			time.Minute - time.Millisecond: "",
			time.Minute:                    `send {"type":"ping"}`,
		}},
	} {
		m := wsmMachine(tc.p)
		s := m.receive([]byte(wsmInit))
		m.answerInit(wsmAccepted, wsmT0, &cfg)
		if s.act != actAuthenticate {
			t.Fatalf("%s: connection_init did not ask for authentication", tc.p)
		}
		ats := slices.Sorted(maps.Keys(tc.ticks))
		for _, at := range ats {
			m.heard(wsmT0.Add(at - time.Second))
			if got := wsmDescribe(tc.p, m.tick(wsmT0.Add(at), wsmT0, &cfg)); got != tc.ticks[at] {
				t.Fatalf("%s, ping interval %v: tick at %v:\n got %s\nwant %s", tc.p, cfg.pingInterval, at, got, tc.ticks[at])
			}
		}
	}
}
