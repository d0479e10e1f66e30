package pubsub

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestMigrationRecordBucketDeletedMeanwhile: the migrator deletes the
// record's bucket when it is done, possibly between another replica's
// look-up of the bucket and its read or write of the record. That read is
// no record, and that write lost (ErrMigrationClaimed), as if the look-up
// had come a moment later, not an error that stops the replica's start
// (NATS answers a request to a deleted KV stream with no responders).
func TestMigrationRecordBucketDeletedMeanwhile(t *testing.T) {
	legacy := time.Now().Add(-time.Hour)
	for _, tc := range []struct {
		name string
		do   func(ctx context.Context, l *Log, kv jetstream.KeyValue, rec MigrationRecord) error
	}{
		{"read", func(ctx context.Context, l *Log, kv jetstream.KeyValue, _ MigrationRecord) error {
			got, ok, err := l.readMigrationRecord(ctx, kv)
			if err != nil || ok {
				return fmt.Errorf("read = %+v, %v, %v; want no record", got, ok, err)
			}
			return nil
		}},
		{"rewrite", func(ctx context.Context, l *Log, kv jetstream.KeyValue, rec MigrationRecord) error {
			if _, err := l.writeMigrationRecord(ctx, kv, rec, rec.Revision, "rewrite"); !errors.Is(err, ErrMigrationClaimed) {
				return fmt.Errorf("rewrite = %v, want ErrMigrationClaimed", err)
			}
			return nil
		}},
		{"create", func(ctx context.Context, l *Log, kv jetstream.KeyValue, rec MigrationRecord) error {
			if _, err := l.writeMigrationRecord(ctx, kv, rec, 0, "create"); !errors.Is(err, ErrMigrationClaimed) {
				return fmt.Errorf("create = %v, want ErrMigrationClaimed", err)
			}
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := startNATS(t, true)
			js := rawJS(t, url)
			l := openLog(t, Options{URLs: []string{url}})
			rec, err := l.RecordMigration(testCtx(t, 5*time.Second), MigrationRecord{Legacy: legacy, Owner: "migrator"}, 0)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := js.KeyValue(testCtx(t, 5*time.Second), "HERALD_MIGRATION")
			if err != nil {
				t.Fatal(err)
			}
			if err := l.DeleteMigrationRecord(testCtx(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := tc.do(testCtx(t, 5*time.Second), l, kv, rec); err != nil {
				t.Fatal(err)
			}
			if _, err := js.KeyValue(testCtx(t, 5*time.Second), "HERALD_MIGRATION"); !errors.Is(err, jetstream.ErrBucketNotFound) {
				t.Fatalf("the record's bucket afterwards: %v, want not found", err)
			}
		})
	}
}
