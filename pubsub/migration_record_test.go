package pubsub

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestMigrationRecord: the record of a legacy migration is created by one
// replica only, rewritten only by one that read its latest revision, and
// gone with its bucket; LookUpLegacy sees the legacy stream as it is now,
// a stream created again under the same name included.
func TestMigrationRecord(t *testing.T) {
	url := startNATS(t, true)
	js := rawJS(t, url)
	createStream(t, url, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}})
	if _, err := js.Publish(testCtx(t, 5*time.Second), "herald.room.r1.meta", []byte("meta")); err != nil {
		t.Fatal(err)
	}
	a := openLog(t, Options{URLs: []string{url}, Partitions: 2})
	b := openLog(t, Options{URLs: []string{url}, Partitions: 2})

	found, err := a.LookUpLegacy(testCtx(t, 5*time.Second))
	if err != nil || !found.Exists || found.Name != "HERALD" || found.Entries != 1 || found.Created.IsZero() {
		t.Fatalf("LookUpLegacy = %+v, %v; want HERALD with 1 entry", found, err)
	}
	if _, ok, err := a.MigrationRecord(testCtx(t, 5*time.Second)); err != nil || ok {
		t.Fatalf("MigrationRecord before any = %v, %v; want none", ok, err)
	}

	// One creation wins.
	mine, err := a.RecordMigration(testCtx(t, 5*time.Second), MigrationRecord{Legacy: found.Created, Owner: "a"}, 0)
	if err != nil {
		t.Fatalf("RecordMigration: %v", err)
	}
	if _, err := b.RecordMigration(testCtx(t, 5*time.Second), MigrationRecord{Legacy: found.Created, Owner: "b"}, 0); !errors.Is(err, ErrMigrationClaimed) {
		t.Fatalf("a second creation = %v, want ErrMigrationClaimed", err)
	}
	rec, ok, err := b.MigrationRecord(testCtx(t, 5*time.Second))
	if err != nil || !ok || rec.Owner != "a" || !rec.Legacy.Equal(found.Created) || rec.Revision != mine.Revision {
		t.Fatalf("MigrationRecord = %+v, %v, %v; want a's, %+v", rec, ok, err, mine)
	}

	// One rewrite of a revision wins; the other learns it lost.
	taken, err := b.RecordMigration(testCtx(t, 5*time.Second), MigrationRecord{Legacy: found.Created, Owner: "b"}, rec.Revision)
	if err != nil || taken.Revision == rec.Revision {
		t.Fatalf("rewriting the latest revision = %+v, %v", taken, err)
	}
	if _, err := a.RecordMigration(testCtx(t, 5*time.Second), mine, mine.Revision); !errors.Is(err, ErrMigrationClaimed) {
		t.Fatalf("rewriting a revision no longer the latest = %v, want ErrMigrationClaimed", err)
	}

	// Deleted with its bucket; rewriting it then is refused, not a new bucket.
	for range 2 {
		if err := a.DeleteMigrationRecord(testCtx(t, 5*time.Second)); err != nil {
			t.Fatalf("DeleteMigrationRecord: %v", err)
		}
	}
	if _, err := js.KeyValue(testCtx(t, 5*time.Second), "HERALD_MIGRATION"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("the record's bucket after DeleteMigrationRecord: %v, want not found", err)
	}
	if _, err := b.RecordMigration(testCtx(t, 5*time.Second), taken, taken.Revision); !errors.Is(err, ErrMigrationClaimed) {
		t.Fatalf("rewriting a deleted record = %v, want ErrMigrationClaimed", err)
	}
	if _, err := js.KeyValue(testCtx(t, 5*time.Second), "HERALD_MIGRATION"); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("rewriting a deleted record made its bucket again: %v", err)
	}

	// A stream created again is another: its Created differs.
	if err := js.DeleteStream(testCtx(t, 5*time.Second), "HERALD"); err != nil {
		t.Fatal(err)
	}
	createStream(t, url, jetstream.StreamConfig{Name: "HERALD", Subjects: []string{"herald.>"}})
	again, err := a.LookUpLegacy(testCtx(t, 5*time.Second))
	if err != nil || !again.Exists || again.Entries != 0 || again.Created.Equal(found.Created) {
		t.Fatalf("LookUpLegacy of the stream created again = %+v, %v; want another Created than %v", again, err, found.Created)
	}

	// Gone: HasLegacy follows.
	if err := js.DeleteStream(testCtx(t, 5*time.Second), "HERALD"); err != nil {
		t.Fatal(err)
	}
	if gone, err := a.LookUpLegacy(testCtx(t, 5*time.Second)); err != nil || gone.Exists || a.HasLegacy() {
		t.Fatalf("LookUpLegacy of a deleted stream = %+v, %v (HasLegacy %v); want none", gone, err, a.HasLegacy())
	}
}

// TestMigrationRecordNotHeralds: a record Herald did not write (not its
// JSON, or a time it cannot read) is refused with ErrStreamConflict, not
// taken for a record of a migration started at the zero time.
func TestMigrationRecordNotHeralds(t *testing.T) {
	url := startNATS(t, true)
	js := rawJS(t, url)
	l := openLog(t, Options{URLs: []string{url}})
	kv, err := js.CreateKeyValue(testCtx(t, 5*time.Second), jetstream.KeyValueConfig{Bucket: "HERALD_MIGRATION"})
	if err != nil {
		t.Fatal(err)
	}
	for _, value := range []string{`not json`, `{"legacy":"yesterday"}`} {
		if _, err := kv.Put(testCtx(t, 5*time.Second), "legacy", []byte(value)); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := l.MigrationRecord(testCtx(t, 5*time.Second)); !errors.Is(err, ErrStreamConflict) {
			t.Errorf("MigrationRecord of %q = %v, %v; want ErrStreamConflict", value, ok, err)
		}
	}
}
