package server

import (
	"encoding/json"
	"errors"
	"math"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/surrogate"
)

// The WebSocket protocols' state machine, apart from the socket.
//
// A socket speaks graphql-transport-ws or the legacy graphql-ws
// (subscriptions-transport-ws). wsMachine holds one socket's protocol
// state (connection_init received, acknowledged, keepalive times) and
// decides what each client message, and each tick of the keeper, means:
// the frames to send, the close to choose, the operation to start or stop.
// It never touches the socket. It returns a wsStep, which the socket
// (wsConn.carryOut) carries out, so both protocols can be tested message
// by message without one (wsmachine_test.go).
//
// The machine sees messages, never deliveries: a subscription's results go
// from its shared execution to the socket's queue without it, and the
// writer names their frames for the protocol (typeSegment).

// wsAct is what a step asks the socket to do beyond sending and closing.
type wsAct uint8

const (
	_ wsAct = iota // the zero value: nothing beyond sending and closing
	// actAuthenticate: check initPayload's credentials and give the
	// verdict to answerInit.
	actAuthenticate
	// actStart: start operation id with params (limits, execution); an id
	// in use is answered by idInUse, a refused operation by reject.
	actStart
	// actStop: stop operation id if it runs; nothing more is sent for it.
	actStop
)

// wsStep is what the protocol decided. The socket carries it out in this
// order: it notes an acknowledgement (nowAcked), sends the frames, chooses
// the close, then does act. The zero step does nothing.
type wsStep struct {
	frames [2]outItem // the first n are sent; an item without op is connection-level
	n      int

	close  int    // the close code to choose; 0: the socket stays open
	reason string // the close frame's reason

	act         wsAct
	id          string           // actStart, actStop
	params      operationPayload // actStart
	initPayload map[string]any   // actAuthenticate

	nowAcked bool // connection_init was just acknowledged: keepalive starts
}

// send adds a frame to the step.
func (s *wsStep) send(it outItem) {
	s.frames[s.n] = it
	s.n++
}

func closeStep(code int, reason string) wsStep { return wsStep{close: code, reason: reason} }

func textStep(raw string) wsStep {
	var s wsStep
	s.send(textFrame(raw))
	return s
}

// textFrame is a connection-level text message: a whole frame without id.
func textFrame(raw string) outItem { return outItem{kind: frameRaw, raw: raw} }

// wsMachine is the protocol state of one socket. It is part of wsConn (no
// allocation of its own); its methods return what to do and never block.
type wsMachine struct {
	proto protocol

	// Reader-owned.
	initReceived bool
	// early holds the legacy starts received before connection_init, to
	// run once it is acknowledged (see holdEarly).
	early []clientMessage

	// opened is when the first frame was heard, as the socket opened
	// (newWSConn): the start of the machine's clock (see at). Set then,
	// before the keeper knows the socket, and only read afterwards.
	opened time.Time

	// Shared by the reader (receive, answerInit, heard) and the keeper
	// (tick).
	acked    atomic.Bool
	lastSeen atomic.Int64 // the last frame read, on the machine's clock
	nextPing atomic.Int64 // when the next keepalive is due, on the machine's clock
	expires  atomic.Int64 // unix nanoseconds the identity's credentials expire; 0: never
	// skew is how far the wall clock was ahead of the machine's clock at
	// the last tick (a step of the system clock since the socket
	// opened), which puts expires on the machine's clock for nextDue.
	skew atomic.Int64
}

// at is now on the machine's clock, in nanoseconds: the unix time when
// the socket opened plus the time passed since on the monotonic clock.
// Keepalive is judged on it, not on the wall clock, which NTP, an
// operator or a resumed VM may step: a step forward would close every
// socket as silent at once, a step back would stop their pings and the
// detection of dead ones for as long as it stepped. It reads as unix
// nanoseconds until the wall clock is stepped. Credentials expire at a
// wall-clock time (a token's exp) and are judged on the wall clock.
func (m *wsMachine) at(now time.Time) int64 {
	if m.opened.IsZero() { // no frame heard yet: only a machine made without a socket, in tests
		return now.UnixNano()
	}
	return m.opened.UnixNano() + int64(now.Sub(m.opened))
}

// extendExpiry makes t the instant the socket's credentials expire (zero:
// never), as a refresh replaced them. Any goroutine may call it.
func (m *wsMachine) extendExpiry(t time.Time) {
	m.expires.Store(expiryNanos(t))
}

// expiryNanos is t in unix nanoseconds for an expiry (0: never, for the
// zero time). UnixNano is undefined past 2262 (a token's exp of 9999999999,
// "never", wrapped negative and expired at once), so later times are the
// latest instant it holds, and times before 1970 the first after it.
func expiryNanos(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	case t.Before(time.Unix(0, 1)):
		return 1
	}
	return t.UnixNano()
}

// heard notes a frame from the client, whatever it was: a sign of life.
// The first, as the socket opens, starts the machine's clock.
func (m *wsMachine) heard(now time.Time) {
	if m.opened.IsZero() {
		m.opened = now
	}
	m.lastSeen.Store(m.at(now))
}

// receive decides what one text message from the client means. Only the
// reader calls it, one message at a time.
func (m *wsMachine) receive(data []byte) wsStep {
	if !utf8.Valid(data) {
		// RFC 6455 section 8.1: a text frame must be UTF-8, or the
		// connection fails with 1007. The JSON decoder would replace the
		// bad bytes instead, and an id holding them would be answered
		// under another id.
		return closeStep(closeInvalidPayload, "Invalid message: a text frame must be valid UTF-8")
	}
	msg, perr := decodeClientMessage(m.proto, data)
	if perr != nil {
		return m.malformed(perr)
	}
	if surrogate.LoneInJSON(data) { // once data is known to be JSON (see LoneInJSON)
		// Valid UTF-8, but the decoder turned the escape into U+FFFD.
		return m.malformed(invalid("Invalid message: it escapes half of a UTF-16 surrogate pair alone, which is no character"))
	}
	switch msg.Type {
	case msgConnectionInit:
		return m.onInit(msg.Payload)
	case msgPing:
		return textStep(pongFrame(msg.Payload))
	case msgPong:
		return wsStep{} // liveness only, which heard has noted
	case msgSubscribe, msgStart:
		return m.onSubscribe(msg)
	case msgComplete, msgStop:
		if m.dropEarly(msg.ID) {
			return wsStep{} // a held start: it never ran
		}
		return wsStep{act: actStop, id: msg.ID}
	case msgConnectionTerminate:
		return closeStep(closeNormal, "")
	}
	return wsStep{} // decodeClientMessage lets no other type through
}

// malformed answers a message that breaks the protocol: 4400, except that
// subscriptions-transport-ws answers a frame that is not JSON at all with
// connection_error carrying the parser's complaint and keeps the socket
// open; its clients expect no more than that.
func (m *wsMachine) malformed(perr *protocolError) wsStep {
	if perr.notJSON != "" && m.proto == legacyWS {
		return textStep(connectionErrorFrame("Invalid message: not JSON: " + perr.notJSON))
	}
	return closeStep(closeBadRequest, perr.msg)
}

// receiveBinary answers a binary message: neither protocol has any.
func (m *wsMachine) receiveBinary() wsStep {
	return closeStep(closeBadRequest, "Invalid message: binary frames are not supported")
}

// keepalive is receive for the exact ping and pong messages clients send,
// the only traffic of an idle socket, without the JSON decoder: with tens
// of thousands of sockets pinged every interval, decoding them would be
// most of what idle sockets cost in CPU. reply is the frame to send ("":
// none); handled is false for any other message, which goes to receive.
func (m *wsMachine) keepalive(data []byte) (reply string, handled bool) {
	if m.proto != transportWS {
		return "", false
	}
	switch string(data) { // compiled without allocating
	case framePong:
		return "", true // liveness only, which heard has noted
	case framePing:
		return framePong, true
	}
	return "", false
}

func (m *wsMachine) onInit(payload json.RawMessage) wsStep {
	if m.initReceived {
		return closeStep(closeTooManyInits, "Too many initialisation requests")
	}
	m.initReceived = true
	init, perr := decodeInitPayload(payload)
	if perr != nil {
		return closeStep(closeBadRequest, perr.msg)
	}
	return wsStep{act: actAuthenticate, initPayload: init}
}

// initVerdict is what the socket made of connection_init's credentials.
type initVerdict struct {
	// err is nil when they are accepted (with an identity or anonymous),
	// wraps auth.ErrInvalidCredentials when they are refused, and is any
	// other error when they could not be checked.
	err error
	// expires is when accepted credentials stop being valid; zero: never.
	expires time.Time
}

// answerInit answers connection_init once its credentials are judged, at
// now: the acknowledgement, which starts keepalive, or the close that
// refuses the connection.
func (m *wsMachine) answerInit(v initVerdict, now time.Time, cfg *wsConfig) wsStep {
	switch {
	case errors.Is(v.err, auth.ErrInvalidCredentials):
		return m.refuseInit(v.err.Error())
	case v.err != nil:
		// 1013, a temporary condition: graphql-ws clients retry it with
		// back-off, where they give up on 1011 for good.
		return closeStep(closeTryAgainLater, "authentication is unavailable; try again later")
	case !v.expires.IsZero() && !v.expires.After(now):
		// Credentials accepted but spent by now (an upgrade's cookie that
		// expired before connection_init came) are refused like any
		// others.
		return m.refuseInit("the token has expired")
	}
	if !v.expires.IsZero() {
		m.expires.Store(expiryNanos(v.expires))
	}
	// nextPing before acked: the keeper reads it once acked is set.
	m.nextPing.Store(m.at(now) + int64(m.pingEvery(cfg)))
	m.acked.Store(true)
	s := wsStep{nowAcked: true}
	s.send(textFrame(frameAck))
	if m.proto == legacyWS {
		s.send(textFrame(frameKA)) // legacy clients expect ka right after the ack
	}
	return s
}

// refuseInit refuses connection_init's credentials with 4403, after a
// connection_error on the legacy protocol: subscriptions-transport-ws
// reports connection_error to the application; it does not read close
// reasons.
func (m *wsMachine) refuseInit(why string) wsStep {
	var s wsStep
	if m.proto == legacyWS {
		s.send(textFrame(connectionErrorFrame(why)))
	}
	s.close, s.reason = closeForbidden, "Forbidden: "+clipReason(why)
	return s
}

func (m *wsMachine) onSubscribe(msg clientMessage) wsStep {
	if !m.acked.Load() {
		if m.holdEarly(msg) {
			return wsStep{}
		}
		return closeStep(closeUnauthorized, "Unauthorized")
	}
	params, perr := decodeOperation(msg.Payload)
	if perr != nil {
		return closeStep(closeBadRequest, perr.msg)
	}
	return wsStep{act: actStart, id: msg.ID, params: params}
}

// maxEarlyStarts and maxEarlyBytes bound the starts a legacy socket holds
// before its connection_init (holdEarly), in number and in the bytes of
// their payloads, so that a socket not yet authenticated holds little;
// one more closes it with 4401.
const (
	maxEarlyStarts = 16
	maxEarlyBytes  = 64 << 10
)

// holdEarly keeps a legacy start received before connection_init, and
// reports whether it did. subscriptions-transport-ws's client sends
// connection_init once its connectionParams promise resolves, and any
// start asked for meanwhile at once, before it (its server runs them);
// an application fetching a token there would otherwise have its socket
// closed with 4401. A start reusing a held id replaces it, as a start
// over a running id does (idInUse). The held starts run as the identity
// of connection_init once it is acknowledged (takeEarly); the init
// timeout still closes a socket that sends none.
func (m *wsMachine) holdEarly(msg clientMessage) bool {
	if m.proto != legacyWS || m.initReceived {
		return false
	}
	m.dropEarly(msg.ID)
	held := len(msg.Payload)
	for _, e := range m.early {
		held += len(e.Payload)
	}
	if len(m.early) >= maxEarlyStarts || held > maxEarlyBytes {
		return false
	}
	m.early = append(m.early, msg)
	return true
}

// dropEarly forgets the held start of id, reporting whether there was one.
func (m *wsMachine) dropEarly(id string) bool {
	for i := range m.early {
		if m.early[i].ID == id {
			m.early = append(m.early[:i], m.early[i+1:]...)
			return true
		}
	}
	return false
}

// takeEarly returns the held starts, in the order they came, once the
// connection is acknowledged, and forgets them.
func (m *wsMachine) takeEarly() []clientMessage {
	if !m.acked.Load() {
		return nil
	}
	early := m.early
	m.early = nil
	return early
}

// idInUse answers a subscribe (legacy: start) whose id names an operation
// that is still open. graphql-transport-ws closes the socket with 4409.
// The legacy protocol does what subscriptions-transport-ws's server does
// (onMessage, GQL_START): it stops the running operation, as a stop would
// (nothing more is sent for it, not even a complete, which the client
// would take for the new operation's), and the socket then starts the new
// one.
func (m *wsMachine) idInUse(id string) wsStep {
	if m.proto == transportWS {
		return closeStep(closeSubscriberExists, "Subscriber for "+clipReason(id)+" already exists")
	}
	return wsStep{act: actStop, id: id}
}

// reject answers an operation that failed before it ran (parse,
// validation, limits): graphql-transport-ws sends error and no complete;
// the legacy protocol sends the errors as data, then complete, as
// subscriptions-transport-ws did.
func (m *wsMachine) reject(op *operation, resp *graphql.Response) wsStep {
	var s wsStep
	if m.proto == transportWS {
		errs, _ := json.Marshal(resp.Errors)
		s.send(outItem{kind: frameError, op: op, raw: string(errs)})
		return s
	}
	s.send(outItem{kind: frameNext, op: op, data: &payload{bytes: encodeResponse(resp)}})
	s.send(outItem{kind: frameComplete, op: op})
	return s
}

// tick enforces the init timeout, the credentials' expiry and keepalive
// at now, for a socket opened at opened. The keeper calls it for every
// socket on each of its ticks, so it allocates nothing.
func (m *wsMachine) tick(now, opened time.Time, cfg *wsConfig) wsStep {
	if !m.acked.Load() {
		if now.Sub(opened) >= cfg.initTimeout {
			return closeStep(closeInitTimeout, "Connection initialisation timeout")
		}
		return wsStep{}
	}
	if m.expired(now) {
		return expiredStep()
	}
	mono := m.at(now)
	m.skew.Store(now.UnixNano() - mono)
	if time.Duration(mono-m.lastSeen.Load()) > cfg.pingInterval+cfg.pongTimeout {
		return closeStep(closeGoingAway, "keepalive timeout: nothing received from the client")
	}
	if mono < m.nextPing.Load() {
		return wsStep{}
	}
	m.nextPing.Store(mono + int64(m.pingEvery(cfg)))
	if m.proto == transportWS {
		return textStep(framePing)
	}
	s := textStep(frameKA)
	s.send(outItem{kind: framePingCtl}) // legacy has no pong message; the WebSocket pong proves liveness
	return s
}

// maxLegacyKeepAlive bounds the legacy protocol's ka interval:
// subscriptions-transport-ws's client closes a socket on which it heard
// no ka within its timeout (30 s by default), so a --ws-ping-interval of
// 30 s or more would have every legacy client reconnect over and over.
const maxLegacyKeepAlive = 20 * time.Second

// pingEvery is the socket's keepalive interval: --ws-ping-interval, at
// most maxLegacyKeepAlive on the legacy protocol.
func (m *wsMachine) pingEvery(cfg *wsConfig) time.Duration {
	if m.proto == legacyWS {
		return min(cfg.pingInterval, maxLegacyKeepAlive)
	}
	return cfg.pingInterval
}

// expired reports whether the socket's credentials have expired at now.
func (m *wsMachine) expired(now time.Time) bool {
	exp := m.expires.Load()
	return exp != 0 && now.UnixNano() >= exp
}

func expiredStep() wsStep {
	return closeStep(closeForbidden, "Forbidden: the token has expired; reconnect with a fresh one")
}

// startable answers an operation the protocol let through, at now, before
// the socket starts it: credentials that have expired since the keeper
// last looked (up to a second ago, or an idle socket's last keepalive)
// close the socket with 4403 as the keeper would, rather than run it as
// an identity that is no longer valid. ok is false when it may not start.
func (m *wsMachine) startable(now time.Time) (s wsStep, ok bool) {
	if m.expired(now) {
		return expiredStep(), false
	}
	return wsStep{}, true
}

// nextDue is the earliest instant, on the machine's clock (see at), at
// which tick can have something to do for an acknowledged socket: its next
// ping, the end of its keepalive allowance, or its credentials' expiry
// (on the wall clock as the last tick read it: a later step of the wall
// clock is seen at the next tick, at most a ping interval later). A frame
// heard later only moves the allowance on, and a refresh that brings the
// expiry earlier wakes the keeper, so checking no sooner misses nothing.
func (m *wsMachine) nextDue(cfg *wsConfig) int64 {
	due := m.nextPing.Load()
	// tick closes once strictly more than the allowance has passed.
	due = min(due, m.lastSeen.Load()+int64(cfg.pingInterval+cfg.pongTimeout)+1)
	if exp := m.expires.Load(); exp != 0 {
		if skew := m.skew.Load(); skew < 0 && exp > math.MaxInt64+skew {
			exp = math.MaxInt64 // "never" (see expiryNanos) stays never
		} else {
			exp -= skew
		}
		due = min(due, exp)
	}
	return due
}

// pongFrame answers a ping, echoing its payload as the graphql-ws
// reference server does.
func pongFrame(payload json.RawMessage) string {
	if payload == nil {
		return framePong
	}
	return `{"type":"pong","payload":` + string(payload) + `}`
}

func connectionErrorFrame(msg string) string {
	body, _ := json.Marshal(map[string]any{"type": msgConnectionError, "payload": map[string]string{"message": msg}})
	return string(body)
}
