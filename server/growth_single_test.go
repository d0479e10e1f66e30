package server

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// TestSingleStreamsLeaveNothingBehind drives many distinct users'
// reservations across two replicas: opened elsewhere and closed, never
// opened, opened by the wrong user. Once they are gone, the replicas hold
// no reservation, no stream and no relay listener.
func TestSingleStreamsLeaveNothingBehind(t *testing.T) {
	relay := NewLocalRelay()
	shared := func(o *Options) { o.Relay = relay }
	a, b := newReplica(t, shared), newReplica(t, shared)
	for _, r := range []*replica{a, b} {
		r.server.sseSingle.mu.Lock()
		r.server.sseSingle.reserveFor = 200 * time.Millisecond
		r.server.sseSingle.mu.Unlock()
	}
	room := a.room("g")
	const n = 8
	for i := range n {
		user := fmt.Sprintf("u%03d", i)
		// Opened on another replica, used, and dropped.
		tok := b.reserve(user)
		c := a.openSingle(tok, user)
		b.mustOperate(tok, user, "s", postedSub, map[string]any{"r": room})
		if st, _ := b.operation(tok, user, "bad", `{ nope }`, nil); st != http.StatusAccepted {
			t.Logf("invalid op: %d", st)
		}
		_ = c.resp.Body.Close()
		// Never opened.
		_ = a.reserve(user)
		// Opened by somebody else: refused.
		tok3 := b.reserve(user)
		if st, _ := a.do(singleReq{method: http.MethodGet, token: tok3, user: "intruder", accept: "text/event-stream"}); st != http.StatusNotFound {
			t.Logf("intruder open: %d", st)
		}
		// Opened on the same replica and dropped.
		tok4 := a.reserve(user)
		c4 := a.openSingle(tok4, user)
		_ = c4.resp.Body.Close()
	}
	lr := relay.(*localRelay)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var held, reserved [2]int
		for i, r := range []*replica{a, b} {
			s := r.server.sseSingle
			s.mu.Lock()
			held[i], reserved[i] = len(s.held), s.reserved
			s.mu.Unlock()
		}
		lr.mu.Lock()
		listeners := len(lr.listeners)
		lr.mu.Unlock()
		socks := a.openSockets() + b.openSockets()
		execs := a.server.ws.execs.count() + b.server.ws.execs.count()
		if held == [2]int{} && reserved == [2]int{} && listeners == 0 && socks == 0 && execs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d users left: held=%v reserved=%v relay listeners=%d sessions=%d execs=%d",
				n, held, reserved, listeners, socks, execs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
