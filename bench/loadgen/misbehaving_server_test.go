package main

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Each test below runs loadgen against the fake server (fake_server_test.go)
// made to get one delivery wrong, and wants the run failed for it.

// TestWellBehavedFakeServerPasses is the control: the fake delivering
// every event once, in order, passes, publishing and idle, and the
// load generator's own closes at the end are not counted against it.
func TestWellBehavedFakeServerPasses(t *testing.T) {
	rep := runAgainstFake(t, &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
		toAll(subs, text)
	}}, nil)
	if d := rep.Delivery; !rep.Pass || d.Received != d.Expected || d.Expected != 20 || !d.DrainComplete || d.BadFrames != 0 ||
		rep.Setup.ConnectionsOpenAtEnd != 4 || rep.Setup.ConnectionsClosedByServer != 0 {
		t.Errorf("publish: pass %v, failures %q, delivery %+v, setup %+v", rep.Pass, rep.Failures, *d, rep.Setup)
	}
	rep = runAgainstFake(t, &fakeServer{}, func(c *Config) { c.Events = 0; c.Idle = 300 * time.Millisecond })
	if !rep.Pass || rep.Setup.ConnectionsOpenAtEnd != 4 || rep.Setup.ConnectionsClosedByServer != 0 {
		t.Errorf("idle: pass %v, failures %q, setup %+v", rep.Pass, rep.Failures, rep.Setup)
	}
}

// TestMisbehavingServerFailsTheRun: a server that drops, duplicates or
// reorders a delivery, or delivers an event to a subscriber of another
// room, fails the run on its count.
func TestMisbehavingServerFailsTheRun(t *testing.T) {
	var held struct {
		sync.Mutex
		text string
	}
	for _, c := range []struct {
		name    string
		deliver func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub)
		failure string
	}{
		{name: "drop one delivery", failure: "delivery: 1 lost,", deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
			if n == 3 {
				toAll(subs[1:], text)
				return
			}
			toAll(subs, text)
		}},
		{name: "duplicate one delivery", failure: "delivery: 0 lost, 1 duplicated,", deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
			toAll(subs, text)
			if n == 3 {
				subs[0].send(text)
			}
		}},
		{name: "reorder two deliveries", failure: "delivery: 0 lost, 0 duplicated, 1 reordered,", deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
			held.Lock()
			defer held.Unlock()
			if seq == 2 && held.text == "" {
				held.text = text
				toAll(subs[1:], text)
				return
			}
			toAll(subs, text)
			if seq == 3 && held.text != "" && strings.HasPrefix(text, held.text[:5]) {
				subs[0].send(held.text)
			}
		}},
		{name: "deliver to a subscriber of another room", failure: "delivery: 0 lost, 0 duplicated, 0 reordered, 1 misrouted",
			deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
				toAll(subs, text)
				if n == 3 {
					for _, other := range []string{"room-1", "room-2"} {
						for _, s := range f.roomSubs(other) {
							if s.room != room {
								s.send(text)
								return
							}
						}
					}
				}
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			held.Lock()
			held.text = ""
			held.Unlock()
			wantFailure(t, runAgainstFake(t, &fakeServer{deliver: c.deliver}, nil), c.failure)
		})
	}
}

// TestTruncatedFrameFailsTheRun: a delivery whose frame is cut short after
// its text (not JSON, so no client could read it) is a bad frame, not a
// delivery. The fast path in frame() looks only at the frame's start and
// result() finds the event's text in the raw bytes, so it used to count.
func TestTruncatedFrameFailsTheRun(t *testing.T) {
	rep := runAgainstFake(t, &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
		toAll(subs[1:], text)
		s := subs[0]
		if n != 3 {
			s.send(text)
			return
		}
		// The event's frame, in Herald's field order, cut short after its
		// text.
		s.write([]byte(`{"id":"` + s.id + `","type":"next","payload":{"data":{"messagePosted":{"text":"` + text + `"`))
	}}, nil)
	wantFailure(t, rep, "protocol: 1 frames from the server not valid JSON")
	if d := rep.Delivery; d.BadFrames != 1 || d.Received != d.Expected-1 || d.Lost != 1 {
		t.Errorf("bad frames %d, received %d of %d, lost %d; want 1 bad frame, the truncated delivery not received but lost",
			d.BadFrames, d.Received, d.Expected, d.Lost)
	}
}

// TestMalformedExtraFrameFailsTheRun: an extra frame that is not JSON is a
// bad frame that fails the run; it used to be a silent "foreign" result.
func TestMalformedExtraFrameFailsTheRun(t *testing.T) {
	rep := runAgainstFake(t, &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
		toAll(subs, text)
		if n == 3 {
			subs[0].write([]byte(`{"id":"1","type":"next","payload":{"data":`))
		}
	}}, nil)
	wantFailure(t, rep, "protocol: 1 frames from the server not valid JSON")
	if d := rep.Delivery; d.BadFrames != 1 || d.Foreign != 0 || rep.Errors["bad-frame"] != 1 {
		t.Errorf("bad frames %d, foreign %d, errors %v; want 1 bad frame, no foreign", d.BadFrames, d.Foreign, rep.Errors)
	}
}

// TestForeignResultFailsTheRun: a well-formed result that is no event or
// probe of the load generator's fails a zero-loss run (it used to be only
// counted) and passes one that does not require zero loss.
func TestForeignResultFailsTheRun(t *testing.T) {
	deliver := func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
		toAll(subs, text)
		if n == 3 {
			subs[0].send("not the load generator's")
		}
	}
	rep := runAgainstFake(t, &fakeServer{deliver: deliver}, nil)
	wantFailure(t, rep, "delivery: 1 results that are no event or probe")
	if d := rep.Delivery; d.Foreign != 1 || d.BadFrames != 0 {
		t.Errorf("foreign %d, bad frames %d; want 1, 0", d.Foreign, d.BadFrames)
	}
	rep = runAgainstFake(t, &fakeServer{deliver: deliver}, func(c *Config) { c.RequireZeroLoss = false })
	if !rep.Pass || rep.Delivery.Foreign != 1 {
		t.Errorf("without --require-zero-loss: pass %v, failures %q, foreign %d", rep.Pass, rep.Failures, rep.Delivery.Foreign)
	}
}

// TestDeliveryOnUnopenedSubscriptionIsMisrouted: a delivery on a
// subscription id the connection never opened is misrouted, which fails
// the run; it used to be only an "unknown-id" error. An id is the one
// written, not a number strconv reads the same ("01" and "+1" are not
// "1", whose event they would otherwise repeat as a duplicate).
func TestDeliveryOnUnopenedSubscriptionIsMisrouted(t *testing.T) {
	for _, id := range []string{"7", "0", "01", "+1", "-1", " 1", "1 "} {
		t.Run(id, func(t *testing.T) {
			rep := runAgainstFake(t, &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
				toAll(subs, text)
				if n == 3 {
					wrong := *subs[0]
					wrong.id = id
					wrong.send(text)
				}
			}}, nil)
			wantFailure(t, rep, "delivery: 0 lost, 0 duplicated, 0 reordered, 1 misrouted")
			if rep.Delivery.Misrouted != 1 || rep.Errors["unknown-id"] != 1 {
				t.Errorf("misrouted %d, errors %v; want 1 misrouted, 1 unknown-id", rep.Delivery.Misrouted, rep.Errors)
			}
		})
	}
}

// TestLateDeliveryFailsTheRun: a delivery that comes after the drain
// timeout (here during the settle period, so nothing is lost in the end)
// fails the run: the drain did not complete. It used to only clear
// drain_complete.
func TestLateDeliveryFailsTheRun(t *testing.T) {
	rep := runAgainstFake(t, &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
		if n == 10 {
			toAll(subs[1:], text)
			late := subs[0]
			time.AfterFunc(1300*time.Millisecond, func() { late.send(text) }) // DrainTimeout is 1s
			return
		}
		toAll(subs, text)
	}}, func(c *Config) { c.Settle = 1500 * time.Millisecond })
	wantFailure(t, rep, "delivery: drain not complete within the drain timeout")
	if d := rep.Delivery; d.DrainComplete || d.Lost != 0 {
		t.Errorf("drain complete %v, lost %d; want an incomplete drain and the late delivery not lost", d.DrainComplete, d.Lost)
	}
}

// TestServerClosedSocketFailsTheRun: a socket the server closes (1011)
// before the end of a publish run fails it, although it had all its
// deliveries; it used to be only a "closed" error.
func TestServerClosedSocketFailsTheRun(t *testing.T) {
	rep := runAgainstFake(t, &fakeServer{deliver: func(f *fakeServer, n, seq int, room, text string, subs []*fakeSub) {
		toAll(subs, text)
		if n == 10 {
			subs[0].close(websocket.CloseInternalServerErr)
		}
	}}, nil)
	wantFailure(t, rep, "connections: 1 of 4 ended by the server")
	if s := rep.Setup; s.ConnectionsOpenAtEnd != 3 || s.ConnectionsClosedByServer != 1 || rep.CloseCodes["1011"] != 1 {
		t.Errorf("open at end %d, closed by the server %d, close codes %v; want 3, 1, 1011 once",
			s.ConnectionsOpenAtEnd, s.ConnectionsClosedByServer, rep.CloseCodes)
	}
	if d := rep.Delivery; d.Lost != 0 || d.Received != d.Expected {
		t.Errorf("lost %d, received %d of %d: the closed socket had all its deliveries", d.Lost, d.Received, d.Expected)
	}
}
