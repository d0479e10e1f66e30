//go:build linux || darwin || freebsd

package pubsub

import "syscall"

// diskFree is the space free to unprivileged users on dir's file system,
// as nats-server reads it for its own store limit (statfs); ok is false
// when it cannot be read.
func diskFree(dir string) (free int64, ok bool) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return 0, false
	}
	return int64(uint64(fs.Bavail) * uint64(fs.Bsize)), true
}
