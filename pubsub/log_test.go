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

func TestAppendAndFollow(t *testing.T) {
	l := openEmbedded(t, Options{})
	if l.ClientURL() != "" {
		t.Errorf("ClientURL without ListenAddr = %q, want empty", l.ClientURL())
	}
	if got := mustLastSeq(t, l); got != 0 {
		t.Fatalf("LastSeq of new stream = %d, want 0", got)
	}
	in := []struct{ subject, data string }{
		{"herald.a", "one"},
		{"herald.b", "two"},
		{"herald.a", "three"},
	}
	for i, e := range in {
		res := mustAppend(t, l, e.subject, e.data, "")
		if res.Seq != uint64(i+1) || res.Duplicate {
			t.Fatalf("Append #%d = %+v, want seq %d, not duplicate", i, res, i+1)
		}
	}

	f := startFollow(t, l, 1)
	got := f.next(t, 3, 5*time.Second)
	for i, e := range got {
		if e.Seq != uint64(i+1) || e.Subject != in[i].subject || string(e.Data) != in[i].data {
			t.Errorf("entry %d = {%d %q %q}, want {%d %q %q}", i, e.Seq, e.Subject, e.Data, i+1, in[i].subject, in[i].data)
		}
		if time.Since(e.Time) > time.Minute || e.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("entry %d time %v is not the store time", i, e.Time)
		}
	}

	// A live append after Follow caught up.
	mustAppend(t, l, "herald.c", "live", "")
	live := f.next(t, 1, 5*time.Second)[0]
	if live.Seq != 4 || live.Subject != "herald.c" || string(live.Data) != "live" {
		t.Errorf("live entry = {%d %q %q}, want {4 herald.c live}", live.Seq, live.Subject, live.Data)
	}
	f.quiet(t, 100*time.Millisecond)

	start := time.Now()
	if err := f.stop(t, 2*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow after cancel = %v, want context.Canceled", err)
	}
	t.Logf("Follow returned %s after cancel", time.Since(start))
}

func TestFollowFromSeq(t *testing.T) {
	l := openEmbedded(t, Options{})
	for i := range 5 {
		mustAppend(t, l, "herald.x", fmt.Sprint(i), "")
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
		mustAppend(t, l, "herald.x", "6", "")
		f.quiet(t, 100*time.Millisecond)
		mustAppend(t, l, "herald.x", "7", "")
		if got := seqs(f.next(t, 1, 5*time.Second)); !slices.Equal(got, []uint64{7}) {
			t.Errorf("seqs = %v, want [7]", got)
		}
	})
}

func TestFollowHandlerError(t *testing.T) {
	l := openEmbedded(t, Options{})
	for range 3 {
		mustAppend(t, l, "herald.x", "x", "")
	}
	var seen []uint64
	err := l.Follow(testCtx(t, 5*time.Second), 1, func(e Entry) error {
		seen = append(seen, e.Seq)
		if e.Seq == 2 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || !strings.Contains(err.Error(), "seq 2") {
		t.Errorf("Follow = %v, want errStop wrapped with seq 2", err)
	}
	if !slices.Equal(seen, []uint64{1, 2}) {
		t.Errorf("handler saw %v, want [1 2]", seen)
	}

	// Already-cancelled context: returns at once.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Follow(ctx, 1, func(Entry) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Follow with cancelled ctx = %v, want context.Canceled", err)
	}
}

func TestDeduplication(t *testing.T) {
	l := openEmbedded(t, Options{})
	first := mustAppend(t, l, "herald.a", "one", "id-1")
	if first.Duplicate {
		t.Fatalf("first append reported duplicate: %+v", first)
	}
	tests := []struct {
		name      string
		subject   string
		dedupID   string
		wantDup   bool
		wantSeq   uint64
		wantLastq uint64
	}{
		{"same id is duplicate", "herald.a", "id-1", true, first.Seq, 1},
		{"same id other subject is duplicate", "herald.b", "id-1", true, first.Seq, 1},
		{"new id is stored", "herald.a", "id-2", false, 2, 2},
		{"empty id is stored", "herald.a", "", false, 3, 3},
		{"empty id again is stored again", "herald.a", "", false, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustAppend(t, l, tt.subject, "again", tt.dedupID)
			if res.Duplicate != tt.wantDup || res.Seq != tt.wantSeq {
				t.Errorf("Append = %+v, want {Seq:%d Duplicate:%v}", res, tt.wantSeq, tt.wantDup)
			}
			if got := mustLastSeq(t, l); got != tt.wantLastq {
				t.Errorf("LastSeq = %d, want %d", got, tt.wantLastq)
			}
		})
	}
}

func TestMaxMsgsPerSubject(t *testing.T) {
	l := openEmbedded(t, Options{MaxMsgsPerSubject: 2})
	if got := l.MaxMsgsPerSubject(); got != 2 {
		t.Fatalf("MaxMsgsPerSubject() = %d, want 2", got)
	}
	mustAppend(t, l, "herald.a", "a1", "")
	mustAppend(t, l, "herald.a", "a2", "")
	mustAppend(t, l, "herald.a", "a3", "")
	mustAppend(t, l, "herald.b", "b1", "")

	f := startFollow(t, l, 0)
	got := f.next(t, 3, 5*time.Second)
	f.quiet(t, 100*time.Millisecond)
	if s := seqs(got); !slices.Equal(s, []uint64{2, 3, 4}) {
		t.Fatalf("retained seqs = %v, want [2 3 4]", s)
	}
	var data []string
	for _, e := range got {
		data = append(data, string(e.Data))
	}
	if !slices.Equal(data, []string{"a2", "a3", "b1"}) {
		t.Errorf("retained data = %v, want [a2 a3 b1]", data)
	}
	if got[0].Seq <= 1 {
		t.Errorf("first retained seq = %d, want > 1", got[0].Seq)
	}
}

func TestRestartKeepsLog(t *testing.T) {
	dir := t.TempDir()
	opts := Options{DataDir: dir, Logger: testLogger(), ConnectTimeout: 5 * time.Second}

	first, err := Open(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Open #1: %v", err)
	}
	for i := range 3 {
		if _, err := first.Append(testCtx(t, 5*time.Second), "herald.r", []byte(fmt.Sprint(i)), ""); err != nil {
			t.Fatalf("Append: %v", err)
		}
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
	if got := mustLastSeq(t, second); got != 3 {
		t.Errorf("LastSeq after restart = %d, want 3", got)
	}
	if !second.Epoch().Equal(epoch) {
		t.Errorf("Epoch after restart = %v, want %v", second.Epoch(), epoch)
	}
	f := startFollow(t, second, 1)
	got := f.next(t, 3, 5*time.Second)
	for i, e := range got {
		if e.Seq != uint64(i+1) || string(e.Data) != fmt.Sprint(i) {
			t.Errorf("replayed entry %d = {%d %q}, want {%d %q}", i, e.Seq, e.Data, i+1, fmt.Sprint(i))
		}
	}
}

func TestStreamUpdate(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		name     string
		opts     Options
		wantMax  int64
		appendTo string
	}{
		{"create", Options{}, 0, "herald.a"},
		{"same options again", Options{}, 0, "herald.a"},
		{"raise per-subject limit", Options{MaxMsgsPerSubject: 5}, 5, "herald.a"},
		{"same limit again", Options{MaxMsgsPerSubject: 5}, 5, "herald.a"},
		{"lower limit and add subject", Options{MaxMsgsPerSubject: 3, Subjects: []string{"herald.>", "extra.>"}, DuplicateWindow: time.Minute}, 3, "extra.x"},
		{"back to unlimited", Options{}, 0, "herald.a"},
	}
	var epoch time.Time
	for i, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			opts := st.opts
			opts.DataDir = dir
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
			mustAppend(t, l, st.appendTo, st.name, "")
		})
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
			embedded := openEmbedded(t, Options{ListenAddr: addr})
			url := embedded.ClientURL()
			if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") {
				t.Fatalf("ClientURL() = %q, want nats://127.0.0.1:<port>", url)
			}
			if !strings.HasSuffix(addr, ":0") && url != "nats://"+addr {
				t.Errorf("ClientURL() = %q, want nats://%s", url, addr)
			}

			f := startFollow(t, embedded, 1)
			mustAppend(t, embedded, "herald.local", "from embedded", "")

			external := openLog(t, Options{URLs: []string{url}, Name: "herald-test-external"})
			if external.ClientURL() != "" {
				t.Errorf("external ClientURL() = %q, want empty", external.ClientURL())
			}
			if !external.Epoch().Equal(embedded.Epoch()) {
				t.Errorf("external Epoch %v != embedded Epoch %v", external.Epoch(), embedded.Epoch())
			}
			res := mustAppend(t, external, "herald.remote", "from external", "")
			if res.Seq != 2 {
				t.Errorf("external append seq = %d, want 2", res.Seq)
			}
			got := f.next(t, 2, 5*time.Second)
			if got[1].Subject != "herald.remote" || string(got[1].Data) != "from external" {
				t.Errorf("embedded follower got %+v, want the external append second", got[1])
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
	_, err = external.Append(testCtx(t, 5*time.Second), "herald.x", []byte("x"), "")
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), `append to subject "herald.x"`) {
		t.Errorf("Append while disconnected = %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Health+Append while disconnected took %s, want fast failure", d)
	}
}

func TestHealthStreamGone(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(testCtx(t, 5*time.Second), "HERALD"); err != nil {
		t.Fatal(err)
	}
	err = l.Health(testCtx(t, 2*time.Second))
	if err == nil || !strings.Contains(err.Error(), "stream HERALD unreachable") {
		t.Errorf("Health after stream deletion = %v, want stream HERALD unreachable", err)
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
	mustAppend(t, srv1, "herald.x", "1", "")
	mustAppend(t, srv1, "herald.x", "2", "")
	if got := seqs(f.next(t, 2, 5*time.Second)); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("before restart seqs = %v, want [1 2]", got)
	}

	if err := srv1.Close(); err != nil {
		t.Fatalf("Close embedded: %v", err)
	}
	waitFor(t, 5*time.Second, "disconnect", func() bool { return !external.Connected() })
	srv2 := openLog(t, opts)
	waitFor(t, 10*time.Second, "reconnect", external.Connected)

	mustAppend(t, srv2, "herald.x", "3", "")
	mustAppend(t, external, "herald.x", "4", "")
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
	mustAppend(t, l, "herald.x", "1", "")
	f := startFollow(t, l, 1)
	f.next(t, 1, 5*time.Second)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-f.done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Errorf("Follow after Close = %v, want a closed-connection error", err)
		}
		f.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return after Close")
	}
	if l.Connected() {
		t.Error("Connected() after Close = true")
	}
	if err := l.Health(testCtx(t, time.Second)); err == nil {
		t.Error("Health after Close = nil")
	}
}

func TestAppendOutsideStream(t *testing.T) {
	l := openEmbedded(t, Options{})
	_, err := l.Append(testCtx(t, 5*time.Second), "elsewhere.x", []byte("x"), "")
	if err == nil || !strings.Contains(err.Error(), `append to subject "elsewhere.x"`) {
		t.Errorf("Append outside the stream's subjects = %v, want wrapped error", err)
	}
}

func TestAppendCapturedByAnotherStream(t *testing.T) {
	url := startNATS(t, true)
	l := openLog(t, Options{URLs: []string{url}})
	createStream(t, url, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
	_, err := l.Append(testCtx(t, 5*time.Second), "other.x", []byte("x"), "")
	want := `append to subject "other.x": stored by stream "OTHER", not "HERALD"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Append to another stream's subject = %v, want %q", err, want)
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
			name:     "jetstream disabled",
			opts:     func(t *testing.T) Options { return Options{URLs: []string{startNATS(t, false)}} },
			wantIs:   ErrJetStreamDisabled,
			wantText: []string{"JetStream is not enabled on the NATS server at nats://127.0.0.1:", "start nats-server with -js"},
		},
		{
			name: "existing stream with memory storage",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, Storage: jetstream.MemoryStorage})
				return Options{URLs: []string{url}}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD" exists with a conflicting configuration: storage is memory, herald needs file`},
		},
		{
			name: "existing stream with work-queue retention",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, Retention: jetstream.WorkQueuePolicy})
				return Options{URLs: []string{url}}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD" exists with a conflicting configuration: retention is WorkQueue`},
		},
		{
			name: "update refused by the server",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, MaxAge: time.Minute, Duplicates: 30 * time.Second})
				return Options{URLs: []string{url}, DuplicateWindow: 5 * time.Minute}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD" exists with a conflicting configuration: `, "duplicate_window 30s -> 5m0s"},
		},
		{
			name: "subjects taken by another stream",
			opts: func(t *testing.T) Options {
				url := startNATS(t, true)
				createStream(t, url, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"herald.>"}})
				return Options{URLs: []string{url}}
			},
			wantIs:   ErrStreamConflict,
			wantText: []string{`stream "HERALD" cannot be created`, `overlap those of stream "OTHER"`},
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
			if elapsed > opts.ConnectTimeout+time.Second {
				t.Errorf("Open took %s, want within ConnectTimeout %s", elapsed, opts.ConnectTimeout)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(err, %v) = false", tt.wantIs)
			}
			for _, s := range []error{ErrUnreachable, ErrJetStreamDisabled, ErrStreamConflict} {
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

// createStream creates a stream on the server at url with a throw-away connection.
func createStream(t *testing.T, url string, cfg jetstream.StreamConfig) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(testCtx(t, 5*time.Second), cfg); err != nil {
		t.Fatalf("create stream %s: %v", cfg.Name, err)
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
