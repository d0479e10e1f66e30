package pubsub

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/highwayhash"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// streamFilesDir is where the embedded server under dataDir keeps stream
// name's files.
func streamFilesDir(dataDir, name string) string {
	return filepath.Join(dataDir, "jetstream", server.DEFAULT_GLOBAL_ACCOUNT, "streams", name)
}

// shiftStreamClock rewrites the files of stream name under the embedded
// store dataDir as the server (and Herald) would have written them had the
// wall clock been d ahead: its creation time and the epoch it records, if
// any, move by d. The server must be stopped. meta.sum is recomputed the
// way nats-server checks it (HighwayHash-64 keyed by SHA-256 of the name).
func shiftStreamClock(t *testing.T, dataDir, name string, d time.Duration) {
	t.Helper()
	dir := streamFilesDir(dataDir, name)
	raw, err := os.ReadFile(filepath.Join(dir, server.JetStreamMetaFile))
	if err != nil {
		t.Fatalf("read %s meta: %v", name, err)
	}
	var meta map[string]json.RawMessage // server.FileStreamInfo: Created and the config inline
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatalf("decode %s meta: %v", name, err)
	}
	var created time.Time
	if err := json.Unmarshal(meta["Created"], &created); err != nil {
		t.Fatalf("%s meta: Created %s: %v", name, meta["Created"], err)
	}
	if meta["Created"], err = json.Marshal(created.Add(d).UTC()); err != nil {
		t.Fatal(err)
	}
	var md map[string]string
	if err := json.Unmarshal(meta["metadata"], &md); err != nil {
		t.Fatalf("%s meta: metadata %s: %v", name, meta["metadata"], err)
	}
	if rec, ok := md[metaEpoch]; ok {
		e, err := time.Parse(time.RFC3339Nano, rec)
		if err != nil {
			t.Fatalf("%s records %s=%q: %v", name, metaEpoch, rec, err)
		}
		md[metaEpoch] = e.Add(d).UTC().Format(time.RFC3339Nano)
		if meta["metadata"], err = json.Marshal(md); err != nil {
			t.Fatal(err)
		}
	}
	out, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	key := sha256.Sum256([]byte(name))
	hh, err := highwayhash.NewDigest64(key[:])
	if err != nil {
		t.Fatal(err)
	}
	hh.Write(out)
	var hb [highwayhash.Size64]byte
	if err := os.WriteFile(filepath.Join(dir, server.JetStreamMetaFile), out, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, server.JetStreamMetaFileSum), []byte(hex.EncodeToString(hh.Sum(hb[:0]))), 0o600); err != nil {
		t.Fatal(err)
	}
}

// layoutInfos asks for the directory's and every partition's info afresh.
func layoutInfos(t *testing.T, l *Log) []*jetstream.StreamInfo {
	t.Helper()
	names := append([]string{l.lay.dirStream}, l.lay.partStreams...)
	infos := make([]*jetstream.StreamInfo, len(names))
	for i, name := range names {
		s, err := l.js.Stream(testCtx(t, 5*time.Second), name)
		if err != nil {
			t.Fatalf("look up %s: %v", name, err)
		}
		infos[i] = s.CachedInfo()
	}
	return infos
}

// newestCreated is the epoch a Herald that reads creation times only
// computes.
func newestCreated(infos []*jetstream.StreamInfo) time.Time {
	var newest time.Time
	for _, info := range infos {
		if info.Created.After(newest) {
			newest = info.Created
		}
	}
	return newest
}

// TestEpochChangesWhenAStreamIsCreatedAgain: a stream deleted and created
// again restarts its sequences, so the log's epoch, which every cursor
// carries, must change, or cursors issued before pass for positions in the
// new stream (and a resume from one skips events once the stream passes
// it). The epoch was the newest creation time, which a stream created
// again does not change when the clock that made the others was ahead. It
// must be later than every epoch before, however often streams are lost;
// when the clocks agree, it is the newest creation time, as replicas that
// know nothing else compute it.
func TestEpochChangesWhenAStreamIsCreatedAgain(t *testing.T) {
	tests := []struct {
		name       string
		partitions int
		ahead      time.Duration // how far ahead the clock that made the log was
		lose       []int         // the streams lost in turn: a partition, or -1 for the directory
	}{
		{"directory lost, the log made by a clock an hour ahead", 1, time.Hour, []int{-1}},
		{"a partition lost, the log made by a clock an hour ahead", 4, time.Hour, []int{2}},
		{"the same partition lost twice, the clock still behind", 2, time.Hour, []int{1, 1}},
		{"every stream lost in turn, the clock still behind", 2, time.Hour, []int{0, -1, 1}},
		{"a partition lost, the clocks agree", 2, 0, []int{1}},
		{"the directory lost twice, the clocks agree", 1, 0, []int{-1, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			opts := Options{DataDir: dataDir, Partitions: tt.partitions, Logger: testLogger(), ConnectTimeout: 5 * time.Second}
			open := func() *Log {
				t.Helper()
				l, err := Open(testCtx(t, 10*time.Second), opts)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return l
			}
			closeLog := func(l *Log) {
				t.Helper()
				if err := l.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
			}

			l := open()
			lay := l.lay
			mustAdd(t, l, "room", "{}")
			closeLog(l)
			if tt.ahead != 0 {
				for _, name := range append([]string{lay.dirStream}, lay.partStreams...) {
					shiftStreamClock(t, dataDir, name, tt.ahead)
				}
			}
			l = open()
			epochs := []time.Time{l.Epoch()}
			for _, k := range tt.lose {
				lost := lay.dirStream
				if k >= 0 {
					lost = lay.partStreams[k]
				}
				if err := l.js.DeleteStream(testCtx(t, 5*time.Second), lost); err != nil {
					t.Fatalf("delete %s: %v", lost, err)
				}
				closeLog(l)

				l = open()
				epoch := l.Epoch()
				for i, before := range epochs {
					if !epoch.After(before) {
						t.Errorf("after %s was created again (loss %d), the epoch is %s, not later than epoch %d, %s: cursors of that incarnation pass for positions in this one",
							lost, len(epochs), epoch.Format(time.RFC3339Nano), i, before.Format(time.RFC3339Nano))
					}
				}
				infos := layoutInfos(t, l)
				if tt.ahead == 0 {
					if newest := newestCreated(infos); !epoch.Equal(newest) {
						t.Errorf("with clocks that agree, the epoch after %s was created again is %s, not the newest creation time %s that replicas reading creation times only compute",
							lost, epoch.Format(time.RFC3339Nano), newest.Format(time.RFC3339Nano))
					}
				}
				for _, info := range infos {
					if got, err := streamEpoch(info); err != nil || !got.Equal(epoch) {
						t.Errorf("stream %s's epoch is %s (%v), want the log's, %s, recorded", info.Config.Name, got, err, epoch)
					}
				}
				epochs = append(epochs, epoch)
			}
			if k := tt.lose[len(tt.lose)-1]; k >= 0 {
				if _, last := mustReadKey(t, l, "room", 0); partitionOf("room", tt.partitions) == k && last != 0 {
					t.Errorf("room's last sequence after its partition was created again = %d, want 0", last)
				}
			}
			closeLog(l)
		})
	}
}

// TestEpochOfALogThatRecordsNoneIsKept: a log written by a Herald that
// knew nothing of recorded epochs keeps its epoch, the newest creation
// time, so an upgrade expires no cursor, and the streams record it from
// then on. A fresh log's epoch is the newest creation time too, as
// replicas of that Herald compute it.
func TestEpochOfALogThatRecordsNoneIsKept(t *testing.T) {
	dataDir := t.TempDir()
	opts := Options{DataDir: dataDir, Partitions: 3}
	l := openLog(t, opts)
	epoch := l.Epoch()
	infos := layoutInfos(t, l)
	if newest := newestCreated(infos); !epoch.Equal(newest) {
		t.Errorf("a fresh log's epoch = %s, want the newest creation time, %s", epoch, newest)
	}
	for _, info := range infos {
		// As a Herald that records no epoch would have left it.
		cfg := info.Config
		cfg.Metadata = maps.Clone(cfg.Metadata)
		delete(cfg.Metadata, metaEpoch)
		if _, err := l.js.UpdateStream(testCtx(t, 5*time.Second), cfg); err != nil {
			t.Fatalf("update %s: %v", cfg.Name, err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	again := openLog(t, opts)
	if !again.Epoch().Equal(epoch) {
		t.Errorf("epoch of a log that records none = %s, want %s, the newest creation time, as before", again.Epoch(), epoch)
	}
	// Each stream's epoch is the log's: the newest-made by its creation
	// time, the others by the one they record.
	for _, info := range layoutInfos(t, again) {
		if got, err := streamEpoch(info); err != nil || !got.Equal(epoch) {
			t.Errorf("stream %s's epoch is %s (%v; it records %s=%q), want %s",
				info.Config.Name, got, err, metaEpoch, info.Config.Metadata[metaEpoch], epoch)
		}
	}
}

// TestOpenRefusesARecordedEpochThatIsNotATime: a recorded epoch edited by
// hand into something else is refused, naming the stream and the value,
// rather than guessed at.
func TestOpenRefusesARecordedEpochThatIsNotATime(t *testing.T) {
	dataDir := t.TempDir()
	opts := Options{DataDir: dataDir, Partitions: 2, Logger: testLogger(), ConnectTimeout: 5 * time.Second}
	l := openLog(t, opts)
	info := layoutInfos(t, l)[2]
	cfg := info.Config
	cfg.Metadata = maps.Clone(cfg.Metadata)
	cfg.Metadata[metaEpoch] = "yesterday"
	if _, err := l.js.UpdateStream(testCtx(t, 5*time.Second), cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	bad, err := Open(testCtx(t, 10*time.Second), opts)
	if err == nil {
		_ = bad.Close()
		t.Fatal("Open accepted a recorded epoch that is not a time")
	}
	if !errors.Is(err, ErrStreamConflict) || !strings.Contains(err.Error(), `stream "HERALD_P1" records herald.epoch="yesterday"`) {
		t.Errorf("Open: %v; want ErrStreamConflict naming HERALD_P1 and the value", err)
	}
}

// TestOpenRefusesAStreamTheServerDidNotLoad: nats-server skips, with a
// warning only, a stream whose meta.inf and meta.sum disagree (a crash or
// a full disk between its writes of the two). Open must not create the
// stream anew over its files (their entries would be kept under a new
// creation time, every cursor would expire, and the checks of Open would
// pass unseen), nor, for the legacy stream, start a log that its
// migration would later purge: it refuses, naming the directory.
func TestOpenRefusesAStreamTheServerDidNotLoad(t *testing.T) {
	tests := []struct {
		name   string
		stream string
	}{
		{"directory", "HERALD_ROOMS"},
		{"partition", "HERALD_P1"},
		{"legacy stream", "HERALD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dataDir := t.TempDir()
			opts := Options{DataDir: dataDir, Partitions: 2, Logger: testLogger(), ConnectTimeout: 5 * time.Second}
			l := openLog(t, opts)
			if tt.stream == "HERALD" {
				createLegacy := jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}, Storage: jetstream.FileStorage}
				if _, err := l.js.CreateStream(testCtx(t, 5*time.Second), createLegacy); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			dir := streamFilesDir(dataDir, tt.stream)
			metaInf := filepath.Join(dir, server.JetStreamMetaFile)
			before, err := os.ReadFile(metaInf)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, server.JetStreamMetaFileSum), []byte("0000000000000000"), 0o600); err != nil {
				t.Fatal(err)
			}

			bad, err := Open(testCtx(t, 10*time.Second), opts)
			if err == nil {
				_ = bad.Close()
				t.Fatalf("Open started on a data dir whose stream %s the server could not load", tt.stream)
			}
			for _, want := range []string{`stream "` + tt.stream + `"`, dir, "could not load"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open: %v; want it to say %q", err, want)
				}
			}
			if after, err := os.ReadFile(metaInf); err != nil || string(after) != string(before) {
				t.Errorf("%s changed (%v): the stream was created anew over its files", metaInf, err)
			}
		})
	}
}
