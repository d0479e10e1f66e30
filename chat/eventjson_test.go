package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unsafe"
)

// referenceDecode is how events were decoded before parseEventJSON:
// encoding/json, strict about fields; it ignores what follows the value.
func referenceDecode(data []byte) (Event, error) {
	var e Event
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&e)
	return e, err
}

var eventJSONCases = []struct {
	name string
	data string
	ok   bool
}{
	{"posted", `{"v":1,"type":"message.posted","actor":{"id":"u1","name":"Ann"},"roomId":"ra","messageId":"ra_m1","text":"hi"}`, true},
	{"every field", `{"v":1,"type":"reaction.toggled","actor":{"id":"u1"},"roomId":"ra","messageId":"ra_m1","name":"n","text":"t","version":3,"emoji":"👍","prev":18446744073709551615,"at":-9223372036854775808}`, true},
	{"whitespace", " {\n\t\"v\" : 1 , \"type\" : \"room.created\" , \"actor\" : { \"id\" : \"a\" } }\r\n", true},
	{"escapes", `{"v":1,"text":"a\"b\\c\u00e9\ud83d\ude00\/\n"}`, true},
	{"invalid utf-8 is replaced", "{\"v\":1,\"text\":\"a\xffb\"}", true},
	{"nulls leave fields alone", `{"v":null,"type":null,"actor":null,"text":null}`, true},
	{"duplicate keys: last wins", `{"v":1,"text":"a","text":"b","actor":{"id":"x"},"actor":{"name":"y"}}`, true},
	{"empty object", `{}`, true},
	{"negative and zero", `{"v":-0,"version":-12}`, true},
	{"unknown field", `{"v":1,"extra":1}`, false},
	{"unknown actor field", `{"v":1,"actor":{"id":"a","role":"x"}}`, false},
	{"key in other case", `{"V":1}`, false},
	{"trailing data", `{"v":1} {}`, false},
	{"not an object", `[1]`, false},
	{"empty", ``, false},
	{"unterminated", `{"v":1`, false},
	{"unterminated string", `{"text":"abc`, false},
	{"control character", "{\"text\":\"a\x01b\"}", false},
	{"bad escape", `{"text":"\x"}`, false},
	{"fraction for an int", `{"v":1.0}`, false},
	{"exponent for an int", `{"v":1e0}`, false},
	{"leading zero", `{"v":01}`, false},
	{"int overflow", `{"v":99999999999999999999}`, false},
	{"negative prev", `{"prev":-1}`, false},
	{"prev overflow", `{"prev":18446744073709551616}`, false},
	{"at overflow", `{"at":9223372036854775808}`, false},
	{"fraction for prev", `{"prev":1.5}`, false},
	{"string for an int", `{"v":"1"}`, false},
	{"number for a string", `{"text":1}`, false},
	{"array for the actor", `{"actor":[]}`, false},
	{"missing colon", `{"v" 1}`, false},
	{"missing comma", `{"v":1 "text":"a"}`, false},
	{"trailing comma", `{"v":1,}`, false},
	{"bare minus", `{"v":-}`, false},
	{"true for a string", `{"text":true}`, false},
	{"member added", `{"v":2,"type":"member.added","actor":{"id":"u1"},"roomId":"ra","userId":"u2","prev":3}`, true},
	{"private room", `{"v":2,"type":"room.created","actor":{"id":"u1"},"roomId":"ra","name":"n","private":true}`, true},
	{"public room, said", `{"private":false}`, true},
	{"null private", `{"private":null}`, true},
	{"number for a bool", `{"private":1}`, false},
	{"string for a bool", `{"private":"true"}`, false},
	{"truncated bool", `{"private":tru}`, false},
	{"bool followed by junk", `{"private":truex}`, false},
	{"number for the user", `{"userId":7}`, false},
}

func TestParseEventJSON(t *testing.T) {
	for _, tt := range eventJSONCases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEventJSON([]byte(tt.data))
			if (err == nil) != tt.ok {
				t.Fatalf("parseEventJSON error = %v, want ok = %v", err, tt.ok)
			}
			if err != nil {
				return
			}
			want, rerr := referenceDecode([]byte(tt.data))
			if rerr != nil {
				t.Fatalf("encoding/json refuses what parseEventJSON accepted: %v", rerr)
			}
			if got != want {
				t.Fatalf("parseEventJSON = %+v, encoding/json = %+v", got, want)
			}
		})
	}
}

func TestParseEventJSONReadsWhatEncodeWrites(t *testing.T) {
	events := []Event{
		posted(alice, roomA, msgA1, "hi"),
		posted(alice, roomA, msgA1, "quotes \" and \\ backslashes, <html> & \u2028 separators, \x00 nul, 😀"),
		{Type: RoomCreated, Actor: alice, RoomID: roomA, Name: "general", At: -1},
		reacted(bob, msgA1, "👍"),
		{Type: RoomCreated, Actor: alice, RoomID: roomA, Name: "secret", Private: true},
		{Type: MemberAdded, Actor: alice, RoomID: roomA, UserID: "bob \"the\" builder", Prev: 9},
		{Type: MessageEdited, Actor: Actor{ID: "u", Name: "N"}, RoomID: roomA, MessageID: msgA1, Text: "t", Version: 7, Prev: 1<<64 - 1, At: 1<<63 - 1},
	}
	for _, e := range events {
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseEventJSON(data)
		if err != nil {
			t.Fatalf("parseEventJSON(%s): %v", data, err)
		}
		e.Format = eventFormat
		if got != e {
			t.Fatalf("round trip of %s = %+v, want %+v", data, got, e)
		}
	}
}

func TestParseEventJSONAllocations(t *testing.T) {
	data, _ := posted(alice, roomA, msgA1, "a message of ordinary length").Encode()
	// One allocation per string field (actor id and name, room, message,
	// type, text) and nothing else.
	if n := testing.AllocsPerRun(100, func() { _, _ = parseEventJSON(data) }); n > 6 {
		t.Fatalf("parseEventJSON allocates %.0f times per event, want at most 6", n)
	}
}

// FuzzParseEventJSON checks parseEventJSON against encoding/json: whatever
// it accepts, encoding/json accepts too and decodes to the same event.
func FuzzParseEventJSON(f *testing.F) {
	for _, tt := range eventJSONCases {
		f.Add([]byte(tt.data))
	}
	for _, tt := range eventDecodeCases {
		f.Add([]byte(tt.data))
	}
	known := newEventStrings("ra")
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseEventJSON(data)
		// Reusing known strings changes neither the event nor the error.
		if kgot, kerr := parseEvent(data, known); kgot != got || fmt.Sprint(kerr) != fmt.Sprint(err) {
			t.Fatalf("parseEvent(%q, known) = %+v, %v; without known: %+v, %v", data, kgot, kerr, got, err)
		}
		if err != nil {
			return
		}
		want, rerr := referenceDecode(data)
		if rerr != nil {
			t.Fatalf("parseEventJSON accepted %q, encoding/json refuses it: %v", data, rerr)
		}
		if got != want {
			t.Fatalf("parseEventJSON(%q) = %+v, encoding/json = %+v", data, got, want)
		}
	})
}

// eventDecodeCases are inputs on which the strings reused from an
// eventStrings, the known event types and the fast integer path must not
// change what is decoded, or how decoding fails: wantErr is what the
// parser said before they existed ("" = accepted).
var eventDecodeCases = []struct {
	data, wantErr string
}{
	{"{\"v\":1,\"type\":\"message.posted\",\"actor\":{\"id\":\"u1\",\"name\":\"Ann\"},\"roomId\":\"ra\",\"messageId\":\"ra_m1\",\"text\":\"hi\"}", ""},
	{"{\"v\":1,\"type\":\"reaction.toggled\",\"actor\":{\"id\":\"u1\"},\"roomId\":\"ra\",\"messageId\":\"ra_m1\",\"name\":\"n\",\"text\":\"t\",\"version\":3,\"emoji\":\"👍\",\"prev\":18446744073709551615,\"at\":-9223372036854775808}", ""},
	{" {\n\t\"v\" : 1 , \"type\" : \"room.created\" , \"actor\" : { \"id\" : \"a\" } }\r\n", ""},
	{"{\"v\":1,\"text\":\"a\\\"b\\\\c\\u00e9\\ud83d\\ude00\\/\\n\"}", ""},
	{"{\"v\":1,\"text\":\"a\xffb\"}", ""},
	{"{\"v\":null,\"type\":null,\"actor\":null,\"text\":null}", ""},
	{"{\"v\":1,\"text\":\"a\",\"text\":\"b\",\"actor\":{\"id\":\"x\"},\"actor\":{\"name\":\"y\"}}", ""},
	{"{}", ""},
	{"{\"v\":-0,\"version\":-12}", ""},
	{"{\"v\":1,\"extra\":1}", "json: unknown field \"extra\""},
	{"{\"v\":1,\"actor\":{\"id\":\"a\",\"role\":\"x\"}}", "json: unknown field \"role\" in actor"},
	{"{\"V\":1}", "json: unknown field \"V\""},
	{"{\"v\":1} {}", "data after the event object at offset 8"},
	{"[1]", "expected '{' at offset 0"},
	{"", "expected '{' at offset 0"},
	{"{\"v\":1", "unterminated object at offset 6"},
	{"{\"text\":\"abc", "unterminated string at offset 8"},
	{"{\"text\":\"a\x01b\"}", "control character in string at offset 10"},
	{"{\"text\":\"\\x\"}", "string at offset 8: invalid character 'x' in string escape code"},
	{"{\"v\":1.0}", "expected an integer at offset 5"},
	{"{\"v\":1e0}", "expected an integer at offset 5"},
	{"{\"v\":01}", "number with a leading zero at offset 5"},
	{"{\"v\":99999999999999999999}", "number at offset 5: strconv.Atoi: parsing \"99999999999999999999\": value out of range"},
	{"{\"prev\":-1}", "number at offset 8: strconv.ParseUint: parsing \"-1\": invalid syntax"},
	{"{\"prev\":18446744073709551616}", "number at offset 8: strconv.ParseUint: parsing \"18446744073709551616\": value out of range"},
	{"{\"at\":9223372036854775808}", "number at offset 6: strconv.ParseInt: parsing \"9223372036854775808\": value out of range"},
	{"{\"prev\":1.5}", "expected an integer at offset 8"},
	{"{\"v\":\"1\"}", "expected a number at offset 5"},
	{"{\"text\":1}", "expected a string at offset 8"},
	{"{\"actor\":[]}", "expected '{' at offset 9"},
	{"{\"v\" 1}", "expected ':' at offset 5"},
	{"{\"v\":1 \"text\":\"a\"}", "expected ',' or '}' at offset 7"},
	{"{\"v\":1,}", "expected a string at offset 7"},
	{"{\"v\":-}", "expected a number at offset 5"},
	{"{\"text\":true}", "expected a string at offset 8"},
	{"{\"v\":2,\"type\":\"member.added\",\"actor\":{\"id\":\"u1\"},\"roomId\":\"ra\",\"userId\":\"u2\",\"prev\":3}", ""},
	{"{\"v\":2,\"type\":\"room.created\",\"actor\":{\"id\":\"u1\"},\"roomId\":\"ra\",\"name\":\"n\",\"private\":true}", ""},
	{"{\"private\":false}", ""},
	{"{\"private\":null}", ""},
	{"{\"private\":1}", "expected a boolean at offset 11"},
	{"{\"private\":\"true\"}", "expected a boolean at offset 11"},
	{"{\"private\":tru}", "expected a boolean at offset 11"},
	{"{\"private\":truex}", "expected ',' or '}' at offset 15"},
	{"{\"userId\":7}", "expected a string at offset 10"},
	{"{\"v\":2,\"type\":\"message.posted\",\"actor\":{\"id\":\"u1\",\"name\":\"Ann\"},\"roomId\":\"ra\",\"messageId\":\"ra_m1\",\"text\":\"hi\",\"prev\":6}", ""},
	{"{\"v\":2,\"type\":\"message.edited\",\"actor\":{\"id\":\"u1\",\"name\":\"Ann\"},\"roomId\":\"ra\",\"messageId\":\"ra_m1\",\"text\":\"t\",\"version\":2,\"prev\":7}", ""},
	{"{\"v\":2,\"type\":\"message.deleted\",\"actor\":{\"id\":\"u1\"},\"roomId\":\"ra\",\"messageId\":\"ra_m1\",\"version\":3,\"prev\":8}", ""},
	{"{\"v\":2,\"type\":\"reaction.toggled\",\"actor\":{\"id\":\"u1\"},\"roomId\":\"ra\",\"messageId\":\"ra_m1\",\"emoji\":\"👍\",\"prev\":9}", ""},
	{"{\"v\":2,\"type\":\"member.added\",\"actor\":{\"id\":\"u1\"},\"roomId\":\"ra\",\"userId\":\"u2\",\"prev\":10}", ""},
	{"{\"v\":2,\"type\":\"member.removed\",\"actor\":{\"id\":\"u1\"},\"roomId\":\"ra\",\"userId\":\"u2\",\"prev\":11}", ""},
	{"{\"v\":2,\"type\":\"room.created\",\"actor\":{\"id\":\"u1\",\"name\":\"Ann\"},\"roomId\":\"ra\",\"name\":\"general\"}", ""},
	{"{\"type\":\"messag\\u0065.posted\"}", ""},
	{"{\"type\":\"message.posted2\"}", ""},
	{"{\"type\":\"Message.posted\"}", ""},
	{"{\"type\":\"\"}", ""},
	{"{\"type\":\"é\"}", ""},
	{"{\"type\":\"message.posted\xff\"}", ""},
	{"{\"roomId\":\"r\\u0061\",\"actor\":{\"id\":\"\\u00751\",\"name\":\"Ann\\n\"}}", ""},
	{"{\"roomId\":\"rb\"}", ""},
	{"{\"roomId\":\"r\"}", ""},
	{"{\"roomId\":\"ra\",\"roomId\":\"rb\"}", ""},
	{"{\"roomId\":\"ra\xff\"}", ""},
	{"{\"actor\":{\"id\":\"é\",\"name\":\"Zoë\"}}", ""},
	{"{\"actor\":{\"id\":\"u1\",\"name\":\"u1\"}}", ""},
	{"{\"actor\":{\"id\":1}}", "expected a string at offset 15"},
	{"{\"actor\":{\"id\":\"a\x01\"}}", "control character in string at offset 17"},
	{"{\"actor\":{\"id\":\"a\"}", "unterminated object at offset 19"},
	{"{\"type\":\"message.posted\"", "unterminated object at offset 24"},
	{"{\"type\":\"message.posted\",\"type\":null}", ""},
	{"{\"v\":123456789012345678}", ""},
	{"{\"v\":-123456789012345678}", ""},
	{"{\"v\":1234567890123456789}", ""},
	{"{\"v\":9223372036854775807}", ""},
	{"{\"v\":-9223372036854775808}", ""},
	{"{\"v\":9223372036854775808}", "number at offset 5: strconv.Atoi: parsing \"9223372036854775808\": value out of range"},
	{"{\"v\":-9223372036854775809}", "number at offset 5: strconv.Atoi: parsing \"-9223372036854775809\": value out of range"},
	{"{\"at\":-9223372036854775809}", "number at offset 6: strconv.ParseInt: parsing \"-9223372036854775809\": value out of range"},
	{"{\"at\":123456789012345678}", ""},
	{"{\"prev\":18446744073709551615}", ""},
	{"{\"prev\":999999999999999999}", ""},
	{"{\"prev\":-0}", "number at offset 8: strconv.ParseUint: parsing \"-0\": invalid syntax"},
	{"{\"prev\":-5}", "number at offset 8: strconv.ParseUint: parsing \"-5\": invalid syntax"},
	{"{\"prev\":0}", ""},
	{"{\"version\":--1}", "expected a number at offset 11"},
	{"{\"version\":-01}", "number with a leading zero at offset 11"},
	{"{\"version\":1-}", "expected ',' or '}' at offset 12"},
	{"{\"version\":00}", "number with a leading zero at offset 11"},
}

func TestParseEventDecodesAsBefore(t *testing.T) {
	// One table for every case, as a room's load shares one: strings seen
	// in one event are reused in the next.
	known := newEventStrings("ra")
	for _, tt := range eventDecodeCases {
		for _, k := range []*eventStrings{nil, {room: "ra"}, known} {
			got, err := parseEvent([]byte(tt.data), k)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Fatalf("parseEvent(%q) error = %q, want %q", tt.data, gotErr, tt.wantErr)
			}
			if err != nil {
				continue
			}
			want, rerr := referenceDecode([]byte(tt.data))
			if rerr != nil {
				t.Fatalf("encoding/json refuses %q, which parseEvent accepted: %v", tt.data, rerr)
			}
			if got != want {
				t.Fatalf("parseEvent(%q) = %+v, encoding/json = %+v", tt.data, got, want)
			}
		}
	}
}

func TestParseEventReusesKnownStrings(t *testing.T) {
	known := newEventStrings(roomA)
	first, _ := posted(alice, roomA, msgA1, "first").Encode()
	second, _ := posted(alice, roomA, roomA+"_m2", "second").Encode()
	a, err := parseEvent(first, known)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseEvent(second, known)
	if err != nil {
		t.Fatal(err)
	}
	same := func(what, x, y string) {
		t.Helper()
		if x != y || unsafe.StringData(x) != unsafe.StringData(y) {
			t.Errorf("%s: %q and %q are not one string", what, x, y)
		}
	}
	same("room", a.RoomID, known.room)
	same("room", b.RoomID, known.room)
	same("actor ID", a.Actor.ID, b.Actor.ID)
	same("actor name", a.Actor.Name, b.Actor.Name)
	if unsafe.StringData(string(a.Type)) != unsafe.StringData(string(MessagePosted)) {
		t.Errorf("type %q is a copy, not the constant", a.Type)
	}
	// Only what each message has of its own: its ID and its text.
	if n := testing.AllocsPerRun(100, func() { _, _ = parseEvent(second, known) }); n > 2 {
		t.Fatalf("parseEvent allocates %.0f times per post with known strings, want at most 2", n)
	}
}

// TestKnownNamesAreBounded: the names a room's load shares are bounded in
// number and in bytes, however many and however long the log's are (a
// writer that bypasses the proposers may store any), and an ID as long as
// an identity's may be is still shared.
func TestKnownNamesAreBounded(t *testing.T) {
	for _, tc := range []struct {
		name      string
		idBytes   int // 0: short IDs
		wantNames int
	}{
		{"short", 0, maxKnownNames},
		{"as long as an identity's", maxKnownNameBytes, maxKnownNames},
		{"longer", 4 * maxKnownNameBytes, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			known := newEventStrings(roomA)
			for i := range 2 * maxKnownNames {
				id := fmt.Sprintf("user-%d", i)
				id += strings.Repeat("x", max(0, tc.idBytes-len(id)))
				data, _ := posted(Actor{ID: id}, roomA, msgA1, "hi").Encode()
				e, err := parseEvent(data, known)
				if err != nil {
					t.Fatal(err)
				}
				if e.Actor.ID != id {
					t.Fatalf("actor %.20q..., want %.20q...", e.Actor.ID, id)
				}
			}
			kept := 0
			for name := range known.names {
				kept += len(name)
			}
			if len(known.names) != tc.wantNames || kept > maxKnownNames*maxKnownNameBytes {
				t.Fatalf("%d names of %d bytes kept, want %d of at most %d", len(known.names), kept,
					tc.wantNames, maxKnownNames*maxKnownNameBytes)
			}
		})
	}
}

// TestDecodeRoomEventChecksWhereItIsStored holds storedUnder to what it
// replaced, rest == e.rest(), and decodeRoomEventWith to decodeRoomEvent,
// for every room event type stored under every kind of rest.
func TestDecodeRoomEventChecksWhereItIsStored(t *testing.T) {
	events := []Event{
		posted(alice, roomA, msgA1, "hi"),
		edited(alice, msgA1, 1, "edit"),
		deleted(alice, msgA1, 2),
		reacted(bob, msgA1, "👍"),
		{Type: MemberAdded, Actor: alice, RoomID: roomA, UserID: "bob"},
		{Type: MemberRemoved, Actor: alice, RoomID: roomA, UserID: "bob"},
	}
	rests := []string{"posts", "msg." + msgA1, "msg.ra_m2", "msg.", "msg", msgA1, "posts.x",
		"member." + memberToken("bob"), "member." + memberToken("carol"), "member.", ""}
	known := newEventStrings(roomA)
	for _, e := range events {
		e.Format = eventFormat
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		for _, rest := range rests {
			if got, want := e.storedUnder(rest), e.rest() == rest; got != want {
				t.Errorf("%s event under %q: storedUnder = %v, want %v", e.Type, rest, got, want)
			}
			for _, key := range []string{roomA, "rb"} {
				want, wantErr := decodeRoomEvent(key, rest, data)
				got, gotErr := decodeRoomEventWith(key, rest, data, known)
				if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
					t.Errorf("%s event of %s under %q: with known strings %+v, %v; without %+v, %v",
						e.Type, key, rest, got, gotErr, want, wantErr)
				}
				if ok := key == roomA && rest == e.rest(); (wantErr == nil) != ok {
					t.Errorf("%s event of %s under %q: error %v", e.Type, key, rest, wantErr)
				}
			}
		}
	}
}
