package main

import (
	"encoding/json"
	"testing"
)

// jsonSamples are frames and fragments validJSON must judge as
// encoding/json does.
var jsonSamples = []string{
	`{"id":"1","type":"next","payload":{"data":{"messagePosted":{"text":"lg|12|345|1700000000123456789"}},"extensions":{"cursor":"eyJlIjoxfQ"}}}`,
	`{"id":"1","type":"next","payload":{"data":{"messagePosted":{"text":"lg|12|345|1700000000123456789"`,
	`{"id":"1","type":"next","payload":{"data":`,
	`{"push":{"channel":"a","pub":{"data":{"text":"lg|0|1|1"}}}}`,
	`{"data":{"messagePosted":{"text":"probe|0|1"}}}`,
	`{}`, `[]`, ` { } `, `{"a":[1,2,{"b":null}],"c":true,"d":false}`, `"x"`, `0`, `-0`, `-0.5e+10`, `1E3`, `12.0`,
	`{"a":"\u00e9\n\"\\\/\b\f\r\t"}`, `{"a":"\u00g9"}`, `{"a":"\x"}`, `{"a":"` + "\x01" + `"}`, `{"a":"\u00e"}`,
	`{"a":1,}`, `{"a" 1}`, `{a:1}`, `[1,]`, `[1 2]`, `01`, `1.`, `.5`, `1e`, `-`, `+1`, `tru`, `nul`, `truex`,
	`{"a":1}}`, `{"a":1} x`, `{"a":1}{}`, ``, ` `, `"abc`, `{"a":"b"`, `[`, `{`, `}`, "{\"a\":\n1\r\n}",
	"\xff", `"` + "\xff\xfe" + `"`, `{"a":[[[[[[]]]]]]}`, `{"":""}`, `[true,false,null]`, `1e-7`, `-12.34E-5`,
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range jsonSamples {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", s, got, want)
		}
	}
	// Every prefix of a frame but the whole is not JSON.
	frame := jsonSamples[0]
	for n := range len(frame) {
		if validJSON([]byte(frame[:n])) {
			t.Errorf("validJSON takes %q, a frame cut short", frame[:n])
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	frame := []byte(jsonSamples[0])
	b.Run("validJSON", func(b *testing.B) {
		for b.Loop() {
			if !validJSON(frame) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		for b.Loop() {
			if !json.Valid(frame) {
				b.Fatal("invalid")
			}
		}
	})
}
