package server

import (
	"strings"
	"testing"
	"time"
)

// TestExpiryTimerRearmsAfterEarlyFire: a stream's expiry timer that fires
// before the credentials' expiry on the wall clock (the clock was stepped
// back) is armed again for what is left, so that the stream is still
// sealed at the expiry, not at some later keepalive.
func TestExpiryTimerRearmsAfterEarlyFire(t *testing.T) {
	st := &httpStream{}
	e := newExpiryTimer(st, time.Now().Add(time.Hour))
	defer e.stop()
	st.mu.Lock()
	e.at = time.Now().Add(time.Second)
	st.mu.Unlock()
	e.check() // the timer firing an hour early
	if isClosed(e.expired) {
		t.Fatal("expired before the credentials' expiry")
	}
	select {
	case <-e.expired:
	case <-time.After(10 * time.Second):
		t.Fatal("a timer that fired early was not armed again: the credentials expired 1s later, the stream was not sealed within 10s")
	}
	st.mu.Lock()
	sealed := st.sealed
	st.mu.Unlock()
	if !sealed {
		t.Fatal("expired but not sealed")
	}
}

// TestSealedStreamQueuesNoEvent: once a stream's credentials have expired
// (sealed), no event is queued any more: the stream ends with what was
// queued before, then UNAUTHENTICATED. An operation's end (no payload) is
// still queued.
func TestSealedStreamQueuesNoEvent(t *testing.T) {
	st := &httpStream{
		t:    &httpStreams{cfg: streamConfig{queueItems: 10, queueBytes: 1 << 20}},
		wake: make(chan struct{}, 1),
	}
	st.enqueue(streamItem{p: &payload{bytes: []byte(`{"data":1}`)}, event: true})
	st.mu.Lock()
	st.sealed = true
	st.mu.Unlock()
	st.enqueue(streamItem{p: &payload{bytes: []byte(`{"data":2}`)}, event: true})
	st.enqueue(streamItem{op: &operation{id: "a"}})
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.queue) != 2 || st.queue[0].p == nil || string(st.queue[0].p.bytes) != `{"data":1}` || st.queue[1].p != nil {
		t.Fatalf("queue after the expiry holds %d items %+v; want the event queued before it and the operation's end, not the event after it", len(st.queue), st.queue)
	}
}

// TestParkedStreamWritesNothingAfterExpiry: once the keeper has found a
// parked stream's credentials expired (expired, sealed), an event fanned
// out before the stream's writer has run is neither written at once
// (writeNow) nor queued: the stream ends with UNAUTHENTICATED and nothing
// delivered after the expiry.
func TestParkedStreamWritesNothingAfterExpiry(t *testing.T) {
	r := newReplica(t, func(o *Options) { o.Authenticator = expiringAuth{ttl: time.Hour} })
	room := r.room("parked-expiry")
	s := r.openRaw(acceptSSE, room)
	waitFor(t, "the stream parked", func() bool { return r.server.ws.keeper.streamCount() == 1 })
	ps := theOpenStream(t, r).parked.Load()
	if ps == nil {
		t.Fatal("the stream is not parked")
	}
	// The keeper's checkTimers, up to its kick: expired and sealed under
	// the lock, with no writer running (as after the stream parked). The
	// event's delivery is what wakes the writer.
	waitFor(t, "the stream's writer to be idle", func() bool {
		ps.st.mu.Lock()
		defer ps.st.mu.Unlock()
		if ps.writing {
			return false
		}
		ps.expired, ps.st.sealed = true, true
		return true
	})
	r.post(room, "a", "after the expiry")
	body, _ := s.readToEnd()
	if strings.Contains(body, "after the expiry") || !strings.Contains(body, "UNAUTHENTICATED") {
		t.Fatalf("a parked stream whose credentials expired sent %q; want no event after the expiry, then UNAUTHENTICATED", body)
	}
}
