package server

import "testing"

// TestParkedStreamLetsGoOfNetHTTP: once an idle subscription's stream is
// parked, it refers to nothing of net/http's: not the request, not the
// response, not the ResponseController that drop used to cut a write. The
// controller kept net/http's response alive and with it the connection's
// read and write buffers and the request, so a parked stream cost about
// 13 KiB of live heap, three times an idle WebSocket.
func TestParkedStreamLetsGoOfNetHTTP(t *testing.T) {
	if !parksSockets {
		t.Skip("streams are parked only where the server parks sockets")
	}
	for _, tc := range []struct{ name, accept string }{
		{"sse", acceptSSE},
		{"multipart", acceptMultipart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReplica(t, nil)
			room := r.room("release")
			const streams = 3
			for range streams {
				r.openRaw(tc.accept, room)
			}
			waitFor(t, "every stream parked", func() bool { return r.server.ws.keeper.streamCount() == streams })
			r.server.sessions.mu.Lock()
			var held []*httpStream
			for s := range r.server.sessions.open {
				if st, ok := s.(*httpStream); ok {
					held = append(held, st)
				}
			}
			r.server.sessions.mu.Unlock()
			if len(held) != streams {
				t.Fatalf("%d open streams, want %d", len(held), streams)
			}
			for _, st := range held {
				st.mu.Lock()
				w, rc, ctl, req := st.w != nil, st.rc != nil, st.ctl != nil, st.r != nil
				st.mu.Unlock()
				if w || rc || ctl || req {
					t.Errorf("a parked stream still refers to net/http's response writer %v, ResponseController %v (ctl %v), request %v; want none",
						w, rc, ctl, req)
				}
			}
		})
	}
}
