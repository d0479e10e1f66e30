package server

// Fuzz targets for the decoders that read untrusted client input: the two
// WebSocket subprotocols' message decoders (with the operation and
// connection_init payload decoders behind them), the GraphQL-over-HTTP
// request decoders for POST bodies and GET query strings, and the exact
// reader of the numbers in variables.
//
// The seeds below and the files under testdata/fuzz/<FuzzName>/ run as
// ordinary tests with `go test`; scripts/fuzz.sh fuzzes each target briefly.

import (
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzMaxCloseReason is the longest close reason a close frame can carry:
// its payload is at most 125 bytes (RFC 6455 §5.5), two of them the code.
// gorilla's WriteControl refuses a longer frame, so the client would see an
// abnormal closure (1006) instead of 4400 and the reason.
const fuzzMaxCloseReason = 123

// fuzzMaxHTTPError bounds the message of a rejected HTTP request: errors
// name what is wrong without echoing the request (TestErrorsDoNotEchoTheBody).
const fuzzMaxHTTPError = 256

// fuzzWSTypes are the client message types each protocol accepts, written
// out independently of knownType.
var fuzzWSTypes = map[protocol][]string{
	transportWS: {"connection_init", "ping", "pong", "subscribe", "complete"},
	legacyWS:    {"connection_init", "start", "stop", "connection_terminate"},
}

// fuzzWSSeeds are the in-code seeds of both WebSocket targets: the most
// important of testdata/fuzz/FuzzDecode*WS. Each target also sees the other
// protocol's types, which it must refuse.
var fuzzWSSeeds = []string{
	`{"type":"connection_init","payload":{"authorization":"Bearer abc"}}`,
	`{"type":"ping","payload":{"t":1}}`,
	`{"id":"1","type":"subscribe","payload":{"query":"subscription { ticks }"}}`,
	`{"id":"1","type":"complete"}`,
	`{"id":"1","type":"start","payload":{"query":"subscription { ticks }"}}`,
	`{"id":"1","type":"stop"}`,
	`{"type":"connection_terminate"}`,
	`{"id":1,"type":"subscribe","payload":{"query":"{ a }"}}`,
	`{"id":"1","type":"start","payload":null}`,
	`{"type":"` + strings.Repeat("x", 200) + `"}`,
	`{"type":"ping"`,
	`null`,
}

func FuzzDecodeTransportWS(f *testing.F) { fuzzDecodeWS(f, transportWS) }

func FuzzDecodeLegacyWS(f *testing.F) { fuzzDecodeWS(f, legacyWS) }

func fuzzDecodeWS(f *testing.F, p protocol) {
	for _, s := range fuzzWSSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, perr := decodeClientMessage(p, data)
		if perr != nil {
			fuzzCheckCloseReason(t, "decodeClientMessage", perr)
			// The legacy protocol answers a frame that is not JSON at all
			// and stays open, so that must be exactly what notJSON says.
			if notJSON := perr.notJSON != ""; notJSON == json.Valid(data) {
				t.Fatalf("%s: %q: notJSON %q, but json.Valid = %v", p, data, perr.notJSON, json.Valid(data))
			}
			return
		}
		fuzzCheckMessage(t, p, data, m)
		switch m.Type {
		case msgSubscribe, msgStart:
			op, perr := decodeOperation(m.Payload)
			if perr != nil {
				fuzzCheckCloseReason(t, "decodeOperation", perr)
				return
			}
			if op.Query == "" && op.Extensions["persistedQuery"] == nil {
				t.Fatalf("decodeOperation(%q) accepted an operation with neither query nor persistedQuery", m.Payload)
			}
		case msgConnectionInit:
			// The payload is absent or a JSON object by now, so it must decode.
			init, perr := decodeInitPayload(m.Payload)
			if perr != nil || init == nil {
				t.Fatalf("decodeInitPayload(%q) = %v, %v; want an object", m.Payload, init, perr)
			}
		}
	})
}

// fuzzCheckMessage asserts what decodeClientMessage promises of a message
// it accepts.
func fuzzCheckMessage(t *testing.T, p protocol, data []byte, m clientMessage) {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("%s: accepted a frame that is not JSON: %q", p, data)
	}
	if !knownType(p, m.Type) {
		t.Fatalf("%s: accepted type %q, which knownType refuses", p, m.Type)
	}
	known := false
	for _, typ := range fuzzWSTypes[p] {
		known = known || typ == m.Type
	}
	if !known {
		t.Fatalf("%s: accepted type %q, which the protocol does not define for clients", p, m.Type)
	}
	if needsID(m.Type) != (m.Type == msgSubscribe || m.Type == msgStart || m.Type == msgComplete || m.Type == msgStop) {
		t.Fatalf("%s: needsID(%q) = %v", p, m.Type, needsID(m.Type))
	}
	if needsID(m.Type) && m.ID == "" {
		t.Fatalf("%s: accepted %s with an empty id: %q", p, m.Type, data)
	}
	if len(m.ID) > maxOperationIDBytes {
		t.Fatalf("%s: accepted %s with an id of %d bytes", p, m.Type, len(m.ID))
	}
	if !needsID(m.Type) && m.ID != "" {
		t.Fatalf("%s: %s carries id %q, which the type has no use for", p, m.Type, m.ID)
	}
	if m.Payload != nil && (m.Payload[0] != '{' || !json.Valid(m.Payload)) {
		t.Fatalf("%s: %s payload %q is not a JSON object", p, m.Type, m.Payload)
	}
	if (m.Type == msgSubscribe || m.Type == msgStart) && m.Payload == nil {
		t.Fatalf("%s: accepted %s without a payload: %q", p, m.Type, data)
	}
}

// fuzzCheckCloseReason asserts that a protocol error can be sent as the
// reason of a close frame.
func fuzzCheckCloseReason(t *testing.T, what string, perr *protocolError) {
	t.Helper()
	switch {
	case perr.msg == "":
		t.Fatalf("%s: protocol error with an empty message", what)
	case len(perr.msg) > fuzzMaxCloseReason:
		t.Fatalf("%s: close reason is %d bytes, more than the %d a close frame allows: %q",
			what, len(perr.msg), fuzzMaxCloseReason, perr.msg)
	case !utf8.ValidString(perr.msg):
		t.Fatalf("%s: close reason is not UTF-8: %q", what, perr.msg)
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"query":"{ __typename }","operationName":null,"variables":{"n":12345678901234567890123}}`,
		`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`,
		`{"query":1}`,
		`[{"query":"{ a }"}]`,
		`{"query":"{ a }"} {}`,
		`{"query":"{ a }"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, rerr := decodeBody(body)
		if rerr != nil {
			fuzzCheckRequestError(t, rerr)
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
		if p.Query == "" && p.Extensions["persistedQuery"] == nil {
			t.Fatalf("accepted %q, which has neither query nor persistedQuery", body)
		}
	})
}

func FuzzReadQueryString(f *testing.F) {
	for _, s := range []string{
		`query=%7B__typename%7D`,
		`query={ a }&operationName=Q&variables={"n":1}&extensions={}`,
		`extensions=%7B%22persistedQuery%22%3A%7B%22version%22%3A1%2C%22sha256Hash%22%3A%22abc%22%7D%7D`,
		`query={a}&variables=[1]`,
		`query=%zz`,
		`query={a};x=1`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
		r.URL.RawQuery = raw // any bytes, as a client could send them
		p, rerr := readQueryString(r, 0)
		if rerr != nil {
			fuzzCheckRequestError(t, rerr)
			return
		}
		if p.Query == "" && p.Extensions["persistedQuery"] == nil {
			t.Fatalf("accepted %q, which has neither query nor persistedQuery", raw)
		}
	})
}

// fuzzCheckRequestError asserts that a rejected request gets a client-error
// status and a message that explains without echoing the request.
func fuzzCheckRequestError(t *testing.T, rerr *requestError) {
	t.Helper()
	switch {
	case rerr.status < 400 || rerr.status > 499:
		t.Fatalf("rejected with status %d, want 4xx: %s", rerr.status, rerr.msg)
	case rerr.msg == "":
		t.Fatalf("rejected with status %d and no message", rerr.status)
	case len(rerr.msg) > fuzzMaxHTTPError:
		t.Fatalf("error message is %d bytes; it echoes the request? %q", len(rerr.msg), rerr.msg)
	}
}

// FuzzExactInteger: exactInteger reads any JSON number exactly, as
// math/big does: its integer written plainly when it has at most
// maxDigits digits, "" and integral for a larger integer, and not
// integral for a fraction. Exponents are kept small enough for big.Rat to
// write the value out; TestExactInteger covers the huge ones.
func FuzzExactInteger(f *testing.F) {
	for _, s := range []string{"0", "-0.0", "2.0", "1e3", "1E+3", "12.5e1", "100e-2", "-1.5e18",
		"2147483648", "9223372036854775808.0", "1.5", "1e-3", "3000e-3", "0.000e5"} {
		f.Add(s, uint8(10))
		f.Add(s, uint8(19))
	}
	jsonNumber := regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`) // RFC 8259 §6
	f.Fuzz(func(t *testing.T, text string, digits uint8) {
		maxDigits := int(digits)%40 + 1 // Herald asks for 10 or 19
		if !jsonNumber.MatchString(text) || len(text) > 200 {
			return
		}
		if _, exp, ok := strings.Cut(strings.ToLower(text), "e"); ok {
			if e, err := strconv.Atoi(exp); err != nil || e < -400 || e > 400 {
				return
			}
		}
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			t.Fatalf("big.Rat cannot read the JSON number %q", text)
		}
		wantIntegral, want := r.IsInt(), ""
		if n := r.Num(); wantIntegral && len(new(big.Int).Abs(n).String()) <= maxDigits {
			want = n.String()
		}
		got, integral := exactInteger(text, maxDigits)
		if got != want || integral != wantIntegral {
			t.Fatalf("exactInteger(%q, %d) = %q, %v; math/big: %q, %v", text, maxDigits, got, integral, want, wantIntegral)
		}
	})
}
