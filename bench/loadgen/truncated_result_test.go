package main

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

// TestTruncatedResultIsABadFrameOnEveryTransport: whatever the transport,
// a result that holds an event's text but is not JSON (cut short) is a bad
// frame, not a delivery; every path to result() starts from a fast path
// that looks only at the first bytes.
func TestTruncatedResultIsABadFrameOnEveryTransport(t *testing.T) {
	const cut = `{"data":{"messagePosted":{"text":"lg|0|1|1"`
	t.Run("graphql-transport-ws", func(t *testing.T) {
		r, c := newTestRun(transportWS)
		c.proto = protoTransport
		r.frame(c, []byte(`{"id":"1","type":"next","payload":`+cut), time.Now())
		checkBadFrame(t, r)
	})
	t.Run("graphql-ws", func(t *testing.T) {
		r, c := newTestRun(transportWS)
		c.proto = protoLegacy
		r.frame(c, []byte(`{"id":"1","type":"data","payload":`+cut), time.Now())
		checkBadFrame(t, r)
	})
	t.Run("sse", func(t *testing.T) {
		r, c := newTestRun(transportSSE)
		lr := &lineReader{br: bufio.NewReaderSize(strings.NewReader("event: next\ndata: "+cut+"\n\n"), 64)}
		_ = r.readSSE(c, lr)
		checkBadFrame(t, r)
	})
	t.Run("multipart", func(t *testing.T) {
		r, c := newTestRun(transportMultipart)
		r.multipartPart(c, c.subs[0], []byte(`{"payload":`+cut))
		checkBadFrame(t, r)
	})
	t.Run("centrifugo", func(t *testing.T) {
		r, c := newCentrifugoTestRun()
		r.centrifugoFrame(c, []byte(`{"push":{"channel":"a","pub":{"data":{"text":"lg|0|1|1"}}`), time.Now())
		checkBadFrame(t, r)
	})
}

func checkBadFrame(t *testing.T, r *run) {
	t.Helper()
	if r.delivered.Load() != 0 || r.badFrames.Load() != 1 || r.foreign.Load() != 0 {
		t.Errorf("delivered %d, bad frames %d, foreign %d; want 0, 1, 0 (errors %v)",
			r.delivered.Load(), r.badFrames.Load(), r.foreign.Load(), r.errSamples)
	}
}
