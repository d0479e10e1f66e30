package pubsub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestFollowDirectory(t *testing.T) {
	l := openEmbedded(t, Options{})
	if l.ClientURL() != "" {
		t.Errorf("ClientURL without ListenAddr = %q, want empty", l.ClientURL())
	}
	if got := mustDirectoryLastSeq(t, l); got != 0 {
		t.Fatalf("DirectoryLastSeq of new log = %d, want 0", got)
	}
	in := []struct{ key, data string }{
		{"a", "one"},
		{"b", "two"},
		{"c_3", "three"},
	}
	for i, e := range in {
		res := mustAdd(t, l, e.key, e.data)
		if res.Seq != uint64(i+1) || res.Duplicate {
			t.Fatalf("AddToDirectory #%d = %+v, want seq %d, not duplicate", i, res, i+1)
		}
	}
	if got := mustDirectoryLastSeq(t, l); got != 3 {
		t.Errorf("DirectoryLastSeq = %d, want 3", got)
	}

	f := startFollow(t, l, 1)
	got := f.next(t, 3, 5*time.Second)
	for i, e := range got {
		want := Entry{Seq: uint64(i + 1), Subject: "herald-rooms." + in[i].key, Key: in[i].key, Partition: -1, Data: []byte(in[i].data)}
		if e.Seq != want.Seq || e.Subject != want.Subject || e.Key != want.Key || e.Rest != "" || e.Partition != -1 || string(e.Data) != in[i].data {
			t.Errorf("entry %d = %+v, want %+v", i, e, want)
		}
		if time.Since(e.Time) > time.Minute || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("entry %d time %v is not the store time", i, e.Time)
		}
	}

	// A live add after FollowDirectory caught up.
	mustAdd(t, l, "d", "live")
	live := f.next(t, 1, 5*time.Second)[0]
	if live.Seq != 4 || live.Key != "d" || string(live.Data) != "live" {
		t.Errorf("live entry = %+v, want seq 4 key d data live", live)
	}
	f.quiet(t, 100*time.Millisecond)

	start := time.Now()
	if err := f.stop(t, 2*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("FollowDirectory after cancel = %v, want context.Canceled", err)
	}
	t.Logf("FollowDirectory returned %s after cancel", time.Since(start))
}

func TestFollowDirectoryFromSeq(t *testing.T) {
	l := openEmbedded(t, Options{})
	for i := range 5 {
		mustAdd(t, l, fmt.Sprint("k", i), fmt.Sprint(i))
	}
	tests := []struct {
		from uint64
		want []uint64
	}{
		{0, []uint64{1, 2, 3, 4, 5}},
		{1, []uint64{1, 2, 3, 4, 5}},
		{3, []uint64{3, 4, 5}},
		{5, []uint64{5}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("from", tt.from), func(t *testing.T) {
			f := startFollow(t, l, tt.from)
			if got := seqs(f.next(t, len(tt.want), 5*time.Second)); !slices.Equal(got, tt.want) {
				t.Errorf("seqs = %v, want %v", got, tt.want)
			}
			f.quiet(t, 50*time.Millisecond)
		})
	}

	t.Run("beyond end waits for new entries", func(t *testing.T) {
		f := startFollow(t, l, 7)
		mustAdd(t, l, "k5", "6")
		f.quiet(t, 100*time.Millisecond)
		mustAdd(t, l, "k6", "7")
		if got := seqs(f.next(t, 1, 5*time.Second)); !slices.Equal(got, []uint64{7}) {
			t.Errorf("seqs = %v, want [7]", got)
		}
	})
}

func TestFollowDirectoryHandlerError(t *testing.T) {
	l := openEmbedded(t, Options{})
	for _, k := range []string{"a", "b", "c"} {
		mustAdd(t, l, k, "x")
	}
	var seen []uint64
	err := l.FollowDirectory(testCtx(t, 5*time.Second), 1, func(e Entry) error {
		seen = append(seen, e.Seq)
		if e.Seq == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || !strings.Contains(err.Error(), "seq 2") {
		t.Errorf("FollowDirectory = %v, want errStop wrapped with seq 2", err)
	}
	if !slices.Equal(seen, []uint64{1, 2}) {
		t.Errorf("handler saw %v, want [1 2]", seen)
	}

	// Already-cancelled context: returns at once.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.FollowDirectory(ctx, 1, func(Entry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("FollowDirectory with cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestRestartKeepsLog(t *testing.T) {
	dir := t.TempDir()
	opts := Options{DataDir: dir, Partitions: 3, Logger: testLogger(), ConnectTimeout: 5 * time.Second}

	first, err := Open(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Open #1: %v", err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := first.AddToDirectory(testCtx(t, 5*time.Second), k, []byte(k)); err != nil {
			t.Fatalf("AddToDirectory: %v", err)
		}
	}
	var last uint64
	for i := range 3 {
		res, err := first.AppendKeyed(testCtx(t, 5*time.Second), "a", "posts", []byte(fmt.Sprint(i)), AppendOptions{ExpectLast: last})
		if err != nil {
			t.Fatalf("AppendKeyed: %v", err)
		}
		last = res.Seq
	}
	epoch := first.Epoch()
	if epoch.IsZero() {
		t.Fatal("Epoch() is zero")
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close #1: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	second := openLog(t, opts)
	if got := mustDirectoryLastSeq(t, second); got != 3 {
		t.Errorf("DirectoryLastSeq after restart = %d, want 3", got)
	}
	if !second.Epoch().Equal(epoch) {
		t.Errorf("Epoch after restart = %v, want %v", second.Epoch(), epoch)
	}
	got, gotLast := mustReadKey(t, second, "a", 0)
	if d := datas(got); !slices.Equal(d, []string{"0", "1", "2"}) || gotLast != last {
		t.Errorf("ReadKey after restart = %v (last %d), want [0 1 2] (last %d)", d, gotLast, last)
	}
	f := startFollow(t, second, 1)
	if k := f.next(t, 3, 5*time.Second); k[2].Key != "c" {
		t.Errorf("replayed directory = %+v, want c third", k)
	}
}

func TestStreamUpdate(t *testing.T) {
	url := startNATS(t, true)
	js := rawJS(t, url)
	tamper := func(t *testing.T, name string, change func(*jetstream.StreamConfig)) {
		t.Helper()
		s, err := js.Stream(testCtx(t, 5*time.Second), name)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		change(&cfg)
		if _, err := js.UpdateStream(testCtx(t, 5*time.Second), cfg); err != nil {
			t.Fatalf("tamper with %s: %v", name, err)
		}
	}
	steps := []struct {
		name    string
		before  func(t *testing.T)
		opts    Options
		wantMax int64
	}{
		{name: "create", opts: Options{Partitions: 2}},
		{name: "same options again", opts: Options{Partitions: 2}},
		{name: "raise per-subject limit", opts: Options{Partitions: 2, MaxMsgsPerSubject: 5}, wantMax: 5},
		{name: "same limit again", opts: Options{Partitions: 2, MaxMsgsPerSubject: 5}, wantMax: 5},
		{name: "lower limit and duplicate window", opts: Options{Partitions: 2, MaxMsgsPerSubject: 3, DuplicateWindow: time.Minute}, wantMax: 3},
		{
			name: "republish and metadata restored",
			before: func(t *testing.T) {
				tamper(t, "HERALD_P1", func(c *jetstream.StreamConfig) {
					c.RePublish = nil
					c.Metadata = map[string]string{"operator": "kept"}
					c.MaxMsgsPerSubject = 9
				})
				tamper(t, "HERALD_ROOMS", func(c *jetstream.StreamConfig) { c.MaxMsgsPerSubject = 1 })
			},
			opts:    Options{Partitions: 2, MaxMsgsPerSubject: 3, DuplicateWindow: time.Minute},
			wantMax: 3,
		},
		{name: "back to unlimited", opts: Options{Partitions: 2}},
	}
	var epoch time.Time
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if st.before != nil {
				st.before(t)
			}
			opts := st.opts
			opts.URLs = []string{url}
			opts.Logger = testLogger()
			l, err := Open(testCtx(t, 10*time.Second), opts)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer func() {
				if err := l.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}()
			if got := l.MaxMsgsPerSubject(); got != st.wantMax {
				t.Errorf("MaxMsgsPerSubject() = %d, want %d", got, st.wantMax)
			}
			if i == 0 {
				epoch = l.Epoch()
			} else if !l.Epoch().Equal(epoch) {
				t.Errorf("Epoch changed on update: %v, want %v", l.Epoch(), epoch)
			}
			checkLayoutStreams(t, js, opts)
			if got := l.dir.CachedInfo().Config.Metadata["operator"]; got != "" {
				t.Errorf("directory metadata operator = %q", got)
			}
			if i == 5 {
				if got := l.parts[1].CachedInfo().Config.Metadata["operator"]; got != "kept" {
					t.Errorf("partition metadata set by the operator = %q, want kept", got)
				}
			}
		})
	}
}

// checkLayoutStreams checks the configuration of every stream of the layout
// opts asks for.
func checkLayoutStreams(t *testing.T, js jetstream.JetStream, opts Options) {
	t.Helper()
	opts, err := opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	maxPer := opts.MaxMsgsPerSubject
	if maxPer == 0 {
		maxPer = -1
	}
	type want struct {
		name      string
		subjects  []string
		maxPer    int64
		republish *jetstream.RePublish
		meta      map[string]string
	}
	wants := []want{{
		name: "HERALD_ROOMS", subjects: []string{"herald-rooms.>"}, maxPer: -1,
		meta: map[string]string{"herald.layout": "2", "herald.partitions": fmt.Sprint(opts.Partitions)},
	}}
	for k := range opts.Partitions {
		wants = append(wants, want{
			name: fmt.Sprintf("HERALD_P%d", k), subjects: []string{fmt.Sprintf("herald-p%d.>", k)}, maxPer: maxPer,
			republish: &jetstream.RePublish{Source: fmt.Sprintf("herald-p%d.>", k), Destination: fmt.Sprintf("herald-live.p%d.>", k)},
			meta:      map[string]string{"herald.layout": "2", "herald.partition": fmt.Sprintf("%d/%d", k, opts.Partitions)},
		})
	}
	for _, w := range wants {
		s, err := js.Stream(testCtx(t, 5*time.Second), w.name)
		if err != nil {
			t.Errorf("stream %s: %v", w.name, err)
			continue
		}
		c := s.CachedInfo().Config
		if !slices.Equal(c.Subjects, w.subjects) || c.MaxMsgsPerSubject != w.maxPer ||
			c.Storage != jetstream.FileStorage || c.Retention != jetstream.LimitsPolicy || c.Discard != jetstream.DiscardOld ||
			c.Duplicates != opts.DuplicateWindow || max(c.Replicas, 1) != opts.Replicas {
			t.Errorf("stream %s config = subjects %v max/subject %d storage %v retention %v discard %v duplicates %s replicas %d; want subjects %v max/subject %d",
				w.name, c.Subjects, c.MaxMsgsPerSubject, c.Storage, c.Retention, c.Discard, c.Duplicates, c.Replicas, w.subjects, w.maxPer)
		}
		if fmtRePublish(c.RePublish) != fmtRePublish(w.republish) {
			t.Errorf("stream %s republish = %s, want %s", w.name, fmtRePublish(c.RePublish), fmtRePublish(w.republish))
		}
		for k, v := range w.meta {
			if c.Metadata[k] != v {
				t.Errorf("stream %s metadata %s = %q, want %q", w.name, k, c.Metadata[k], v)
			}
		}
	}
}

func TestListenAndExternalClient(t *testing.T) {
	tests := []struct {
		name       string
		listenAddr func(t *testing.T) string
	}{
		{"free port", freeAddr},
		{"port 0", func(*testing.T) string { return "127.0.0.1:0" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.listenAddr(t)
			embedded := openEmbedded(t, Options{ListenAddr: addr, Partitions: 2})
			url := embedded.ClientURL()
			if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
				t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:<port>", url)
			}
			if !strings.HasSuffix(addr, ":0") && url != "nats://"+addr {
				t.Errorf("ClientURL() = %q, want nats://%s", url, addr)
			}

			f := startFollow(t, embedded, 1)
			mustAdd(t, embedded, "local", "from embedded")

			external := openLog(t, Options{URLs: []string{url}, Partitions: 2, Name: "herald-test-external"})
			if external.ClientURL() != "" {
				t.Errorf("external ClientURL() = %q, want empty", external.ClientURL())
			}
			if !external.Epoch().Equal(embedded.Epoch()) {
				t.Errorf("external Epoch %v != embedded Epoch %v", external.Epoch(), embedded.Epoch())
			}
			res := mustAdd(t, external, "remote", "from external")
			if res.Seq != 2 {
				t.Errorf("external add seq = %d, want 2", res.Seq)
			}
			got := f.next(t, 2, 5*time.Second)
			if got[1].Key != "remote" || string(got[1].Data) != "from external" {
				t.Errorf("embedded follower got %+v, want the external add second", got[1])
			}
			if err := external.Health(testCtx(t, 2*time.Second)); err != nil {
				t.Errorf("external Health = %v", err)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	embedded, err := Open(testCtx(t, 10*time.Second), Options{
		DataDir: t.TempDir(), ListenAddr: freeAddr(t), Logger: testLogger(),
	})
	if err != nil {
		t.Fatalf("Open embedded: %v", err)
	}
	t.Cleanup(func() { _ = embedded.Close() })
	external := openLog(t, Options{URLs: []string{embedded.ClientURL()}})

	for name, l := range map[string]*Log{"embedded": embedded, "external": external} {
		if !l.Connected() {
			t.Errorf("%s: Connected() = false", name)
		}
		if err := l.Health(testCtx(t, 2*time.Second)); err != nil {
			t.Errorf("%s: Health = %v, want nil", name, err)
		}
	}

	// Take the server away from under the external log.
	if err := embedded.Close(); err != nil {
		t.Fatalf("Close embedded: %v", err)
	}
	waitFor(t, 5*time.Second, "external log to notice the disconnect", func() bool { return !external.Connected() })

	start := time.Now()
	err = external.Health(testCtx(t, time.Second))
	if err == nil || !strings.Contains(err.Error(), "NATS disconnected") || !errors.Is(err, ErrUnreachable) {
		t.Errorf("Health while disconnected = %v, want NATS disconnected / ErrUnreachable", err)
	}
	writes := []struct {
		name  string
		write func() error
		text  string
	}{
		{"AppendKeyed", func() error {
			_, err := external.AppendKeyed(testCtx(t, 5*time.Second), "r", "posts", []byte("x"), AppendOptions{})
			return err
		}, `append to key "r" (subject "herald-p0.r.posts")`},
		{"AddToDirectory", func() error {
			_, err := external.AddToDirectory(testCtx(t, 5*time.Second), "r", []byte("x"))
			return err
		}, `add key "r" to the directory`},
		{"ReadKey", func() error {
			_, err := external.ReadKey(testCtx(t, 5*time.Second), "r", 0, func(Entry) error { return nil })
			return err
		}, `read herald-p0.r.> from stream "HERALD_P0"`},
	}
	for _, w := range writes {
		if err := w.write(); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), w.text) {
			t.Errorf("%s while disconnected = %v, want ErrUnreachable and %q", w.name, err, w.text)
		}
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Health and writes while disconnected took %s, want fast failure", d)
	}
}

func TestHealthStreamGone(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	if err := rawJS(t, url).DeleteStream(testCtx(t, 5*time.Second), "HERALD_ROOMS"); err != nil {
		t.Fatal(err)
	}
	err := l.Health(testCtx(t, 2*time.Second))
	if err == nil || !strings.Contains(err.Error(), "stream HERALD_ROOMS unreachable") {
		t.Errorf("Health after stream deletion = %v, want stream HERALD_ROOMS unreachable", err)
	}
}

// TestHealthStreamRecreated: a directory stream deleted and created again
// under a running replica (sequences started over) makes Health fail, so
// that /readyz takes the replica out of service until it is restarted.
func TestHealthStreamRecreated(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	js := rawJS(t, url)
	cfg := l.dir.CachedInfo().Config
	if err := js.DeleteStream(testCtx(t, 5*time.Second), cfg.Name); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a creation time the server tells apart
	if _, err := js.CreateStream(testCtx(t, 5*time.Second), cfg); err != nil {
		t.Fatal(err)
	}
	err := l.Health(testCtx(t, 2*time.Second))
	if err == nil || !strings.Contains(err.Error(), "stream HERALD_ROOMS was deleted and created again") {
		t.Errorf("Health after the directory was re-created = %v, want it to say so", err)
	}
}

// TestHealthPartitionRecreated: a partition stream deleted (and created
// again) under a running replica makes Health fail, although Health asks
// one partition per call: at once when the deletion advisory came, within
// Partitions calls when it was missed; and Health keeps failing after.
func TestHealthPartitionRecreated(t *testing.T) {
	tests := []struct {
		name       string
		partitions int
		k          int  // the partition deleted
		recreate   bool // created again after the deletion
		advisory   bool // the deletion advisory reaches the log
		want       string
	}{
		{"one partition", 1, 0, true, true, "stream HERALD_P0 was deleted and created again"},
		{"advisory", 8, 5, true, true, "stream HERALD_P5 was deleted and created again"},
		{"advisory missed", 8, 5, true, false, "stream HERALD_P5 was deleted and created again"},
		{"deleted only", 8, 3, false, true, "stream HERALD_P3 was deleted"},
		{"deleted only, advisory missed", 8, 3, false, false, "stream HERALD_P3 was deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATS(t, true)
			l := openLog(t, Options{URLs: []string{url}, Partitions: tt.partitions})
			for range 2 * tt.partitions {
				if err := l.Health(testCtx(t, 2*time.Second)); err != nil {
					t.Fatalf("Health before = %v", err)
				}
			}
			if !tt.advisory {
				// As if this replica had been disconnected when it came.
				l.partDeleted = make(chan *nats.Msg)
			}
			js := rawJS(t, url)
			cfg := l.parts[tt.k].CachedInfo().Config
			if err := js.DeleteStream(testCtx(t, 5*time.Second), cfg.Name); err != nil {
				t.Fatal(err)
			}
			if tt.recreate {
				time.Sleep(10 * time.Millisecond) // a creation time the server tells apart
				if _, err := js.CreateStream(testCtx(t, 5*time.Second), cfg); err != nil {
					t.Fatal(err)
				}
			}
			health := func() error { return l.Health(testCtx(t, 2*time.Second)) }
			if tt.advisory {
				// Once the advisory is in, the next call asks the partition.
				waitFor(t, 5*time.Second, "the deletion advisory", func() bool { return len(l.partDeleted) > 0 })
				if err := health(); err == nil {
					t.Fatal("Health after the advisory = nil")
				}
			} else {
				calls := 0
				for health() == nil {
					if calls++; calls >= tt.partitions {
						t.Fatalf("Health still nil after %d calls", calls)
					}
				}
			}
			for i := range 2 * tt.partitions {
				if err := health(); err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Health call %d after the failure = %v, want %q", i, err, tt.want)
				}
			}
		})
	}
}

func TestFollowSurvivesServerRestart(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	opts := Options{DataDir: dir, ListenAddr: addr, Logger: testLogger()}
	srv1, err := Open(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Open embedded: %v", err)
	}
	t.Cleanup(func() { _ = srv1.Close() })
	external := openLog(t, Options{URLs: []string{srv1.ClientURL()}})

	f := startFollow(t, external, 1)
	mustAdd(t, srv1, "k1", "1")
	mustAdd(t, srv1, "k2", "2")
	if got := seqs(f.next(t, 2, 5*time.Second)); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("before restart seqs = %v, want [1 2]", got)
	}

	if err := srv1.Close(); err != nil {
		t.Fatalf("Close embedded: %v", err)
	}
	waitFor(t, 5*time.Second, "disconnect", func() bool { return !external.Connected() })
	srv2 := openLog(t, opts)
	waitFor(t, 10*time.Second, "reconnect", external.Connected)

	mustAdd(t, srv2, "k3", "3")
	mustAdd(t, external, "k4", "4")
	if got := seqs(f.next(t, 2, 15*time.Second)); !slices.Equal(got, []uint64{3, 4}) {
		t.Fatalf("after restart seqs = %v, want [3 4]", got)
	}
	f.quiet(t, 200*time.Millisecond)
}

func TestFollowEndsOnClose(t *testing.T) {
	l, err := Open(testCtx(t, 10*time.Second), Options{DataDir: t.TempDir(), Logger: testLogger()})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mustAdd(t, l, "k", "1")
	f := startFollow(t, l, 1)
	f.next(t, 1, 5*time.Second)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-f.done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("FollowDirectory after Close = %v, want a closed-connection error", err)
		}
		f.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("FollowDirectory did not return after Close")
	}
	if l.Connected() {
		t.Error("Connected() after Close = true")
	}
	if err := l.Health(testCtx(t, time.Second)); err == nil {
		t.Error("Health after Close = nil")
	}
}

func TestOpenErrors(t *testing.T) {
	closedURL := "nats://" + freeAddr(t)

	tests := []struct {
		name     string
		opts     func(t *testing.T) Options
		wantIs   error
		wantText []string
	}{
		{
			name:     "unreachable",
			opts:     func(*testing.T) Options { return Options{URLs: []string{closedURL}, ConnectTimeout: 3 * time.Second} },
			wantIs:   ErrUnreachable,
			wantText: []string{"connect to NATS at " + closedURL},
		},
		{
			name: "server never answers",
			opts: func(t *testing.T) Options {
				return Options{URLs: []string{silentServer(t)}, ConnectTimeout: time.Second}
			},
			wantIs:   ErrUnreachable,
			wantText: []string{"connect to NATS at nats://127.0.0.1:"},
		},
		{
			name: "password is not shown",
			opts: func(*testing.T) Options {
				return Options{URLs: []string{"nats://u:secret@" + closedURL[len("nats://"):]}}
			},
			wantIs:   ErrUnreachable,
			wantText: []string{"connect to NATS at nats://u:xxxxx@"},
		},
		{
			name: "token is not shown",
			opts: func(*testing.T) Options {
				return Options{URLs: []string{"nats://secrettoken@" + closedURL[len("nats://"):]}}
			},
			wantIs:   ErrUnreachable,
			wantText: []string{"connect to NATS at nats://xxxxx@"},
		},
		{
			name:     "jetstream disabled",
			opts:     func(t *testing.T) Options { return Options{URLs: []string{startNATS(t, false)}} },
			wantIs:   ErrJetStreamDisabled,
			wantText: []string{"JetStream is not enabled on the NATS server at nats://127.0.0.1:", "start nats-server with -js"},
		},
		{
			name: "directory with memory storage",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "HERALD_ROOMS", Subjects: []string{"herald-rooms.>"}, Storage: jetstream.MemoryStorage,
					Metadata: map[string]string{"herald.partitions": "1"}})
				return Options{URLs: []string{url}}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD_ROOMS" exists with a conflicting configuration: storage is memory, herald needs file`},
		},
		{
			name: "directory that discards entries",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "HERALD_ROOMS", Subjects: []string{"herald-rooms.>"}, MaxAge: time.Hour, MaxMsgs: 1000,
					Metadata: map[string]string{"herald.partitions": "1"}})
				return Options{URLs: []string{url}}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD_ROOMS" exists with a conflicting configuration: max_age 1h0m0s, max_msgs 1000; the directory must keep every entry`},
		},
		{
			name: "partition with work-queue retention",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "HERALD_P1", Subjects: []string{"herald-p1.>"}, Retention: jetstream.WorkQueuePolicy})
				return Options{URLs: []string{url}, Partitions: 2}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD_P1" exists with a conflicting configuration: retention is WorkQueue`},
		},
		{
			name: "update refused by the server",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "HERALD_P0", Subjects: []string{"herald-p0.>"}, MaxAge: time.Minute, Duplicates: 30 * time.Second})
				return Options{URLs: []string{url}, DuplicateWindow: 5 * time.Minute}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD_P0" exists with a conflicting configuration: `, "duplicate_window 30s -> 5m0s"},
		},
		{
			name: "directory subjects taken by another stream",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"herald-rooms.>"}})
				return Options{URLs: []string{url}}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD_ROOMS" cannot be created`, `overlap those of stream "OTHER"`},
		},
		{
			name: "partition subjects taken by another stream",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"herald-p2.room.>"}})
				return Options{URLs: []string{url}, Partitions: 3}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD_P2" cannot be created`, `overlap those of stream "OTHER"`},
		},
		{
			// The subjects do not follow Options.Stream: a second log needs
			// an account of its own, and the error must not say otherwise.
			name: "a second log under another stream name",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "CHAT_ROOMS", Subjects: []string{"herald-rooms.>"}})
				return Options{URLs: []string{url}, Stream: "ARTICLES"}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "ARTICLES_ROOMS" cannot be created`, `overlap those of stream "CHAT_ROOMS"`, "a NATS account of its own"},
		},
		{
			name:     "too many partitions",
			opts:     func(*testing.T) Options { return Options{URLs: []string{closedURL}, Partitions: 257} },
			wantText: []string{"invalid Options.Partitions 257: must be between 1 and 256"},
		},
		{
			name:     "negative connect timeout",
			opts:     func(*testing.T) Options { return Options{URLs: []string{closedURL}, ConnectTimeout: -time.Second} },
			wantText: []string{"invalid Options.ConnectTimeout -1s: must be > 0"},
		},
		{
			name:     "negative setup timeout",
			opts:     func(*testing.T) Options { return Options{URLs: []string{closedURL}, SetupTimeout: -time.Second} },
			wantText: []string{"invalid Options.SetupTimeout -1s: must be > 0"},
		},
		{
			name:     "negative partitions",
			opts:     func(*testing.T) Options { return Options{URLs: []string{closedURL}, Partitions: -1} },
			wantText: []string{"invalid Options.Partitions -1"},
		},
		{
			name: "data dir not writable",
			opts: func(t *testing.T) Options {
				file := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return Options{DataDir: filepath.Join(file, "data")}
			},
			wantText: []string{"start embedded NATS server: data dir", "is not writable"},
		},
		{
			name: "data dir in use",
			opts: func(t *testing.T) Options {
				dir := t.TempDir()
				openLog(t, Options{DataDir: dir})
				return Options{DataDir: dir}
			},
			wantIs:   ErrDataDirInUse,
			wantText: []string{"start embedded NATS server: data dir", "in use by another embedded NATS server"},
		},
		{
			name:     "embedded without data dir",
			opts:     func(*testing.T) Options { return Options{} },
			wantText: []string{"DataDir is required"},
		},
		{
			name: "listen address in use",
			opts: func(t *testing.T) Options {
				taken := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0"})
				return Options{DataDir: t.TempDir(), ListenAddr: strings.TrimPrefix(taken.ClientURL(), "nats://")}
			},
			wantText: []string{"start embedded NATS server (data dir", "listen 127.0.0.1:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts(t)
			opts.Logger = testLogger()
			if opts.ConnectTimeout == 0 {
				opts.ConnectTimeout = 5 * time.Second
			}
			start := time.Now()
			l, err := Open(t.Context(), opts)
			elapsed := time.Since(start)
			if err == nil {
				_ = l.Close()
				t.Fatal("Open succeeded, want error")
			}
			t.Logf("error after %s: %v", elapsed.Round(time.Millisecond), err)
			if elapsed > max(opts.ConnectTimeout, 0)+time.Second {
				t.Errorf("Open took %s, want within ConnectTimeout %s", elapsed, opts.ConnectTimeout)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantIs)
			}
			for _, s := range []error{ErrUnreachable, ErrJetStreamDisabled, ErrStreamConflict, ErrLayoutConflict, ErrDataDirInUse} {
				if s != tt.wantIs && errors.Is(err, s) {
					t.Errorf("error also matches %v", s)
				}
			}
			for _, want := range tt.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not single-line: %q", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows the password: %q", err)
			}
		})
	}
}

// silentServer accepts TCP connections on 127.0.0.1 and never says a word.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "nats://" + ln.Addr().String()
}

// TestDataDirLockIsReleased: the data dir's lock goes with the embedded
// server, whether Open failed after taking it (here, on a listen address
// in use) or the log was closed; the directory can then be opened again.
func TestDataDirLockIsReleased(t *testing.T) {
	dir := t.TempDir()
	taken := openEmbedded(t, Options{ListenAddr: "127.0.0.1:0"})
	if l, err := Open(t.Context(), Options{DataDir: dir, ListenAddr: strings.TrimPrefix(taken.ClientURL(), "nats://"),
		Logger: testLogger(), ConnectTimeout: 5 * time.Second}); err == nil {
		_ = l.Close()
		t.Fatal("Open on a listen address in use succeeded")
	}
	l, err := Open(t.Context(), Options{DataDir: dir, Logger: testLogger(), ConnectTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Open after a failed one: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	openLog(t, Options{DataDir: dir})
}
