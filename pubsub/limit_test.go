package pubsub

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestOpenKeepsTheLimitOfALogInUse: a Log is opened with limit 6, then
// another with a different one. Open refuses to change the per-subject
// limit while a replica is alive (its presence liveness key exists), and
// to lower it once the log holds any entry, a directory entry included;
// it refuses naming the limit in force and the replicas alive, and
// changes nothing. Raising it with no replica alive is allowed, entries or
// not, and so is keeping it under replicas alive.
func TestOpenKeepsTheLimitOfALogInUse(t *testing.T) {
	alive := func(t *testing.T, l *Log) {
		p, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "a"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.Close(context.Background()) })
	}
	stopped := func(t *testing.T, l *Log) {
		p, err := l.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Close(testCtx(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	entry := func(t *testing.T, l *Log) { mustAdd(t, l, "general", "room") }
	for _, tt := range []struct {
		name        string
		use         []func(t *testing.T, l *Log)
		limit       int64 // the second Open's; the first's is 6
		wantErr     error // nil = opened with limit
		wantRefused []string
	}{
		{name: "lowered: a directory entry", use: []func(*testing.T, *Log){entry}, limit: 3,
			wantErr: ErrHistoryLowered, wantRefused: []string{"the event log holds 1 entries", "--room-history) at 6 or more"}},
		{name: "lowered: a replica alive", use: []func(*testing.T, *Log){alive}, limit: 3,
			wantErr: ErrHistoryLowered, wantRefused: []string{"1 replica(s) alive (a)", "--room-history) at 6 or more"}},
		{name: "lowered: a replica that stopped", use: []func(*testing.T, *Log){stopped}, limit: 3},
		{name: "lowered: nothing", limit: 3},
		{name: "raised: a replica alive", use: []func(*testing.T, *Log){entry, alive}, limit: 9,
			wantErr: ErrHistoryRaised, wantRefused: []string{"keeps max_msgs_per_subject 6", "1 replica(s) alive (a)",
				"start with MaxMsgsPerSubject (--room-history) 6", "stop every replica and start them all with 9", "counts as alive"}},
		{name: "raised to unlimited: a replica alive", use: []func(*testing.T, *Log){alive}, limit: 0,
			wantErr: ErrHistoryRaised, wantRefused: []string{"raising it to unlimited", "(--room-history) 6"}},
		{name: "raised: entries, a replica that stopped", use: []func(*testing.T, *Log){entry, stopped}, limit: 9},
		{name: "raised: entries, nothing alive", use: []func(*testing.T, *Log){entry}, limit: 9},
		{name: "kept: a replica alive", use: []func(*testing.T, *Log){entry, alive}, limit: 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATS(t, true)
			a := openLog(t, Options{URLs: []string{url}, Partitions: 2, MaxMsgsPerSubject: 6})
			for _, use := range tt.use {
				use(t, a)
			}
			b, err := Open(testCtx(t, 10*time.Second), Options{URLs: []string{url}, Partitions: 2, MaxMsgsPerSubject: tt.limit, Logger: testLogger()})
			if err == nil {
				defer b.Close()
			}
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Open with limit %d: %v", tt.limit, err)
			case tt.wantErr == nil:
				if got := b.MaxMsgsPerSubject(); got != tt.limit {
					t.Errorf("MaxMsgsPerSubject = %d, want %d", got, tt.limit)
				}
				return
			case !errors.Is(err, tt.wantErr):
				t.Fatalf("Open with limit %d under 6: %v; want %v", tt.limit, err, tt.wantErr)
			}
			for _, want := range tt.wantRefused {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refused with %q; want it to say %q", err, want)
				}
			}
			js := rawJS(t, url)
			for _, name := range a.lay.partStreams {
				s, err := js.Stream(testCtx(t, 5*time.Second), name)
				if err != nil {
					t.Fatal(err)
				}
				if got := s.CachedInfo().Config.MaxMsgsPerSubject; got != 6 {
					t.Errorf("stream %s keeps max_msgs_per_subject %d after the refused Open, want 6", name, got)
				}
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

// TestOpenJudgesByThePartitionsLimitNotTheDirectorys: the per-subject
// limit replicas judge by is the partitions'; the directory's is always
// unlimited and Open restores it (TestStreamUpdate). A directory whose
// max_msgs_per_subject was set by hand must not make a replica starting
// with the partitions' limit in force, while another replica is alive, be
// refused as "raising" a limit (with advice to start with the directory's
// limit, which the partitions would refuse): a rolling restart would stay
// blocked until every replica stopped.
func TestOpenJudgesByThePartitionsLimitNotTheDirectorys(t *testing.T) {
	url := startNATS(t, true)
	a := openLog(t, Options{URLs: []string{url}, Partitions: 2, MaxMsgsPerSubject: 6})
	p, err := a.Presence(testCtx(t, 10*time.Second), PresenceOptions{Replica: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	mustAdd(t, a, "general", "room")

	js := rawJS(t, url)
	s, err := js.Stream(testCtx(t, 5*time.Second), "HERALD_ROOMS")
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxMsgsPerSubject = 1 // discards nothing: a key has one entry
	if _, err := js.UpdateStream(testCtx(t, 5*time.Second), cfg); err != nil {
		t.Fatal(err)
	}

	b, err := Open(testCtx(t, 10*time.Second), Options{URLs: []string{url}, Partitions: 2, MaxMsgsPerSubject: 6, Logger: testLogger()})
	if err != nil {
		t.Fatalf("Open with the partitions' limit in force (6), a replica alive, the directory's per-subject limit set to 1 by hand: %v", err)
	}
	defer b.Close()
	if got := b.MaxMsgsPerSubject(); got != 6 {
		t.Errorf("MaxMsgsPerSubject = %d, want 6", got)
	}
}
