package pubsub

import (
	"errors"
	"fmt"
)

// Sentinel errors about the embedded server's data dir and store, for use
// with errors.Is. They are here rather than in errors.go because they
// belong to the embedded server's watch over its disk (storeWatch).
var (
	// ErrDataDirFull means Options.DataDir's file system has less free
	// space than the embedded server needs to start (minFreeBytes).
	ErrDataDirFull = errors.New("too little free space")

	// ErrStoreFailed means the embedded server cannot store writes just
	// now: it failed a write to its files (a full disk), or its data dir
	// or lock file was removed or replaced under it. Its JetStream is
	// stopped meanwhile, so writes fail at once (with ErrUnreachable: no
	// stream answers) rather than wait for an acknowledgement that never
	// comes. Health's error wraps it while it lasts.
	ErrStoreFailed = errors.New("embedded NATS store failed")
)

// minFreeBytes is the free space the embedded server's disk must have for
// it to start, or to start again after a write failed for want of space:
// enough for the server's own files (stream and consumer state, indexes)
// and some writes, so that a disk that is merely not quite full does not
// make it fail again at once.
const minFreeBytes = 1 << 20

// checkFreeSpace fails, wrapping ErrDataDirFull, when dir's file system
// has less than minFreeBytes free. Where free space cannot be read
// (diskFree), it fails nothing.
func checkFreeSpace(dir string) error {
	free, ok := diskFree(dir)
	if !ok || free >= minFreeBytes {
		return nil
	}
	return fmt.Errorf("%w: %s free on its disk, below the %s the embedded NATS server needs", ErrDataDirFull, fmtBytes(free), fmtBytes(minFreeBytes))
}

// fmtBytes writes n bytes for messages: "512 B", "3.5 KiB", "1.0 MiB".
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
