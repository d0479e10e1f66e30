//go:build !linux || !(amd64 || arm64 || arm || riscv64 || loong64 || ppc64le || ppc64 || mips64 || mips64le)

package server

import "net"

// readableWaiter is unavailable here: sockets are read on the reader's own
// stack (see inputWaiter).
func readableWaiter(net.Conn) func() error { return nil }
