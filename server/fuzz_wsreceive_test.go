package server

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzWSReceive drives wsMachine.receive with arbitrary frames on
// both protocols: the frames it sends are JSON, its close reasons fit a
// close frame, the keepalive fast path agrees with it, and the legacy
// protocol answers any UTF-8 frame that is not JSON with connection_error
// and stays open (as malformed promises), whatever the frame contains.
func FuzzWSReceive(f *testing.F) {
	for _, s := range fuzzWSSeeds {
		f.Add([]byte(s), false, true)
		f.Add([]byte(s), true, true)
	}
	f.Add([]byte(`{"type":"ping"}`), false, false)
	f.Add([]byte(`not json \u0041`), true, false)
	f.Fuzz(func(t *testing.T, data []byte, legacy, acked bool) {
		m := &wsMachine{proto: transportWS}
		if legacy {
			m.proto = legacyWS
		}
		m.acked.Store(acked)
		m.initReceived = acked
		step := m.receive(data)
		fzCheckStep(t, data, step)
		if legacy && utf8.Valid(data) && !json.Valid(data) {
			if step.close != 0 || step.n != 1 {
				t.Fatalf("legacy frame %q (not JSON): close %d %q, %d frames; want connection_error and the socket open",
					data, step.close, step.reason, step.n)
			}
		}
		if reply, handled := m.keepalive(data); handled {
			if reply == "" && step.n != 0 || reply != "" && (step.n != 1 || step.frames[0].raw != reply) || step.close != 0 {
				t.Fatalf("keepalive(%q) = %q, receive disagrees: %+v", data, reply, step)
			}
		}
	})
}

// TestLegacyNotJSONWithSurrogateEscapeKeepsSocket: a legacy
// (subscriptions-transport-ws) frame that is not JSON at all is answered
// with connection_error and the socket stays open, also when it holds a
// \ud800-style escape (the lone-surrogate check ran before the JSON decoder and
// closed with 4400).
func TestLegacyNotJSONWithSurrogateEscapeKeepsSocket(t *testing.T) {
	for _, frame := range []string{`hello \ud800`, `{"type":"start" \udc00`} {
		m := &wsMachine{proto: legacyWS}
		plain := m.receive([]byte("hello"))
		step := m.receive([]byte(frame))
		if plain.close != 0 {
			t.Fatalf("legacy frame %q closed the socket: %d", "hello", plain.close)
		}
		if step.close != 0 || step.n != 1 {
			t.Errorf("legacy frame %q (not JSON): close %d %q; want connection_error and the socket open, as for %q",
				frame, step.close, step.reason, "hello")
		}
	}
}

func fzCheckStep(t *testing.T, data []byte, step wsStep) {
	t.Helper()
	for _, it := range step.frames[:step.n] {
		if it.kind == frameRaw && (!utf8.ValidString(it.raw) || !json.Valid([]byte(it.raw))) {
			t.Fatalf("receive(%q) sends %q, which is not JSON", data, it.raw)
		}
	}
	if step.close != 0 && (len(step.reason) > fuzzMaxCloseReason || !utf8.ValidString(step.reason)) {
		t.Fatalf("receive(%q) closes with reason %q (%d bytes)", data, step.reason, len(step.reason))
	}
}
