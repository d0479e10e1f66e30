package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// protocol is a negotiated WebSocket subprotocol.
type protocol uint8

const (
	// transportWS is graphql-transport-ws, the protocol of the graphql-ws
	// library (GraphiQL, Apollo's GraphQLWsLink).
	transportWS protocol = iota
	// legacyWS is subscriptions-transport-ws (GraphQL Playground, Apollo's
	// old WebSocketLink), whose subprotocol is confusingly named graphql-ws.
	legacyWS
)

// Subprotocol names as offered in Sec-WebSocket-Protocol.
const (
	subprotocolTransportWS = "graphql-transport-ws"
	subprotocolLegacy      = "graphql-ws"
)

func (p protocol) String() string {
	if p == legacyWS {
		return subprotocolLegacy
	}
	return subprotocolTransportWS
}

// negotiateSubprotocol picks the protocol for the offered subprotocols;
// graphql-transport-ws wins when both are offered.
// offeredSubprotocols lists the subprotocols r offers, from every
// Sec-WebSocket-Protocol line: several are one list (RFC 6455 section
// 11.3.4), where gorilla's websocket.Subprotocols reads the first.
func offeredSubprotocols(r *http.Request) []string {
	var offered []string
	for _, line := range r.Header.Values("Sec-Websocket-Protocol") {
		for p := range strings.SplitSeq(line, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, p)
			}
		}
	}
	return offered
}

func negotiateSubprotocol(offered []string) (protocol, bool) {
	legacy := false
	for _, p := range offered {
		switch p {
		case subprotocolTransportWS:
			return transportWS, true
		case subprotocolLegacy:
			legacy = true
		}
	}
	return legacyWS, legacy
}

// Close codes. 44xx are graphql-transport-ws's; the others are RFC 6455's.
const (
	closeNormal           = 1000
	closeGoingAway        = 1001
	closeInvalidPayload   = 1007 // a text frame that is not UTF-8 (RFC 6455 section 8.1)
	closeTryAgainLater    = 1013
	closeBadRequest       = 4400
	closeUnauthorized     = 4401
	closeForbidden        = 4403
	closeInitTimeout      = 4408
	closeSubscriberExists = 4409
	closeTooManyInits     = 4429
)

// Message types of both protocols.
const (
	msgConnectionInit      = "connection_init"
	msgConnectionAck       = "connection_ack"
	msgConnectionError     = "connection_error"
	msgConnectionTerminate = "connection_terminate"
	msgPing                = "ping"
	msgPong                = "pong"
	msgKeepAlive           = "ka"
	msgSubscribe           = "subscribe"
	msgStart               = "start"
	msgNext                = "next"
	msgData                = "data"
	msgError               = "error"
	msgComplete            = "complete"
	msgStop                = "stop"
)

// clientMessage is a decoded message from the client. Its fields are
// checked for the shape its type requires by decodeClientMessage.
type clientMessage struct {
	Type    string
	ID      string
	Payload json.RawMessage // nil when absent or null
}

// operationPayload is the payload of subscribe (and legacy start).
type operationPayload struct {
	Query         string
	OperationName string
	Variables     map[string]any
	Extensions    map[string]any
}

// protocolError is a message that breaks the protocol; the socket is
// closed with 4400 and the message as reason. A frame that is not JSON at
// all is the exception on the legacy protocol (see wsMachine.malformed).
type protocolError struct {
	msg     string
	notJSON string // what the JSON parser said, if the frame is not JSON at all
}

func (e *protocolError) Error() string { return e.msg }

func invalid(format string, args ...any) *protocolError {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

// decodeClientMessage parses one text frame: a JSON object with a string
// type, a string id where the type needs one, and an object (or null)
// payload. Unknown members are ignored. Members are matched by their exact
// names, as the protocols' JSON.parse-based peers read them: encoding/json
// would match a struct's fields case-insensitively and take "Type", "ID" or
// "PAYLOAD" (the last of several) for them, answering under an id the
// client never gave, or accepting a message that has no type.
func decodeClientMessage(p protocol, data []byte) (clientMessage, *protocolError) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		perr := invalid("Invalid message: not a JSON object")
		// Unmarshal checks the syntax of the whole frame before decoding
		// any of it, so a syntax error means the frame is not JSON at all.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			perr.notJSON = se.Error()
		}
		return clientMessage{}, perr
	}
	typ, ok := members["type"]
	if !ok {
		return clientMessage{}, invalid("Invalid message: missing type")
	}
	var m clientMessage
	if err := json.Unmarshal(typ, &m.Type); err != nil || bytes.Equal(typ, []byte("null")) {
		return clientMessage{}, invalid("Invalid message: type must be a string")
	}
	if !knownType(p, m.Type) {
		return clientMessage{}, invalid("Invalid message: unknown type %s", clipReason(strconv.Quote(m.Type)))
	}
	if needsID(m.Type) {
		if err := json.Unmarshal(members["id"], &m.ID); err != nil || m.ID == "" {
			return clientMessage{}, invalid("Invalid message: %s needs a non-empty string id", m.Type)
		}
		if len(m.ID) > maxOperationIDBytes {
			return clientMessage{}, invalid("Invalid message: %s id is %d bytes, at most %d allowed", m.Type, len(m.ID), maxOperationIDBytes)
		}
	}
	if payload := members["payload"]; len(payload) > 0 && !bytes.Equal(payload, []byte("null")) {
		if payload[0] != '{' {
			return clientMessage{}, invalid("Invalid message: %s payload must be an object", m.Type)
		}
		m.Payload = payload
	}
	if (m.Type == msgSubscribe || m.Type == msgStart) && m.Payload == nil {
		return clientMessage{}, invalid("Invalid message: %s needs a payload", m.Type)
	}
	return m, nil
}

func knownType(p protocol, t string) bool {
	switch t {
	case msgConnectionInit:
		return true
	case msgSubscribe, msgComplete, msgPing, msgPong:
		return p == transportWS
	case msgStart, msgStop, msgConnectionTerminate:
		return p == legacyWS
	}
	return false
}

func needsID(t string) bool {
	switch t {
	case msgSubscribe, msgComplete, msgStart, msgStop:
		return true
	}
	return false
}

// decodeOperation parses a subscribe/start payload. Numbers stay
// json.Number so that large integers survive to input coercion. Members
// are matched by their exact names (see decodeClientMessage), and the last
// of a repeated member is its value, as the HTTP transports read a
// request's: "Query" is not the query, and a second "variables" replaces
// the first (encoding/json would merge it into a struct's map field).
func decodeOperation(payload json.RawMessage) (operationPayload, *protocolError) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(payload, &members); err != nil {
		return operationPayload{}, invalid("Invalid message: malformed operation payload: %s", clipReason(err.Error()))
	}
	var (
		op                   operationPayload
		query, operationName *string
	)
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"query", &query},
		{"operationName", &operationName},
		{"variables", &op.Variables},
		{"extensions", &op.Extensions},
	} {
		raw, ok := members[f.name]
		if !ok {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(f.dst); err != nil {
			return operationPayload{}, invalid("Invalid message: malformed operation payload: %s: %s", f.name, clipReason(err.Error()))
		}
	}
	if query != nil {
		op.Query = *query
	}
	if operationName != nil {
		op.OperationName = *operationName
	}
	if op.Query == "" && op.Extensions["persistedQuery"] == nil {
		return operationPayload{}, invalid("Invalid message: the operation payload has no query")
	}
	return op, nil
}

// decodeInitPayload parses a connection_init payload (absent = empty).
func decodeInitPayload(payload json.RawMessage) (map[string]any, *protocolError) {
	if payload == nil {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, invalid("Invalid message: connection_init payload must be an object")
	}
	return m, nil
}

// clipReason keeps client text in close reasons to a short excerpt, cut
// between characters: a close reason must be valid UTF-8 or the client
// drops the connection instead of reading the code.
func clipReason(s string) string {
	return clipUTF8(s, 60)
}

// maxCloseReason is the most a close frame's reason can hold: its payload
// is at most 125 bytes (RFC 6455 §5.5), two of them the code. gorilla
// refuses to send a longer one, and the client would see 1006.
const maxCloseReason = 123

// fitCloseReason makes any reason sendable: valid UTF-8 of at most
// maxCloseReason bytes.
func fitCloseReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxCloseReason {
		return s
	}
	return clipUTF8(s, maxCloseReason-len("…"))
}

// clipUTF8 cuts s to at most limit bytes, plus an ellipsis if it cut,
// without splitting a character.
func clipUTF8(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Server frames that carry no id.
const (
	frameAck  = `{"type":"connection_ack"}`
	framePing = `{"type":"ping"}`
	framePong = `{"type":"pong"}`
	frameKA   = `{"type":"ka"}`
)

// typeSegment is the middle of an id-carrying frame, by protocol and kind:
// the frame is {"id":<id><typeSegment> followed by ,"payload":<payload>}
// or by }.
func typeSegment(p protocol, kind frameKind) string {
	switch {
	case kind == frameNext && p == legacyWS:
		return `,"type":"data"`
	case kind == frameNext:
		return `,"type":"next"`
	case kind == frameError:
		return `,"type":"error"`
	}
	return `,"type":"complete"`
}
