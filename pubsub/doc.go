// Package pubsub is Herald's only contact with NATS.
//
// It connects to an external NATS server or runs an embedded one in-process,
// and keeps the JetStream streams that make up the durable event log shared
// by every Herald replica. Callers choose keys and the subjects under them;
// the package knows nothing about what the events mean.
//
// # Layout
//
// With base = Options.Stream (default "HERALD") and N = Options.Partitions:
//
//   - The directory stream <base>_ROOMS captures herald-rooms.>; the entry of
//     key K lives at herald-rooms.<K>, at most one per key, ever
//     (AddToDirectory). It keeps every entry and records the layout in its
//     metadata: herald.layout=2, herald.partitions=<N>. The partition count
//     is fixed once the directory exists; Open refuses another one
//     (ErrLayoutConflict).
//   - Partition k (0..N-1) is the stream <base>_P<k>, capturing
//     herald-p<k>.>. An entry of key K lives at herald-p<k>.<K>.<rest>, where
//     rest is one or more tokens chosen by the caller ("posts", "msg.<id>").
//     Each subject keeps at most Options.MaxMsgsPerSubject entries. Its
//     metadata records herald.layout=2, herald.partition=<k>/<N>. The stream
//     republishes every stored entry to herald-live.p<k>.<K>.<rest> (headers
//     Nats-Stream, Nats-Subject, Nats-Sequence, Nats-Time-Stamp,
//     Nats-Last-Sequence added by the server; only the stream leader
//     republishes), which is what Live subscribes to.
//   - Key K belongs to partition FNV-1a-32(K) mod N.
//   - Keys are single tokens of [a-z0-9_]; rest is one or more such tokens
//     separated by dots. Anything else is refused.
//
// Every stream of the layout uses file storage, limits retention, discard
// old, Options.Replicas and Options.DuplicateWindow; Open creates missing
// streams and brings these settings back when they drifted.
//
// The legacy (pre-partition) log is one stream named exactly <base>,
// capturing herald.> (herald.room.<room>.meta|posts|msg.<id>). Its subjects
// do not overlap the layout's, so both can coexist. Open only notes whether
// it exists (HasLegacy); LookUpLegacy, ReadLegacy, DropLegacy, LayoutEmpty,
// ResetLayout and the migration record (MigrationRecord, RecordMigration,
// DeleteMigrationRecord: one replica migrates) let the caller migrate it.
//
// # Reading and writing
//
// Writes to one key are serialised by optimistic concurrency: AppendKeyed
// states the key's last sequence over all its subjects and fails with a
// *ConflictError when the key moved on. Each replica loads the keys it needs
// with ReadKey and follows them with a Live, which receives only the keys
// added to it and reports through Lost when entries may have been missed.
// Sequences are per stream: compare sequences only within one partition.
//
// A [Log] and a [Live] are safe for concurrent use by multiple goroutines.
package pubsub
