package chat

import (
	"bytes"
	"encoding/json"
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := parseEventJSON(data)
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
