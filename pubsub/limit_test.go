package pubsub

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestRefreshMaxMsgsPerSubjectAdoptsRaisedLimit: a Log opened with limit 3
// keeps judging by it until asked to read it again, then adopts the limit
// a later Open raised, but only the lowest every partition keeps; a stored
// entry the last read covered is answered without a read.
func TestRefreshMaxMsgsPerSubjectAdoptsRaisedLimit(t *testing.T) {
	url := startNATS(t, true)
	a := openLog(t, Options{URLs: []string{url}, Partitions: 2, MaxMsgsPerSubject: 3})
	key := "room1"
	stored := mustAppendKeyed(t, a, key, "posts", "hello", AppendOptions{})
	openLog(t, Options{URLs: []string{url}, Partitions: 2, MaxMsgsPerSubject: 6})
	if got := a.MaxMsgsPerSubject(); got != 3 {
		t.Fatalf("MaxMsgsPerSubject before a read = %d, want 3 (as Open found it)", got)
	}
	js := rawJS(t, url)
	setLimit := func(k int, n int64) {
		t.Helper()
		ctx := testCtx(t, 5*time.Second)
		s, err := js.Stream(ctx, a.lay.partStreams[k])
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.MaxMsgsPerSubject = n
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	other := 1 - a.PartitionOf(key)
	for _, step := range []struct {
		name   string
		before func()
		seq    uint64
		want   int64
	}{
		{name: "a proposal: raised by the later Open", want: 6},
		{name: "a stored entry the last read covered", before: func() { setLimit(0, 9); setLimit(1, 9) }, seq: stored.Seq, want: 6},
		{name: "a proposal again", want: 9},
		{name: "one partition higher than the others", before: func() { setLimit(a.PartitionOf(key), 12) }, want: 9},
		{name: "every partition higher", before: func() { setLimit(other, 0) }, want: 12},
	} {
		if step.before != nil {
			step.before()
		}
		got, err := a.RefreshMaxMsgsPerSubject(testCtx(t, 5*time.Second), key, step.seq)
		if err != nil || got != step.want || a.MaxMsgsPerSubject() != step.want {
			t.Errorf("%s: RefreshMaxMsgsPerSubject = %d, %v (MaxMsgsPerSubject %d); want %d",
				step.name, got, err, a.MaxMsgsPerSubject(), step.want)
		}
	}
}

// TestOpenRefusesLoweringTheLimitOfALogInUse: Open refuses to lower the
// per-subject limit once the log holds any entry, a directory entry
// included, or a replica is alive (its presence liveness key exists); an
// empty log nobody uses may be lowered.
func TestOpenRefusesLoweringTheLimitOfALogInUse(t *testing.T) {
	for _, tt := range []struct {
		name        string
		use         func(t *testing.T, l *Log)
		wantRefused string // "" = lowered
	}{
		{name: "a directory entry", use: func(t *testing.T, l *Log) { mustAdd(t, l, "general", "room") },
			wantRefused: "the event log holds 1 entries"},
		{name: "a replica alive", use: func(t *testing.T, l *Log) {
			p, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "a"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close(context.Background()) })
		}, wantRefused: "1 replica(s) alive (a)"},
		{name: "a replica that stopped", use: func(t *testing.T, l *Log) {
			p, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "a"})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Close(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "nothing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATS(t, true)
			a := openLog(t, Options{URLs: []string{url}, MaxMsgsPerSubject: 6})
			if tt.use != nil {
				tt.use(t, a)
			}
			b, err := Open(testCtx(t, 10*time.Second), Options{URLs: []string{url}, MaxMsgsPerSubject: 3, Logger: testLogger()})
			if err == nil {
				defer b.Close()
			}
			switch {
			case tt.wantRefused == "" && err != nil:
				t.Fatalf("Open lowering the limit of an unused log: %v", err)
			case tt.wantRefused == "" && b.MaxMsgsPerSubject() != 3:
				t.Errorf("MaxMsgsPerSubject = %d, want 3", b.MaxMsgsPerSubject())
			case tt.wantRefused != "" && (!errors.Is(err, ErrHistoryLowered) || !strings.Contains(err.Error(), tt.wantRefused)):
				t.Errorf("Open lowering the limit: %v; want ErrHistoryLowered saying %q", err, tt.wantRefused)
			}
		})
	}
}

// TestReplicasNotLowered: a stream's or bucket's replica count may be
// raised, never lowered.
func TestReplicasNotLowered(t *testing.T) {
	for _, tt := range []struct{ have, want int }{{3, 1}, {3, 0}, {5, 3}, {1, 3}, {3, 3}, {0, 1}} {
		err := checkReplicasNotLowered(jetstream.StreamConfig{Name: "S", Replicas: tt.have}, jetstream.StreamConfig{Replicas: tt.want})
		if lowered := max(tt.want, 1) < max(tt.have, 1); lowered != errors.Is(err, ErrReplicasLowered) {
			t.Errorf("replicas %d -> %d: %v", tt.have, tt.want, err)
		}
	}
}
