package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// defaultedRun is a defaulted run of cfg (URL filled in if empty).
func defaultedRun(t *testing.T, cfg Config) *run {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = "http://127.0.0.1:1/graphql"
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newRun(cfg)
}

// hasFailure reports whether rep has a failure starting with prefix.
func hasFailure(rep *Report, prefix string) bool {
	for _, f := range rep.Failures {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

// TestOneSubscriptionNotLiveFailsSetup: one subscription of
// two that never became live (its server ended it before any probe) fails
// setup at once: the run would measure one subscriber fewer than it
// reports, and there is nothing to wait for.
func TestOneSubscriptionNotLiveFailsSetup(t *testing.T) {
	r := defaultedRun(t, Config{Connections: 2, Rooms: 1, Events: 1})
	r.rooms = []*roomState{{id: "room-1", subs: 2}}
	live, dead := &sub{room: 0}, &sub{room: 0}
	live.probe.Store(true)
	dead.dead.Store(true)
	r.conns = []*conn{
		{idx: 0, proto: protoTransport, subs: []*sub{live}, done: make(chan struct{})},
		{idx: 1, proto: protoTransport, subs: []*sub{dead}, done: make(chan struct{})},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep := r.newReport()
	t0 := time.Now()
	r.confirmLive(ctx, rep)
	if d := time.Since(t0); d > 4*time.Second {
		t.Errorf("confirmLive took %v: a subscription the server ended is not waited for (until the setup timeout)", d)
	}
	if !rep.Setup.Failed || rep.Setup.SubscriptionsLive != 1 || !hasFailure(rep, "setup: 1 of 2 subscriptions live") {
		t.Errorf("1 of 2 subscriptions live: setup failed %v, live %d, failures %q; want failed, 1, \"setup: 1 of 2 subscriptions live\"",
			rep.Setup.Failed, rep.Setup.SubscriptionsLive, rep.Failures)
	}
}

// TestOneConnectionFailedFailsSetup: a single connection that
// cannot be made fails setup.
func TestOneConnectionFailedFailsSetup(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more: the dial is refused
	r := defaultedRun(t, Config{URL: "http://" + addr + "/graphql", Connections: 1, Rooms: 1, Events: 1,
		HandshakeTimeout: 3 * time.Second})
	r.rooms = []*roomState{{id: "room-1"}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep := r.newReport()
	r.connectSubscribers(ctx, rep)
	if !rep.Setup.Failed || rep.Setup.ConnectionsFailed != 1 || !hasFailure(rep, "setup: 1 of 1 connections failed") {
		t.Errorf("the one connection failed: setup failed %v, connections failed %d, failures %q",
			rep.Setup.Failed, rep.Setup.ConnectionsFailed, rep.Failures)
	}
}

// TestOneFailedServerReadingFailsTheRun: a single reading of
// the server's process that failed fails the run (its CPU and RSS are
// then not measured).
func TestOneFailedServerReadingFailsTheRun(t *testing.T) {
	r := defaultedRun(t, Config{Connections: 1, Events: 1, ServerPID: 42})
	r.procReadings, r.procFailed, r.procErr = 6, 1, "after run: no such process"
	rep := r.newReport()
	r.failOnServerTrouble(rep)
	if !hasFailure(rep, "server: 1 of 6 readings of PID 42 failed") {
		t.Errorf("failures %q, want one for the failed reading", rep.Failures)
	}
}
