package chat

import (
	"fmt"
	"strings"
	"testing"
)

// TestEventJSONRefusesEveryControlCharacter: JSON forbids every
// unescaped control character (U+0000 to U+001F) in a string, and
// encoding/json, which the codec must match, refuses each of them: in a
// value, a key or the actor's fields, with or without escapes or
// multi-byte characters around it. The seeds try only U+0001.
func TestEventJSONRefusesEveryControlCharacter(t *testing.T) {
	for c := byte(0); c < 0x20; c++ {
		for _, tmpl := range []string{
			`{"v":1,"text":"a%sb"}`,
			`{"v":1,"text":"%s"}`,
			`{"v":1,"text":"é%s"}`,
			`{"v":1,"text":"\n%s"}`,
			`{"v":1,"actor":{"id":"u%s1"}}`,
			`{"v":1,"roomId":"ra%s"}`,
			`{"v":1,"te%sxt":"a"}`,
		} {
			data := fmt.Sprintf(tmpl, string([]byte{c}))
			if _, rerr := referenceDecode([]byte(data)); rerr == nil {
				t.Fatalf("encoding/json accepts %q", data)
			}
			_, err := parseEventJSON([]byte(data))
			if err == nil {
				t.Errorf("parseEventJSON(%q) accepted an unescaped U+%04X", data, c)
				continue
			}
			if _, kerr := parseEvent([]byte(data), newEventStrings("ra")); kerr == nil || kerr.Error() != err.Error() {
				t.Errorf("parseEvent(%q, known) = %v; without known: %v", data, kerr, err)
			}
			if strings.Contains(tmpl, `"a%sb"`) && !strings.Contains(err.Error(), "control character in string") {
				t.Errorf("parseEventJSON(%q) = %v; want it to name the control character", data, err)
			}
		}
	}
}
