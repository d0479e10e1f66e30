package server

// Keepalive across steps of the system clock: NTP, an operator or a
// resumed VM may step the wall clock by any amount while little time
// passes. time.Now() then returns a wall reading moved by the step and a
// monotonic reading that is not; keepalive (pings, the silence allowance,
// parked streams' heartbeats, the keeper's schedule) must follow the
// monotonic one, and only the credentials' expiry, a wall-clock time, the
// wall one.

import (
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// wallStepped is t with its wall-clock reading moved by d (whole seconds)
// and its monotonic reading unchanged: what time.Now() returns once the
// system clock was stepped by d while no more time passed. It relies on
// time.Time's layout, which TestWallSteppedHelper checks.
func wallStepped(t time.Time, d time.Duration) time.Time {
	type rep struct {
		wall uint64 // with a monotonic reading: flag, 33 bits of seconds since 1885, 30 bits of nanoseconds
		ext  int64  // the monotonic reading
		loc  *time.Location
	}
	r := (*rep)(unsafe.Pointer(&t))
	if r.wall&(1<<63) == 0 {
		panic("wallStepped: t has no monotonic reading")
	}
	const nsecShift = 30
	sec := int64(r.wall<<1>>(nsecShift+1)) + int64(d/time.Second)
	r.wall = r.wall&(1<<63|(1<<nsecShift-1)) | uint64(sec)<<nsecShift
	return t
}

// clockSteps are the steps every test here is run with; 0 is the control.
var clockSteps = []struct {
	name string
	d    time.Duration
}{
	{"no step", 0},
	{"forward 1m", time.Minute},
	{"forward 1h", time.Hour},
	{"back 1m", -time.Minute},
	{"back 1h", -time.Hour},
}

func TestWallSteppedHelper(t *testing.T) {
	t0 := time.Now()
	for _, s := range clockSteps {
		got := wallStepped(t0, s.d)
		if mono, wall := got.Sub(t0), time.Duration(got.UnixNano()-t0.UnixNano()); mono != 0 || wall != s.d {
			t.Fatalf("%s: monotonic moved %v, wall %v; want 0 and %v", s.name, mono, wall, s.d)
		}
	}
}

// ackedAt is a graphql-transport-ws socket's machine, opened and
// acknowledged at t0 with v's credentials.
func ackedAt(t *testing.T, m *wsMachine, t0 time.Time, v initVerdict) {
	t.Helper()
	m.proto = transportWS
	m.heard(t0)
	if s := m.receive([]byte(wsmInit)); s.act != actAuthenticate {
		t.Fatalf("init: %s", wsmDescribe(transportWS, s))
	}
	if s := m.answerInit(v, t0, &wsmConfig); !s.nowAcked {
		t.Fatalf("answer: %s", wsmDescribe(transportWS, s))
	}
}

// TestKeepaliveSurvivesWallClockSteps: a socket acknowledged at t0 is
// pinged and judged silent on the time that passed, whatever the wall
// clock was stepped by since: a step forward closed every socket as silent
// at once, a step back stopped pings and the detection of dead sockets for
// as long as it stepped.
func TestKeepaliveSurvivesWallClockSteps(t *testing.T) {
	ping, pong := wsmConfig.pingInterval, wsmConfig.pongTimeout
	const (
		nothing = ""
		pinged  = `send {"type":"ping"}`
		silent  = `close 1001 "keepalive timeout: nothing received from the client"`
	)
	type tick struct {
		at    time.Duration // after t0, on the monotonic clock
		heard bool          // a frame came just before
		want  string
	}
	for _, tc := range []struct {
		name  string
		ticks []tick
	}{
		{"answering client", []tick{
			{at: time.Second, want: nothing},
			{at: ping - time.Millisecond, want: nothing},
			{at: ping, want: pinged},
			{at: ping + time.Second, heard: true, want: nothing},
			{at: ping + pong + time.Millisecond, want: nothing},
			{at: 2 * ping, want: pinged},
		}},
		{"silent client", []tick{
			{at: ping, want: pinged},
			{at: ping + pong, want: nothing},
			{at: ping + pong + time.Millisecond, want: silent},
		}},
	} {
		for _, step := range clockSteps {
			t.Run(tc.name+"/"+step.name, func(t *testing.T) {
				t0 := time.Now()
				var m wsMachine
				ackedAt(t, &m, t0, wsmAccepted)
				for _, k := range tc.ticks {
					now := wallStepped(t0.Add(k.at), step.d)
					if k.heard {
						m.heard(now)
					}
					if got := wsmDescribe(transportWS, m.tick(now, t0, &wsmConfig)); got != k.want {
						t.Fatalf("tick %v after the ack (the wall clock stepped %v meanwhile): %q, want %q", k.at, step.d, got, k.want)
					}
				}
			})
		}
	}
}

// TestCredentialsExpireOnTheWallClockAcrossSteps: a token's exp is a
// wall-clock time, so a socket's credentials are judged on the wall
// clock, stepped or not.
func TestCredentialsExpireOnTheWallClockAcrossSteps(t *testing.T) {
	const expired = `close 4403 "Forbidden: the token has expired; reconnect with a fresh one"`
	for _, tc := range []struct {
		name    string
		expires time.Duration // after t0, on the wall clock
		step    time.Duration
		want    string // at a tick a second after t0
	}{
		{"expiring later", time.Minute, 0, ""},
		{"stepped forward past the expiry", 30 * time.Minute, time.Hour, expired},
		{"stepped back before the expiry", 5 * time.Second, -time.Hour, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			var m wsMachine
			ackedAt(t, &m, t0, initVerdict{expires: t0.Round(0).Add(tc.expires)})
			now := wallStepped(t0.Add(time.Second), tc.step)
			if got := wsmDescribe(transportWS, m.tick(now, t0, &wsmConfig)); got != tc.want {
				t.Fatalf("tick: %q, want %q", got, tc.want)
			}
			if _, ok := m.startable(now); ok != (tc.want == "") {
				t.Fatalf("startable: %v, want %v", ok, tc.want == "")
			}
		})
	}
}

// TestKeeperDueAcrossWallClockSteps: the keeper looks at a socket again
// when it is due by the time that passed: its next ping, or what is left
// of its credentials by the wall clock, whatever the wall clock was
// stepped by since the keeper and the socket started.
func TestKeeperDueAcrossWallClockSteps(t *testing.T) {
	ping := wsmConfig.pingInterval
	const left = 5 * time.Second // of the credentials, by the wall clock, at the check
	for _, step := range clockSteps {
		for _, expiring := range []bool{false, true} {
			name := step.name
			want := ping // the next ping
			if expiring {
				name, want = name+"/expiring", left
			}
			t.Run(name, func(t *testing.T) {
				k := newKeeper(wsmConfig)
				t0 := time.Now()
				c := &wsConn{t: &wsTransport{cfg: wsmConfig}, slot: -1}
				ackedAt(t, &c.machine, t0, wsmAccepted)
				if expiring {
					// Refreshed credentials of which, by the wall clock,
					// 5 s are left at the check.
					c.machine.extendExpiry(t0.Round(0).Add(ping + step.d + left))
				}
				k.live.add(c)
				now := wallStepped(t0.Add(ping), step.d)
				if got := k.collectDue(nil, now); !slices.Equal(got, []*wsConn{c}) {
					t.Fatalf("a socket just acknowledged is not due at once")
				}
				c.machine.heard(now)
				if got := wsmDescribe(transportWS, c.machine.tick(now, t0, &wsmConfig)); !strings.Contains(got, "ping") {
					t.Fatalf("tick at the ping interval: %q, want a ping", got)
				}
				k.reschedule([]*wsConn{c}, []int64{k.dueAt(c, now)})
				if got := time.Duration(k.live.due[c.slot] - k.at(now)); got != want {
					t.Fatalf("next due %v after the check, want %v", got, want)
				}
				if got := k.collectDue(nil, now.Add(want-time.Millisecond)); len(got) != 0 {
					t.Fatalf("due %v early", time.Millisecond)
				}
				if got := k.collectDue(nil, now.Add(want)); !slices.Equal(got, []*wsConn{c}) {
					t.Fatalf("not due %v after the check", want)
				}
			})
		}
	}
}

// TestParkedStreamKeepaliveAcrossWallClockSteps: a parked stream's
// heartbeat comes every interval of time that passed: a step back of the
// wall clock held it back for the step (and proxies cut the silent
// stream), a step forward sent every stream's at once.
func TestParkedStreamKeepaliveAcrossWallClockSteps(t *testing.T) {
	const every = 10 * time.Second
	for _, step := range clockSteps {
		t.Run(step.name, func(t *testing.T) {
			t0 := time.Now()
			// over: the stream takes no writer; checkTimers only marks what is due.
			ps := &parkedStream{st: &httpStream{}, keeper: newKeeper(wsmConfig), every: every, over: true}
			ps.keepaliveAfter(t0)
			for _, k := range []struct {
				at   time.Duration // after t0, on the monotonic clock
				want bool
			}{
				{time.Second, false},
				{every - time.Millisecond, false},
				{every, true},
				{every + time.Second, false},
				{2 * every, true},
			} {
				ps.checkTimers(wallStepped(t0.Add(k.at), step.d))
				ps.st.mu.Lock()
				got := ps.keepaliveDue
				ps.keepaliveDue = false
				ps.st.mu.Unlock()
				if got != k.want {
					t.Fatalf("%v after parking (the wall clock stepped %v meanwhile): keepalive due %v, want %v", k.at, step.d, got, k.want)
				}
			}
		})
	}
}

// TestParkedStreamExpiryOnTheWallClock: a parked stream's credentials,
// like a socket's, are judged on the wall clock.
func TestParkedStreamExpiryOnTheWallClock(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expires time.Duration // after t0, on the wall clock
		step    time.Duration
		want    bool // expired at a check a second after t0
	}{
		{"expiring later", time.Minute, 0, false},
		{"stepped forward past the expiry", 30 * time.Minute, time.Hour, true},
		{"stepped back before the expiry", 5 * time.Second, -time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			ps := &parkedStream{st: &httpStream{}, keeper: newKeeper(wsmConfig), every: time.Minute, over: true,
				expires: expiryNanos(t0.Round(0).Add(tc.expires))}
			ps.keepaliveAfter(t0)
			ps.checkTimers(wallStepped(t0.Add(time.Second), tc.step))
			ps.st.mu.Lock()
			defer ps.st.mu.Unlock()
			if ps.expired != tc.want || ps.st.sealed != tc.want {
				t.Fatalf("expired %v, sealed %v; want %v", ps.expired, ps.st.sealed, tc.want)
			}
		})
	}
}

// TestStreamExpiryTimerAcrossWallClockSteps: the expiry of a stream
// served by its request's goroutine is judged on the wall clock when its
// timer fires (early, after a step back: it waits on) and at each
// keepalive (after a step forward the timer would fire late).
func TestStreamExpiryTimerAcrossWallClockSteps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		expires time.Duration // from the check, on the wall clock
		stopped bool
		want    bool // sealed and expired
	}{
		{"fired before the expiry (stepped back): waits on", time.Hour, false, false},
		{"checked past the expiry (stepped forward)", -time.Second, false, true},
		{"stopped", -time.Second, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &httpStream{}
			e := newExpiryTimer(st, time.Now().Add(time.Hour))
			defer e.stop()
			if tc.stopped {
				e.stop()
			}
			// The wall clock moves relative to the expiry the timer was
			// armed for; the timer, counting monotonic time, does not see it.
			st.mu.Lock()
			e.at = time.Now().Add(tc.expires)
			st.mu.Unlock()
			e.check()
			st.mu.Lock()
			sealed := st.sealed
			st.mu.Unlock()
			if sealed != tc.want || isClosed(e.expired) != tc.want {
				t.Fatalf("sealed %v, expired %v; want %v", sealed, isClosed(e.expired), tc.want)
			}
		})
	}
	var never *expiryTimer
	never.check() // credentials that never expire: nothing to do
}
