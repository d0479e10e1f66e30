package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestPartitionOf pins the hash: it places every key for good, so it must
// never change.
func TestPartitionOf(t *testing.T) {
	tests := []struct {
		key  string
		n    int
		want int
	}{
		{"", 4, 1},        // FNV-1a("") = 0x811c9dc5
		{"a", 4, 0},       // FNV-1a("a") = 0xe40c292c
		{"a", 7, 5},       //
		{"a", 256, 44},    //
		{"general", 4, 3}, // 0x24b9216b
		{"general", 7, 1},
		{"room_1", 4, 2}, // 0x5208e60a
		{"room_1", 256, 10},
		{"lobby", 256, 211}, // 0x1c5a0ed3
		{"x9", 1, 0},
	}
	for _, tt := range tests {
		if got := partitionOf(tt.key, tt.n); got != tt.want {
			t.Errorf("partitionOf(%q, %d) = %d, want %d", tt.key, tt.n, got, tt.want)
		}
	}

	l := openEmbedded(t, Options{Partitions: 8})
	if l.Partitions() != 8 {
		t.Fatalf("Partitions() = %d, want 8", l.Partitions())
	}
	counts := make([]int, 8)
	for i := range 4000 {
		key := fmt.Sprint("room_", i)
		k := l.PartitionOf(key)
		if k != l.PartitionOf(key) || k != partitionOf(key, 8) {
			t.Fatalf("PartitionOf(%q) is not stable", key)
		}
		counts[k]++
	}
	for k, c := range counts {
		if c < 400 || c > 600 { // 500 expected
			t.Errorf("partition %d got %d of 4000 keys: %v", k, c, counts)
		}
	}
	if got := openEmbedded(t, Options{}).Partitions(); got != 1 {
		t.Errorf("default Partitions() = %d, want 1", got)
	}
}

func TestLayoutConflict(t *testing.T) {
	t.Run("reopened with another partition count", func(t *testing.T) {
		dir := t.TempDir()
		l := openLog(t, Options{DataDir: dir, Partitions: 3})
		mustAppendKeyed(t, l, "a", "posts", "x", AppendOptions{})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		_, err := Open(testCtx(t, 10*time.Second), Options{DataDir: dir, Partitions: 4, Logger: testLogger()})
		want := `the event log was created with 3 partitions (stream "HERALD_ROOMS" records herald.partitions=3), but Partitions is 4: ` +
			`the partition count is fixed when the log is created; start with 3 partitions`
		if !errors.Is(err, ErrLayoutConflict) || err.Error() != want {
			t.Fatalf("Open with 4 partitions = %v, want ErrLayoutConflict %q", err, want)
		}
		// The same count still opens, with the data intact.
		again := openLog(t, Options{DataDir: dir, Partitions: 3})
		if got, _ := mustReadKey(t, again, "a", 0); len(got) != 1 {
			t.Errorf("entries of a after the refused Open = %d, want 1", len(got))
		}
	})

	tests := []struct {
		name     string
		existing jetstream.StreamConfig
		opts     Options
		want     string
	}{
		{
			name:     "directory without layout metadata",
			existing: jetstream.StreamConfig{Name: "HERALD_ROOMS", Subjects: []string{"herald-rooms.>"}},
			opts:     Options{Partitions: 2},
			want:     `stream "HERALD_ROOMS" exists but records no herald.partitions in its metadata`,
		},
		{
			name: "directory of a newer layout",
			existing: jetstream.StreamConfig{Name: "HERALD_ROOMS", Subjects: []string{"herald-rooms.>"},
				Metadata: map[string]string{"herald.layout": "3", "herald.partitions": "2"}},
			opts: Options{Partitions: 2},
			want: `stream "HERALD_ROOMS" records herald.layout=3, but this herald knows layout 2 only`,
		},
		{
			name: "partition of another layout",
			existing: jetstream.StreamConfig{Name: "HERALD_P1", Subjects: []string{"herald-p1.>"},
				Metadata: map[string]string{"herald.layout": "2", "herald.partition": "1/3"}},
			opts: Options{Partitions: 2},
			want: `stream "HERALD_P1" records herald.partition=1/3, but the event log has 2 partitions (it should be 1/2)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATS(t, true)
			createStream(t, url, tt.existing)
			opts := tt.opts
			opts.URLs, opts.Logger = []string{url}, testLogger()
			l, err := Open(testCtx(t, 10*time.Second), opts)
			if err == nil {
				_ = l.Close()
				t.Fatal("Open succeeded, want ErrLayoutConflict")
			}
			if !errors.Is(err, ErrLayoutConflict) || errors.Is(err, ErrStreamConflict) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open = %v, want ErrLayoutConflict containing %q", err, tt.want)
			}
			// Nothing was created before the conflict was found.
			names := rawJS(t, url).StreamNames(testCtx(t, 5*time.Second))
			var got []string
			for n := range names.Name() {
				got = append(got, n)
			}
			if len(got) != 1 || got[0] != tt.existing.Name {
				t.Errorf("streams after the refused Open = %v, want only %s", got, tt.existing.Name)
			}
		})
	}
}

func TestEpoch(t *testing.T) {
	url := startNATS(t, true)
	js := rawJS(t, url)
	opts := Options{URLs: []string{url}, Partitions: 3, Logger: testLogger()}
	open := func() *Log {
		t.Helper()
		l, err := Open(testCtx(t, 10*time.Second), opts)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	}

	first := open()
	checkLayoutStreams(t, js, opts)
	epoch := first.Epoch()
	for _, s := range first.layoutStreamsOnly() {
		if c := s.CachedInfo().Created; c.After(epoch) {
			t.Errorf("stream %s created %v, after Epoch %v", s.CachedInfo().Config.Name, c, epoch)
		}
	}
	mustAdd(t, first, "a", "x")
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if again := open(); !again.Epoch().Equal(epoch) {
		t.Errorf("Epoch after reopening = %v, want %v", again.Epoch(), epoch)
	}

	if err := js.DeleteStream(testCtx(t, 5*time.Second), "HERALD_P2"); err != nil {
		t.Fatal(err)
	}
	recreated := open()
	if !recreated.Epoch().After(epoch) {
		t.Errorf("Epoch after HERALD_P2 was re-created = %v, want after %v", recreated.Epoch(), epoch)
	}
	if got := mustDirectoryLastSeq(t, recreated); got != 1 {
		t.Errorf("directory last seq = %d, want 1 (kept)", got)
	}
}

// layoutStreamsOnly is the directory and partition streams, for tests.
func (l *Log) layoutStreamsOnly() []jetstream.Stream {
	s, _ := l.layoutStreams()
	return s
}

func TestParsePartitionSubject(t *testing.T) {
	tests := []struct {
		subject   string
		k         int
		key, rest string
		ok        bool
	}{
		{"herald-p0.a.posts", 0, "a", "posts", true},
		{"herald-p12.room_1.msg.abc", 12, "room_1", "msg.abc", true},
		{"herald-p0.a", 0, "", "", false},
		{"herald-p0.a.", 0, "", "", false},
		{"herald-p.a.posts", 0, "", "", false},
		{"herald-p01.a.posts", 0, "", "", false},
		{"herald-p-1.a.posts", 0, "", "", false},
		{"herald-rooms.a", 0, "", "", false},
		{"herald.room.a.posts", 0, "", "", false},
		{"", 0, "", "", false},
	}
	for _, tt := range tests {
		k, key, rest, ok := parsePartitionSubject(tt.subject)
		if k != tt.k || key != tt.key || rest != tt.rest || ok != tt.ok {
			t.Errorf("parsePartitionSubject(%q) = %d, %q, %q, %v; want %d, %q, %q, %v",
				tt.subject, k, key, rest, ok, tt.k, tt.key, tt.rest, tt.ok)
		}
	}
}

// TestLongTokensKeepTheConnection: a token longer than maxTokenBytes, in
// any of the places a caller's input becomes a subject, is refused before
// it reaches NATS, whose server would otherwise end the connection (a
// protocol line over its max_control_line) for good.
func TestLongTokensKeepTheConnection(t *testing.T) {
	long := strings.Repeat("a", 5000)
	nop := func(context.Context, http.Header, []byte) (http.Header, []byte) { return nil, nil }
	tests := []struct {
		name string
		do   func(t *testing.T, l *Log, p *Presence) error // p is nil unless presence
		// ignored: the call reports nothing (Presence.Enter logs)
		ignored, presence bool
	}{
		{name: "AppendKeyed key", do: func(t *testing.T, l *Log, _ *Presence) error {
			_, err := l.AppendKeyed(testCtx(t, 2*time.Second), long, "posts", []byte("x"), AppendOptions{})
			return err
		}},
		{name: "AppendKeyed rest", do: func(t *testing.T, l *Log, _ *Presence) error {
			_, err := l.AppendKeyed(testCtx(t, 2*time.Second), "k", "msg."+long, []byte("x"), AppendOptions{})
			return err
		}},
		{name: "FollowRest rest", do: func(t *testing.T, l *Log, _ *Presence) error {
			return l.FollowRest(testCtx(t, 2*time.Second), 0, "member."+long+".>", 0, func(Entry) error { return nil })
		}},
		{name: "RestLastSeq rest", do: func(t *testing.T, l *Log, _ *Presence) error {
			_, err := l.RestLastSeq(testCtx(t, 2*time.Second), 0, "member."+long)
			return err
		}},
		{name: "AddToDirectory", do: func(t *testing.T, l *Log, _ *Presence) error {
			_, err := l.AddToDirectory(testCtx(t, 2*time.Second), long, []byte("x"))
			return err
		}},
		{name: "ReadKey", do: func(t *testing.T, l *Log, _ *Presence) error {
			_, err := l.ReadKey(testCtx(t, 2*time.Second), long, 0, func(Entry) error { return nil })
			return err
		}},
		{name: "Live.Add", do: func(t *testing.T, l *Log, _ *Presence) error {
			lv := l.NewLive(LiveOptions{})
			defer lv.Close()
			return lv.Add(long)
		}},
		{name: "Relay.Listen", do: func(t *testing.T, l *Log, _ *Presence) error {
			r := l.Relay()
			defer r.Close()
			stop, err := r.Listen(long, nop)
			if err == nil {
				stop()
			}
			return err
		}},
		{name: "Relay.Send", do: func(t *testing.T, l *Log, _ *Presence) error {
			r := l.Relay()
			defer r.Close()
			_, _, err := r.Send(testCtx(t, 2*time.Second), long, nil, nil)
			return err
		}},
		{name: "PublishNotice", do: func(t *testing.T, l *Log, _ *Presence) error {
			return l.PublishNotice(testCtx(t, 2*time.Second), long, nil)
		}},
		{name: "ListenNotices", do: func(t *testing.T, l *Log, _ *Presence) error {
			nl, err := l.ListenNotices(long, func([]byte) {})
			if err == nil {
				_ = nl.Close()
			}
			return err
		}},
		{name: "Presence replica", do: func(t *testing.T, l *Log, _ *Presence) error {
			p, err := l.Presence(testCtx(t, 5*time.Second), PresenceOptions{Replica: long})
			if err == nil {
				_ = p.Close(testCtx(t, 2*time.Second))
			}
			return err
		}},
		{name: "Presence.Enter", presence: true, ignored: true, do: func(t *testing.T, l *Log, p *Presence) error {
			p.Enter(long, "alice")
			time.Sleep(3 * p.opts.Coalesce) // the writer's round
			return nil
		}},
		{name: "Presence.Watch", presence: true, do: func(t *testing.T, l *Log, p *Presence) error {
			w, err := p.Watch(t.Context(), long, func([]string) {})
			if err == nil {
				w.Close()
			}
			return err
		}},
		{name: "Presence.Signal", presence: true, do: func(t *testing.T, l *Log, p *Presence) error {
			return p.Signal(testCtx(t, 2*time.Second), long, "alice")
		}},
		{name: "Presence.WatchSignals", presence: true, do: func(t *testing.T, l *Log, p *Presence) error {
			sw, err := p.WatchSignals(long, func(string) {})
			if err == nil {
				sw.Close()
			}
			return err
		}},
	}
	url := startNATS(t, true)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, Options{URLs: []string{url}})
			var p *Presence
			if tt.presence {
				p = openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
			}
			err := tt.do(t, l, p)
			if !tt.ignored && (err == nil || !strings.Contains(err.Error(), "at most 256 bytes")) {
				t.Errorf("error = %v, want the token refused for its length", err)
			}
			if ferr := l.nc.FlushTimeout(2 * time.Second); ferr != nil || !l.Connected() {
				t.Fatalf("after the call, the connection is %s (flush: %v), want it kept", l.nc.Status(), ferr)
			}
		})
	}

	// The bound leaves room: a key of maxTokenBytes is stored and read.
	l := openLog(t, Options{URLs: []string{url}})
	key := strings.Repeat("k", maxTokenBytes)
	if _, err := l.AppendKeyed(testCtx(t, 2*time.Second), key, "posts", []byte("x"), AppendOptions{}); err != nil {
		t.Fatalf("AppendKeyed with a key of %d bytes: %v", maxTokenBytes, err)
	}
	if got, _ := mustReadKey(t, l, key, 0); len(got) != 1 {
		t.Fatalf("ReadKey of a key of %d bytes: %d entries, want 1", maxTokenBytes, len(got))
	}
}
