package server

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestProtocolMessages runs message sequences real clients send that
// the existing protocol tests do not: an operationName choosing among a
// document's operations, an id reused right after the client completed
// it, a legacy start under an id in use, an error then the id reused.
func TestProtocolMessages(t *testing.T) {
	r := newReplica(t, nil)
	for _, p := range wspProtocols {
		t.Run(p.name+"/operationName picks the operation", func(t *testing.T) {
			r := r.forTest(t)
			c := p.dial(r, "alice")
			c.send(map[string]any{"id": "q", "type": p.start, "payload": map[string]any{
				"query":         `query A { viewer { id } } query B { viewer { name } }`,
				"operationName": "B",
			}})
			f := wspExpect(c, p.next, "q")
			wspSameJSON(t, string(f.Payload), `{"data":{"viewer":{"name":"alice"}}}`)
			wspExpectComplete(c, "q")
		})
		t.Run(p.name+"/id reused right after the client's complete", func(t *testing.T) {
			r := r.forTest(t)
			room := r.room("reuse-" + p.name)
			c := p.dial(r, "alice")
			c.subscribe(p.start, "s", wspMessagePosted, map[string]any{"r": room})
			time.Sleep(wspSilence)
			c.send(map[string]any{"id": "s", "type": p.stop})
			c.subscribe(p.start, "s", wspMessagePosted, map[string]any{"r": room})
			time.Sleep(wspSilence)
			r.post(room, "bob", "one")
			f := wspExpect(c, p.next, "s")
			if !strings.Contains(string(f.Payload), `"one"`) {
				t.Fatalf("got %s", f.raw)
			}
			wspQuiet(c, p, wspSilence, "alice")
		})
		t.Run(p.name+"/error then id reused", func(t *testing.T) {
			r := r.forTest(t)
			c := p.dial(r, "alice")
			c.subscribe(p.start, "e", `query { nope }`, nil)
			f := wspFrame(c, "ka")
			if p.legacy {
				if f.Type != "data" || f.ID != "e" || !strings.Contains(string(f.Payload), `"errors":[`) {
					t.Fatalf("got %s", f.raw)
				}
				wspExpectComplete(c, "e")
			} else {
				if f.Type != "error" || f.ID != "e" || !strings.HasPrefix(string(f.Payload), "[") {
					t.Fatalf("got %s", f.raw)
				}
			}
			wspSentinelQuery(c, p, "e", "alice")
		})
	}
	t.Run("legacy start under an id in use: one stream, no complete", func(t *testing.T) {
		r := r.forTest(t)
		room := r.room("legacy-inuse")
		c := wspLegacy.dial(r, "alice")
		c.subscribe("start", "s", wspMessagePosted, map[string]any{"r": room})
		time.Sleep(wspSilence)
		c.subscribe("start", "s", wspMessagePosted, map[string]any{"r": room})
		time.Sleep(wspSilence)
		r.post(room, "bob", "one")
		f := wspExpect(c, "data", "s")
		if !strings.Contains(string(f.Payload), `"one"`) {
			t.Fatalf("got %s", f.raw)
		}
		wspQuiet(c, wspLegacy, wspSilence, "alice")
	})
	t.Run("transport ping payloads", func(t *testing.T) {
		r := r.forTest(t)
		c := wspTransport.dial(r, "")
		for _, tc := range []struct{ ping, pong string }{
			{`{"type":"ping","payload":{}}`, `{"type":"pong","payload":{}}`},
			{`{"type":"ping","payload":null}`, `{"type":"pong"}`},
			{`{"type":"ping","payload":{"a":[1,2]}}`, `{"type":"pong","payload":{"a":[1,2]}}`},
		} {
			c.sendRaw(tc.ping)
			f := wspFrame(c)
			wspSameJSON(t, f.raw, tc.pong)
		}
		_ = fmt.Sprint()
	})
}
