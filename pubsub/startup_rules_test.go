package pubsub

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestOptionsRefused: every negative or malformed option is refused,
// naming the field, by Open before anything is started (not even the data
// dir is made); the bounds themselves are accepted.
func TestOptionsRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
		want string
	}{
		{"negative replicas", Options{Replicas: -1}, "invalid Options.Replicas -1"},
		{"negative per-subject limit", Options{MaxMsgsPerSubject: -5}, "invalid Options.MaxMsgsPerSubject -5"},
		{"negative duplicate window", Options{DuplicateWindow: -time.Second}, "invalid Options.DuplicateWindow -1s"},
		{"negative max store", Options{MaxStore: -1}, "invalid Options.MaxStore -1"},
		{"stream with a dot", Options{Stream: "A.B"}, `invalid Options.Stream "A.B"`},
		{"stream with a wildcard", Options{Stream: "A*"}, `invalid Options.Stream "A*"`},
		{"stream with a slash", Options{Stream: "A/B"}, `invalid Options.Stream "A/B"`},
		{"stream with a space", Options{Stream: "A B"}, `invalid Options.Stream "A B"`},
		// Names NATS takes for a stream but not for the key-value buckets
		// made from it (Presence, RecordMigration would fail later with
		// "invalid bucket name"), or too long for KV_<Stream>_PRESENCE_REPLICAS.
		{"stream with a colon", Options{Stream: "chat:v2"}, `invalid Options.Stream "chat:v2"`},
		{"stream not ASCII", Options{Stream: "héraut"}, `invalid Options.Stream "héraut"`},
		{"stream with a dollar", Options{Stream: "a$b"}, `invalid Options.Stream "a$b"`},
		{"stream with a plus", Options{Stream: "a+b"}, `invalid Options.Stream "a+b"`},
		{"stream one byte too long", Options{Stream: strings.Repeat("A", MaxStreamName+1)}, "invalid Options.Stream"},
		{"negative partitions", Options{Partitions: -3}, "invalid Options.Partitions -3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.opts.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Options with %s: withDefaults() = %v; want an error saying %q", tt.name, err, tt.want)
			}
		})
	}
	for _, ok := range []Options{{Partitions: maxPartitions}, {Partitions: minPartitions}, {Replicas: 3}, {Stream: "A_B-c"}, {Stream: strings.Repeat("A", MaxStreamName)}} {
		if _, err := ok.withDefaults(); err != nil {
			t.Errorf("withDefaults(%+v) = %v; want it accepted", ok, err)
		}
	}
	dir := t.TempDir() + "/never"
	if _, err := Open(testCtx(t, 5*time.Second), Options{DataDir: dir, Replicas: -1, Logger: testLogger()}); err == nil {
		t.Fatal("Open with Replicas -1 succeeded")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open with invalid options made the data dir (%v)", err)
	}
}

// TestStreamWideLimitsRefused: a directory or a partition with any
// stream-wide limit an operator set (max_age, max_msgs, max_bytes) is
// refused, each named, and the partition's refusal says why a partition
// cannot have one.
func TestStreamWideLimitsRefused(t *testing.T) {
	for _, tt := range []struct {
		name     string
		existing jetstream.StreamConfig
		want     []string
	}{
		{"directory max_bytes", jetstream.StreamConfig{Name: "HERALD_ROOMS", Subjects: []string{"herald-rooms.>"}, MaxBytes: 1 << 20,
			Metadata: map[string]string{"herald.partitions": "1"}}, []string{"max_bytes 1048576", "the directory must keep every entry"}},
		{"directory max_msgs", jetstream.StreamConfig{Name: "HERALD_ROOMS", Subjects: []string{"herald-rooms.>"}, MaxMsgs: 10,
			Metadata: map[string]string{"herald.partitions": "1"}}, []string{"max_msgs 10", "the directory must keep every entry"}},
		{"partition max_age", jetstream.StreamConfig{Name: "HERALD_P0", Subjects: []string{"herald-p0.>"}, MaxAge: time.Hour},
			[]string{`stream "HERALD_P0"`, "max_age 1h0m0s", "a partition must keep every entry within max_msgs_per_subject"}},
		{"partition max_bytes", jetstream.StreamConfig{Name: "HERALD_P0", Subjects: []string{"herald-p0.>"}, MaxBytes: 1 << 20},
			[]string{"max_bytes 1048576", "a partition must keep every entry"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATS(t, true)
			createStream(t, url, tt.existing)
			l, err := Open(testCtx(t, 10*time.Second), Options{URLs: []string{url}, Logger: testLogger()})
			if err == nil {
				_ = l.Close()
				t.Fatalf("Open accepted stream %s with a stream-wide limit", tt.existing.Name)
			}
			if !errors.Is(err, ErrStreamConflict) {
				t.Errorf("Open: %v; want ErrStreamConflict", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open: %v; want it to say %q", err, w)
				}
			}
		})
	}
}

// TestDiscardAndMirror: an operator's discard=new on a partition is
// put back to discard old (with discard new a key at its per-subject limit
// would refuse every write); a mirror in a stream's place is refused.
func TestDiscardAndMirror(t *testing.T) {
	t.Run("discard new restored", func(t *testing.T) {
		url := startNATS(t, true)
		openLog(t, Options{URLs: []string{url}, MaxMsgsPerSubject: 2})
		js := rawJS(t, url)
		s, err := js.Stream(testCtx(t, 5*time.Second), "HERALD_P0")
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.Discard = jetstream.DiscardNew
		if _, err := js.UpdateStream(testCtx(t, 5*time.Second), cfg); err != nil {
			t.Fatal(err)
		}
		l := openLog(t, Options{URLs: []string{url}, MaxMsgsPerSubject: 2})
		s, err = js.Stream(testCtx(t, 5*time.Second), "HERALD_P0")
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.Discard; got != jetstream.DiscardOld {
			t.Errorf("HERALD_P0 discard = %v after Open; want old restored", got)
		}
		appendChain(t, l, "k", "posts", 0, "1", "2", "3")
	})
	t.Run("mirror refused", func(t *testing.T) {
		url := startNATS(t, true)
		createStream(t, url, jetstream.StreamConfig{Name: "SRC", Subjects: []string{"src.>"}})
		createStream(t, url, jetstream.StreamConfig{Name: "HERALD_P0", Mirror: &jetstream.StreamSource{Name: "SRC"}})
		l, err := Open(testCtx(t, 10*time.Second), Options{URLs: []string{url}, Logger: testLogger()})
		if err == nil {
			_ = l.Close()
			t.Fatal("Open accepted a mirror as partition 0")
		}
		if !errors.Is(err, ErrStreamConflict) || !strings.Contains(err.Error(), `it is a mirror of "SRC"`) {
			t.Errorf("Open: %v; want ErrStreamConflict saying it is a mirror", err)
		}
	})
}

// TestReconcileRefusesLoweringAStreamInUse: reconcile (which a stream
// another replica created between this one's look-up and its creation
// also goes through) lowers the per-subject limit of an empty stream, but
// refuses with ErrHistoryLowered to lower that of a stream holding
// entries, and leaves it as it was.
func TestReconcileRefusesLoweringAStreamInUse(t *testing.T) {
	l := openEmbedded(t, Options{MaxMsgsPerSubject: 6})
	want := l.opts.partitionConfig(&l.lay, 0)
	want.MaxMsgsPerSubject = 3
	if _, err := l.reconcile(testCtx(t, 5*time.Second), l.parts[0], want); err != nil {
		t.Fatalf("reconcile lowering the limit of an empty stream: %v", err)
	}
	mustAppendKeyed(t, l, "k", "posts", "x", AppendOptions{})
	s, err := l.js.Stream(testCtx(t, 5*time.Second), l.lay.partStreams[0])
	if err != nil {
		t.Fatal(err)
	}
	want.MaxMsgsPerSubject = 2
	_, err = l.reconcile(testCtx(t, 5*time.Second), s, want)
	if !errors.Is(err, ErrHistoryLowered) {
		t.Errorf("reconcile lowering the limit of a stream with an entry: %v; want ErrHistoryLowered", err)
	}
	if s, err = l.js.Stream(testCtx(t, 5*time.Second), l.lay.partStreams[0]); err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxMsgsPerSubject; got != 3 {
		t.Errorf("per-subject limit after the refusal = %d; want 3 kept", got)
	}
}

// TestEnsureStreamFoundOnCreate: a stream another replica created
// between this one's look-up and its creation (the create answers "name
// already in use", as for a configuration that differs) is vetted with
// the layout check, then reconciled, not reported as a failure.
func TestEnsureStreamFoundOnCreate(t *testing.T) {
	l := openEmbedded(t, Options{Partitions: 2})
	want := l.opts.partitionConfig(&l.lay, 1)
	want.Duplicates = time.Minute // differs from what exists: the create is refused
	checked := 0
	s, err := l.ensureStream(testCtx(t, 10*time.Second), want, nil, func(have jetstream.StreamConfig) error {
		checked++
		return nil
	})
	if err != nil {
		t.Fatalf("ensureStream on a stream created meanwhile: %v; want it reconciled", err)
	}
	if checked != 1 || s.CachedInfo().Config.Duplicates != time.Minute {
		t.Errorf("stream found on create: checked %d times, duplicate window %s; want checked once and reconciled to 1m", checked, s.CachedInfo().Config.Duplicates)
	}
	vetoed := errors.New("vetoed by the layout check")
	want.Duplicates = 90 * time.Second
	if _, err := l.ensureStream(testCtx(t, 10*time.Second), want, nil, func(jetstream.StreamConfig) error { return vetoed }); !errors.Is(err, vetoed) {
		t.Errorf("ensureStream on a stream created meanwhile that the check refuses: %v; want the check's error", err)
	}
}

// TestReopenAsksNoUpdate: once a log's streams are set up and
// record its epoch, an Open with the same options changes nothing: it
// sends the server no stream update.
func TestReopenAsksNoUpdate(t *testing.T) {
	url := startNATS(t, true)
	opts := Options{URLs: []string{url}, Partitions: 3, MaxMsgsPerSubject: 5}
	first := openLog(t, opts)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	updates, err := nc.SubscribeSync("$JS.API.STREAM.UPDATE.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		l := openLog(t, opts)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if n, _, _ := updates.Pending(); n != 0 {
			m, _ := updates.NextMsg(0)
			t.Fatalf("Open #%d of a set-up log sent %d stream updates (first: %s %s); want none", i+2, n, m.Subject, m.Data)
		}
	}
}

// TestUpdateRefusedByTheServer: a stream whose settings Herald must change
// in a way the server refuses (here: more replicas than a server outside a
// cluster can keep) fails Open with ErrStreamConflict naming what Herald
// tried to change, and the stream is left as it was.
func TestUpdateRefusedByTheServer(t *testing.T) {
	url := startNATS(t, true)
	openLog(t, Options{URLs: []string{url}}).Close()
	l, err := Open(testCtx(t, 10*time.Second), Options{URLs: []string{url}, Replicas: 3, Logger: testLogger()})
	if err == nil {
		_ = l.Close()
		t.Fatal("Open with Replicas 3 on a lone server succeeded")
	}
	if !errors.Is(err, ErrStreamConflict) || !strings.Contains(err.Error(), "exists with a conflicting configuration") ||
		!strings.Contains(err.Error(), "replicas 1 -> 3") {
		t.Errorf("Open with Replicas 3 on a lone server: %v; want ErrStreamConflict saying herald tried to change replicas 1 -> 3", err)
	}
	s, err := rawJS(t, url).Stream(testCtx(t, 5*time.Second), "HERALD_ROOMS")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.Replicas; got != 1 {
		t.Errorf("HERALD_ROOMS has %d replicas after the refused update; want 1, as it was", got)
	}
}

// TestJetStreamNotEnabledForTheAccount: a server that runs JetStream, but
// not for the account Herald connects as, is reported as such
// (ErrJetStreamDisabled, saying to enable it for the account), not as a
// failed stream look-up.
func TestJetStreamNotEnabledForTheAccount(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(conf, []byte(`
listen: "127.0.0.1:-1"
jetstream { store_dir: "`+t.TempDir()+`" }
accounts {
  WITH: { jetstream: enabled, users: [{user: a, password: a}] }
  WITHOUT: { users: [{user: b, password: b}] }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sopts, err := server.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	sopts.NoSigs, sopts.NoLog = true, true
	srv, err := server.NewServer(sopts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats server not ready")
	}
	port := srv.Addr().(*net.TCPAddr).Port
	url := "nats://b:b@127.0.0.1:" + strconv.Itoa(port)
	l, err := Open(testCtx(t, 10*time.Second), Options{URLs: []string{url}, Logger: testLogger(), SetupTimeout: 5 * time.Second})
	if err == nil {
		_ = l.Close()
		t.Fatal("Open on an account without JetStream succeeded")
	}
	if !errors.Is(err, ErrJetStreamDisabled) || !strings.Contains(err.Error(), "JetStream is not enabled for this account") {
		t.Errorf("Open on an account without JetStream: %v; want ErrJetStreamDisabled saying to enable it for the account", err)
	}
}

// TestFollowResumesAtReconnect: when NATS reconnects every follow is told
// (Log.reconnects), since the pull requests it had waiting on the server
// are gone, and creates its consumer again at once instead of waiting to
// miss two heartbeats; an entry stored on the restarted server reaches it.
//
// The signal is what is checked, not how soon the entry comes: without it
// the follow still resumes, after anything from 0 to 2s depending on where
// the reconnect falls between its heartbeats and retries.
func TestFollowResumesAtReconnect(t *testing.T) {
	opts := Options{DataDir: t.TempDir(), ListenAddr: freeAddr(t), Logger: testLogger()}
	srv1, err := Open(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv1.Close() })
	external := openLog(t, Options{URLs: []string{srv1.ClientURL()}})
	f := startFollow(t, external, 1)
	mustAdd(t, srv1, "k1", "1")
	f.next(t, 1, 5*time.Second)
	told := external.reconnects.next()
	if err := srv1.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "disconnect", func() bool { return !external.Connected() })
	srv2 := openLog(t, opts)
	waitFor(t, 20*time.Second, "reconnect", external.Connected)
	select {
	case <-told:
	case <-time.After(10 * time.Second):
		t.Fatal("NATS reconnected but the follows were not told")
	}
	mustAdd(t, srv2, "k2", "2")
	if got := f.next(t, 1, 10*time.Second); got[0].Seq != 2 {
		t.Errorf("after the reconnect the follow delivered seq %d; want 2", got[0].Seq)
	}
}
