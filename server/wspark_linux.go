//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || ppc64 || mips64 || mips64le)

package server

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// parker watches parked sockets with one epoll instance. The instance is
// itself pollable, so the runtime's poller watches it for the parker's
// goroutine (run) as it watches any socket: no thread is held in
// epoll_wait, and closing it ends run.
//
// Each socket is registered once, one-shot and level-triggered, keyed by a
// token rather than its descriptor (whose number a new socket may reuse),
// and re-armed at every park. Closing a socket removes it from the
// instance; the registry entry goes at teardown (forget).
type parker struct {
	ep   *os.File
	raw  syscall.RawConn
	done chan struct{} // closed when run returns

	mu      sync.Mutex
	next    uint64
	readers map[uint64]*parkedReader
}

// parkEvents is what a parked socket waits for: input, or the peer's end
// (errors and hang-ups are always reported).
const parkEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// newParker creates the epoll instance and starts the parker's goroutine;
// close stops it.
func newParker() (*parker, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create epoll instance: %w", err)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("make epoll instance non-blocking: %w", err)
	}
	ep := os.NewFile(uintptr(fd), "parker")
	raw, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return nil, fmt.Errorf("watch epoll instance: %w", err)
	}
	p := &parker{ep: ep, raw: raw, done: make(chan struct{}), readers: make(map[uint64]*parkedReader)}
	go p.run()
	return p, nil
}

// close stops the parker and waits for its goroutine. Sockets parked then
// are woken to wait for themselves; later parks fail.
func (p *parker) close() {
	_ = p.ep.Close()
	<-p.done
}

// register gives r's socket a token in the registry, before its first park.
func (p *parker) register(r *parkedReader) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next++
	r.token = p.next
	p.readers[r.token] = r
}

// arm adds or re-arms r's socket for one wake-up. It fails once the socket
// or the parker is closed. Both descriptors are held while in use, so
// neither can be closed and its number reused meanwhile. It touches
// nothing of r's but reads: once armed, a new goroutine may run the reader.
func (p *parker) arm(r *parkedReader) error {
	ev := syscall.EpollEvent{Events: parkEvents, Fd: int32(r.token), Pad: int32(r.token >> 32)}
	var ctlErr error
	err := p.raw.Control(func(epfd uintptr) {
		err := r.rc.Control(func(fd uintptr) {
			ctlErr = syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_MOD, int(fd), &ev)
			if errors.Is(ctlErr, syscall.ENOENT) { // the first park
				ctlErr = syscall.EpollCtl(int(epfd), syscall.EPOLL_CTL_ADD, int(fd), &ev)
			}
		})
		if err != nil {
			ctlErr = err
		}
	})
	if err == nil {
		err = ctlErr
	}
	if err != nil {
		return fmt.Errorf("park socket: %w", err)
	}
	return nil
}

// forget drops a socket's registry entry.
func (p *parker) forget(token uint64) {
	p.mu.Lock()
	delete(p.readers, token)
	p.mu.Unlock()
}

// registered reports how many sockets the registry holds.
func (p *parker) registered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.readers)
}

// run wakes the readers of sockets that have input until the instance is
// closed, then wakes every reader still parked.
func (p *parker) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 128)
	woken := make([]*parkedReader, 0, len(events))
	_ = p.raw.Read(func(epfd uintptr) bool {
		for {
			n, err := syscall.EpollWait(int(epfd), events, 0)
			switch {
			case errors.Is(err, syscall.EINTR):
				continue
			case err != nil:
				return true // cannot happen on a valid instance; stop rather than spin
			}
			woken = p.lookup(events[:n], woken[:0])
			for _, r := range woken {
				r.wake()
			}
			clear(woken)
			if n < len(events) {
				return false // drained: wait until the instance is readable
			}
		}
	})
	_ = p.ep.Close() // when run stopped on an error: later parks fail
	woken = woken[:0]
	p.mu.Lock()
	for _, r := range p.readers {
		woken = append(woken, r)
	}
	p.mu.Unlock()
	for _, r := range woken {
		r.wake()
	}
}

// lookup appends the readers of events' sockets to woken.
func (p *parker) lookup(events []syscall.EpollEvent, woken []*parkedReader) []*parkedReader {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ev := range events {
		if r := p.readers[uint64(uint32(ev.Fd))|uint64(uint32(ev.Pad))<<32]; r != nil {
			woken = append(woken, r)
		}
	}
	return woken
}

// parksSockets says whether idle sockets are parked on this platform.
const parksSockets = true
