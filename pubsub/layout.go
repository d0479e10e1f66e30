package pubsub

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The layout of the event log. These names are persistent: changing any of
// them orphans every log created before the change.
const (
	// layoutVersion is recorded in every stream's metadata.
	layoutVersion = "2"

	// Stream metadata keys.
	metaLayout     = "herald.layout"
	metaPartitions = "herald.partitions" // directory: the partition count
	metaPartition  = "herald.partition"  // partition: "<k>/<N>"

	// directoryStreamSuffix and partitionStreamInfix make the stream names
	// <base>_ROOMS and <base>_P<k>.
	directoryStreamSuffix = "_ROOMS"
	partitionStreamInfix  = "_P"

	// directoryPrefix is the subject prefix of directory entries.
	directoryPrefix = "herald-rooms."
	// partitionPrefix starts every partition subject: herald-p<k>.<key>.<rest>.
	partitionPrefix = "herald-p"
	// livePrefix starts the subjects partitions republish to: herald-live.p<k>.<key>.<rest>.
	livePrefix = "herald-live.p"
)

// Partition counts Options.Partitions accepts.
const (
	minPartitions = 1
	maxPartitions = 256
)

// layout holds the names derived from the base stream name and the
// partition count, computed once by Open.
type layout struct {
	base       string
	partitions int

	dirStream   string
	partStreams []string // index: partition
	partPrefix  []string // "herald-p<k>."
}

func newLayout(base string, partitions int) layout {
	lay := layout{
		base:        base,
		partitions:  partitions,
		dirStream:   base + directoryStreamSuffix,
		partStreams: make([]string, partitions),
		partPrefix:  make([]string, partitions),
	}
	for k := range partitions {
		lay.partStreams[k] = base + partitionStreamInfix + strconv.Itoa(k)
		lay.partPrefix[k] = partitionPrefix + strconv.Itoa(k) + "."
	}
	return lay
}

// partitionOf is FNV-1a (32 bit) of key modulo n. It decides where a key's
// entries are stored, so it must never change. Written out rather than with
// hash/fnv, which would allocate on every call.
func partitionOf(key string, n int) int {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= prime32
	}
	return int(h % uint32(n))
}

// keySubject is herald-p<k>.<key>.<rest>.
func (lay *layout) keySubject(k int, key, rest string) string {
	return lay.partPrefix[k] + key + "." + rest
}

// keyFilter is herald-p<k>.<key>.>, every subject of key.
func (lay *layout) keyFilter(k int, key string) string {
	return lay.partPrefix[k] + key + ".>"
}

// liveFilter is herald-live.p<k>.<key>.>, where key's entries are republished.
func liveFilter(k int, key string) string {
	return livePrefix + strconv.Itoa(k) + "." + key + ".>"
}

// maxTokenBytes bounds every subject token this package takes from its
// callers (keys, rests, relay keys, notice topics, presence topics and
// replicas). The NATS server ends a connection whose protocol line is longer
// than its max_control_line (4 KiB by default), and nats.go does not
// reconnect after that: one subscription or publish on a subject that long
// would cut the replica off NATS until it restarts.
const maxTokenBytes = 256

// validKeyToken reports whether s is one non-empty token of [a-z0-9_].
func validKeyToken(s string) bool {
	if s == "" || len(s) > maxTokenBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// checkKey refuses keys that are not a single [a-z0-9_] token of at most
// maxTokenBytes.
func checkKey(key string) error {
	if !validKeyToken(key) {
		return fmt.Errorf("invalid key %s: must be one non-empty token of a-z, 0-9 and _, at most %d bytes", quoteShort(key), maxTokenBytes)
	}
	return nil
}

// checkRest refuses rests that are not dot-separated [a-z0-9_] tokens, or
// longer than maxTokenBytes.
func checkRest(rest string) error {
	bad := rest == "" || len(rest) > maxTokenBytes
	for tok := range strings.SplitSeq(rest, ".") {
		bad = bad || !validKeyToken(tok)
	}
	if bad {
		return fmt.Errorf("invalid rest %s: must be one or more dot-separated tokens of a-z, 0-9 and _, at most %d bytes", quoteShort(rest), maxTokenBytes)
	}
	return nil
}

// checkRestFilter refuses rest filters (FollowRest's, RestLastSeq's) that
// are not a rest (see checkRest) optionally followed by the wildcard ".>",
// nor ">" alone (every rest), or that are longer than maxTokenBytes.
func checkRestFilter(rest string) error {
	base, _ := strings.CutSuffix(rest, ".>")
	if rest != ">" && (len(rest) > maxTokenBytes || checkRest(base) != nil) {
		return fmt.Errorf(`invalid rest filter %s: must be one or more dot-separated tokens of a-z, 0-9 and _, optionally followed by ".>", or ">" alone, at most %d bytes`, quoteShort(rest), maxTokenBytes)
	}
	return nil
}

// quoteShort quotes s for an error message, cut to its first 64 bytes
// when it is longer than maxTokenBytes: a refused token may be huge.
func quoteShort(s string) string {
	if len(s) <= maxTokenBytes {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:64], len(s))
}

// parsePartitionSubject splits herald-p<k>.<key>.<rest>. ok is false when
// subject does not have that shape.
func parsePartitionSubject(subject string) (k int, key, rest string, ok bool) {
	tail, found := strings.CutPrefix(subject, partitionPrefix)
	if !found {
		return 0, "", "", false
	}
	num, tail, found := strings.Cut(tail, ".")
	if !found {
		return 0, "", "", false
	}
	k, err := strconv.Atoi(num)
	if err != nil || k < 0 || strconv.Itoa(k) != num {
		return 0, "", "", false
	}
	key, rest, found = strings.Cut(tail, ".")
	if !found || key == "" || rest == "" {
		return 0, "", "", false
	}
	return k, key, rest, true
}

// entryMaker turns a stored message into an Entry.
type entryMaker func(subject string, seq uint64, data []byte, stored time.Time) Entry

// directoryEntry makes an entry of the directory stream.
func directoryEntry(subject string, seq uint64, data []byte, stored time.Time) Entry {
	key, _ := strings.CutPrefix(subject, directoryPrefix)
	return Entry{Seq: seq, Subject: subject, Key: key, Partition: -1, Data: data, Time: stored}
}

// partitionEntry makes an entry of a partition stream.
func partitionEntry(subject string, seq uint64, data []byte, stored time.Time) Entry {
	e := Entry{Seq: seq, Subject: subject, Partition: -1, Data: data, Time: stored}
	if k, key, rest, ok := parsePartitionSubject(subject); ok {
		e.Partition, e.Key, e.Rest = k, key, rest
	}
	return e
}

// legacyEntry makes an entry of the legacy stream.
func legacyEntry(subject string, seq uint64, data []byte, stored time.Time) Entry {
	return Entry{Seq: seq, Subject: subject, Partition: -1, Data: data, Time: stored}
}

// PartitionStream names the stream that holds key's entries in a log whose
// base stream name is base and which has partitions partitions: what an
// operator (or a test) needs to find, say, the stream leader that serves a
// room. A partitions of 0 or less is Options.Partitions' default, 1.
func PartitionStream(base string, partitions int, key string) string {
	if partitions <= 0 {
		partitions = 1
	}
	return base + partitionStreamInfix + strconv.Itoa(partitionOf(key, partitions))
}
