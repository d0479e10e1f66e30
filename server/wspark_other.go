//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || ppc64 || mips64 || mips64le))

package server

// parker is not available here: every socket keeps a reader goroutine
// waiting for its input (see inputWaiter).
type parker struct{}

func newParker() (*parker, error)       { return nil, errNoParker }
func (*parker) close()                  {}
func (*parker) register(*parkedReader)  {}
func (*parker) arm(*parkedReader) error { return errNoParker }
func (*parker) forget(uint64)           {}
func (*parker) registered() int         { return 0 }

// parksSockets says whether idle sockets are parked on this platform.
const parksSockets = false
