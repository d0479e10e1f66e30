package server

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// fanoutChunk is how many members one goroutine delivers an event to at a
// time when a large fan-out is shared out (see fanoutHelpers). Sixteen
// direct writes take ~150 µs, several times what waking a helper costs, so
// a fan-out of more than sixteen is worth sharing; and chunks that small
// let a helper that starts late still take half the work. With chunks of
// 64, a 100-member fan-out was one chunk of 64 the execution wrote while
// the helper woke, then 36 more: S4's fan-outs took 1.05-1.23 ms at the
// median against 0.75-1.17 with chunks of 16 (10 s windows of alternating
// runs).
const fanoutChunk = 16

// fanoutHelpers are long-lived goroutines that deliver parts of a large
// fan-out beside the execution delivering it, so that one room's events
// use every core.
//
// Deliveries are direct writes that never wait (see wsConn.writeNow), so
// an event reaches a thousand sockets without starting a goroutine for
// each of them: a writer goroutine started per socket and per event grows
// its stack on its first write (runtime.newstack alone was ~9% of the CPU
// of a 2,000-member fan-out) and competes with every other goroutine for
// the run queue, which kept the next mutation's response waiting behind
// the whole fan-out. A helper starts once and keeps its stack.
type fanoutHelpers struct {
	jobs     chan *fanoutJob
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// newFanoutHelpers starts n helpers (none: every fan-out is delivered by
// its execution alone).
func newFanoutHelpers(n int) *fanoutHelpers {
	h := &fanoutHelpers{jobs: make(chan *fanoutJob, n), stop: make(chan struct{})}
	h.wg.Add(n)
	for range n {
		go h.serve()
	}
	return h
}

func (h *fanoutHelpers) serve() {
	defer h.wg.Done()
	for {
		select {
		case j := <-h.jobs:
			j.work()
		case <-h.stop:
			return
		}
	}
}

// close stops the helpers and waits for them; it may be called more than
// once. A job still queued is finished by the execution that queued it.
func (h *fanoutHelpers) close() {
	h.stopOnce.Do(func() { close(h.stop) })
	h.wg.Wait()
}

// fanoutJob is one event's delivery to its execution's members, in
// chunks that the execution and any idle helper claim one at a time.
type fanoutJob struct {
	r       *sharedExecutions
	e       *execution
	p       *payload
	members []*operation // read only until every chunk is done (see deliverAll)
	chunks  int32
	next    atomic.Int32  // the next chunk to claim
	left    atomic.Int32  // chunks claimed or not, not yet done
	done    chan struct{} // receives once the last chunk is done
}

// deliverAll delivers p to every member of e, which the caller holds e.mu
// (read) over, and returns once every member has had it: the next event
// must not overtake this one at any socket. Idle helpers take chunks of a
// large fan-out; the execution takes whatever chunks no helper has
// claimed, so it never waits for a busy or stopped helper to start.
func (h *fanoutHelpers) deliverAll(r *sharedExecutions, e *execution, p *payload) {
	members := e.members
	chunks := (len(members) + fanoutChunk - 1) / fanoutChunk
	if chunks <= 1 || cap(h.jobs) == 0 {
		for _, op := range members {
			r.deliver(e, op, p)
		}
		return
	}
	j := &fanoutJob{r: r, e: e, p: p, members: members, chunks: int32(chunks), done: make(chan struct{}, 1)}
	j.left.Store(int32(chunks))
offer:
	for range min(chunks-1, cap(h.jobs)) {
		select {
		case h.jobs <- j:
		default:
			break offer // every helper has work queued already
		}
	}
	j.work()
	<-j.done
}

// work delivers chunks until none is left to claim. A helper that takes
// the job after the execution has claimed every chunk does nothing, and
// so never reads members once deliverAll has returned.
func (j *fanoutJob) work() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.chunks {
			return
		}
		lo := int(i) * fanoutChunk
		for _, op := range j.members[lo:min(lo+fanoutChunk, len(j.members))] {
			j.r.deliver(j.e, op, j.p)
		}
		if j.left.Add(-1) == 0 {
			j.done <- struct{}{}
			return
		}
		runtime.Gosched()
	}
}
