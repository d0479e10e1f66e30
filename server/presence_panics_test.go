package server

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The tests of this file: what a panic of the Presence's costs. Enter is
// called as a subscriber is admitted, under the engine's locks, on the
// subscriber's goroutine or the one starting the execution; Leave as one
// leaves, or as an execution ending by itself ends its members, on its
// own goroutine. See join_panics_test.go for the other code the engine
// calls while a subscriber joins.

// tellingPresence records what it is told, "enter <user>" and "leave
// <user>", and panics instead for the users it is given.
type tellingPresence struct {
	enterPanics, leavePanics string

	mu   sync.Mutex
	told []string
}

func (p *tellingPresence) Enter(_, user string) {
	if user == p.enterPanics {
		panic("presence's Enter panicked")
	}
	p.record("enter " + user)
}

func (p *tellingPresence) Leave(_, user string) {
	if user == p.leavePanics {
		panic("presence's Leave panicked")
	}
	p.record("leave " + user)
}

func (p *tellingPresence) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.told = append(p.told, s)
}

// check fails unless Presence was told each of want and none of unwanted.
func (p *tellingPresence) check(t *testing.T, want, unwanted []string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range want {
		if !slices.Contains(p.told, s) {
			t.Errorf("Presence was not told %q; it was told %q", s, p.told)
		}
	}
	for _, s := range unwanted {
		if slices.Contains(p.told, s) {
			t.Errorf("Presence was told %q; it was told %q", s, p.told)
		}
	}
}

// TestPresenceEnterPanicCostsOnlyThatCount: Presence.Enter is called as a
// subscriber is admitted, under the execution's lock (and the registry's
// for one joining a running execution), when it starts the execution and
// when it joins one. It panicked there, on a socket's reader (the process
// ended) or on an HTTP stream's goroutine (net/http recovered it, but the
// locks stayed held: no member got another event, no subscription could
// start on the replica). The panic is logged and the subscriber counted
// as not entered: its subscription goes on, as do the other members', a
// later subscriber joins, and, as the execution ends, Presence is told
// nothing of it (a Leave with no Enter would take another of the user's
// subscriptions off the count).
func TestPresenceEnterPanicCostsOnlyThatCount(t *testing.T) {
	for _, tr := range joinTransports {
		for _, joining := range []bool{false, true} {
			name := tr.name + ", starting the execution"
			if joining {
				name = tr.name + ", joining a running execution"
			}
			t.Run(name, func(t *testing.T) {
				s := newJoinSchema(t)
				s.topic = "room"
				pres := &tellingPresence{enterPanics: "bob"}
				r, logs := serveJoinPanics(t, s, func(o *Options) { o.Presence = pres })
				var ann *wsClient
				annJoins := func() {
					ann = r.dialTransport("ann")
					ann.subscribe("subscribe", "1", joinedSubscription, nil)
					ann.expectHello("subscribe", "q")
				}
				if joining {
					annJoins()
				}
				bob := tr.subscribe(t, r, "bob")
				bob.joined()
				if !joining {
					annJoins()
				}
				s.events <- "tick"
				expectTick(t, bob)
				expectTick(t, socketSub{ann, "next"})

				carl := r.dialTransport("carl") // a subscription starts: the registry is free
				carl.subscribe("subscribe", "1", joinedSubscription, nil)
				carl.expectHello("subscribe", "q")
				s.events <- "tick"
				for _, sub := range []joinSub{bob, socketSub{ann, "next"}, socketSub{carl, "next"}} {
					expectTick(t, sub)
				}
				pres.check(t, []string{"enter ann", "enter carl"}, nil)

				// The execution ends (an event that panics): each member
				// gets the internal error and leaves its topic.
				s.events <- "panic"
				if code := onlyErrorCode(t, bob.result()); code != codeInternal {
					t.Fatalf("bob got %s, want %s", code, codeInternal)
				}
				bob.complete()
				for _, c := range []*wsClient{ann, carl} {
					if code := onlyErrorCode(t, c.expectFrame("next", "1").Payload); code != codeInternal {
						t.Fatalf("a member got %s, want %s", code, codeInternal)
					}
					c.expectFrame("complete", "1")
				}
				waitExecutionsStopped(t, r)
				pres.check(t, []string{"leave ann", "leave carl"}, []string{"enter bob", "leave bob"})
				checkLogged(t, logs, "recovered panic while telling Presence that a subscriber is present",
					"presence's Enter panicked", "stack=")
			})
		}
	}
}

// TestPresenceLeavePanicAsTheExecutionEnds: an execution that ends by
// itself tells Presence that each member left, on the execution's own
// goroutine, where nothing recovered a panic of Leave's and the process
// ended. It is logged, and the other members are ended and leave all the
// same.
func TestPresenceLeavePanicAsTheExecutionEnds(t *testing.T) {
	s := newJoinSchema(t)
	s.topic = "room"
	pres := &tellingPresence{leavePanics: "bob"}
	r, logs := serveJoinPanics(t, s, func(o *Options) { o.Presence = pres })
	var members []*wsClient
	for _, user := range []string{"ann", "bob", "carl"} {
		c := r.dialTransport(user)
		c.subscribe("subscribe", "1", joinedSubscription, nil)
		c.expectHello("subscribe", "q")
		members = append(members, c)
	}
	s.events <- "panic"
	for _, c := range members {
		if code := onlyErrorCode(t, c.expectFrame("next", "1").Payload); code != codeInternal {
			t.Fatalf("a member got %s, want %s", code, codeInternal)
		}
		c.expectFrame("complete", "1")
	}
	waitExecutionsStopped(t, r)
	pres.check(t, []string{"enter bob", "leave ann", "leave carl"}, nil)
	checkLogged(t, logs, "recovered panic while telling Presence that a subscriber left", "presence's Leave panicked", "stack=")

	// The replica goes on.
	c := r.dialTransport("dan")
	c.subscribe("subscribe", "1", joinedSubscription, nil)
	c.expectHello("subscribe", "q")
	s.events <- "tick"
	expectTick(t, socketSub{c, "next"})
}

// TestPresenceLeavePanicSkipsNoCleanup: leave tells Presence that its
// operation left last, after the registry is done with the execution: a
// panic of Leave's (which goes on to leave's caller) skipped the end of
// an execution its operation was the last member of, which stayed
// registered, its resolver running, with no member.
func TestPresenceLeavePanicSkipsNoCleanup(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := newSharedExecutions(m, slog.New(slog.DiscardHandler), 0, &tellingPresence{leavePanics: "bob"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := executionKey(sha256.Sum256([]byte("a subscription")))
	e := &execution{key: key, cancel: cancel, started: make(chan struct{}), log: r.log}
	op := &operation{id: "1", viewer: "bob", exec: e}
	e.members = []*operation{op}
	r.byKey[key] = e
	r.presence.enter(op, "room")

	func() {
		defer func() {
			if recovered := recover(); recovered == nil {
				t.Error("Presence.Leave's panic did not reach leave's caller")
			}
		}()
		r.leave(op)
	}()
	if r.count() != 0 {
		t.Error("the execution its last member left is still registered")
	}
	if ctx.Err() == nil {
		t.Error("the execution its last member left was not stopped")
	}
	r.leave(op) // its transport's teardown, later: nothing more
}
