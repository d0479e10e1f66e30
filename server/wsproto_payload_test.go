package server

import (
	"testing"
)

// TestPayloadMustBeAnObject: in both protocols a message's
// payload is an object, null or absent (decodeClientMessage). A ping whose
// payload is a string or an array is refused with 4400 rather than echoed
// in the pong, and so is any other message's (connection_init's and
// subscribe's are refused again further on, with the same code).
func TestPayloadMustBeAnObject(t *testing.T) {
	for _, tc := range []struct {
		p   protocol
		msg string
	}{
		{transportWS, `{"type":"ping","payload":"x"}`},
		{transportWS, `{"type":"ping","payload":[1]}`},
		{transportWS, `{"type":"pong","payload":7}`},
		{transportWS, `{"type":"complete","id":"1","payload":"x"}`},
		{legacyWS, `{"type":"stop","id":"1","payload":[1]}`},
		{legacyWS, `{"type":"connection_terminate","payload":"bye"}`},
	} {
		m := wsmMachine(tc.p)
		wsmFeed(m, initVerdict{}, wsmInit)
		s := m.receive([]byte(tc.msg))
		if s.close != closeBadRequest || s.n != 0 || s.act != 0 {
			t.Errorf("%s: %s, want close 4400 and nothing else", tc.msg, wsmDescribe(tc.p, s))
		}
	}
}
