package server

import (
	"testing"
	"time"
)

// TestDeadlineConnKeepsACloseDeadline: once limitWriteDeadline set an
// abrupt close's deadline, no later write deadline passes it, and clearing
// the deadline (no deadline: the latest of all) keeps it.
func TestDeadlineConnKeepsACloseDeadline(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	closeBy := base.Add(closeGrace)
	steps := []struct {
		name string
		set  func(*deadlineConn) error
		want time.Time // the deadline the connection has afterwards
	}{
		{"a writer's deadline", func(d *deadlineConn) error { return d.setWriteDeadline(base.Add(time.Minute)) }, base.Add(time.Minute)},
		{"the close's limit", func(d *deadlineConn) error { return d.limitWriteDeadline(closeBy) }, closeBy},
		{"a writer extending its deadline", func(d *deadlineConn) error { return d.setWriteDeadline(base.Add(time.Minute)) }, closeBy},
		{"a writer clearing its deadline", func(d *deadlineConn) error { return d.setWriteDeadline(time.Time{}) }, closeBy},
		{"an earlier deadline", func(d *deadlineConn) error { return d.setWriteDeadline(base) }, base},
		{"a later one again", func(d *deadlineConn) error { return d.setWriteDeadline(base.Add(time.Hour)) }, closeBy},
	}
	counter := &deadlineCounter{}
	d := &deadlineConn{Conn: counter}
	for _, step := range steps {
		if err := step.set(d); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := counter.set[len(counter.set)-1]; !got.Equal(step.want) {
			t.Errorf("%s: the connection's write deadline is %v, want %v", step.name, got, step.want)
		}
	}
}

// TestSlowConsumerCloseKeepsItsGraceFromTheWriter: a slow consumer's close
// chosen just after the writer looked for one (writeLoop's isClosing) and
// before it extends its write deadline must keep closeGrace, not get the
// full WriteTimeout back: a write stuck on a client that does not read
// gives up within closeGrace of the close.
func TestSlowConsumerCloseKeepsItsGraceFromTheWriter(t *testing.T) {
	r := newReplica(t, func(o *Options) {
		o.WriteTimeout = time.Minute
		o.PingInterval = time.Minute
	})
	client := r.dialTransport("a")
	c := r.onlySocket()

	// The test is the socket's writer here, as writeLoop is between its
	// look at closing and its extendWriteDeadline.
	waitFor(t, "the socket's writer idle", c.queue.claim)
	if c.isClosing() {
		t.Fatal("the socket is closing already")
	}
	c.chooseClose(closeTryAgainLater, "slow consumer", closeDropQueue)
	c.writeDeadline = 0 // as after a long idle: the writer sets a fresh deadline
	c.extendWriteDeadline()
	limit := time.Now().Add(closeGrace)
	d := c.wire()
	d.mu.Lock()
	got := d.writeDeadline
	d.mu.Unlock()
	c.queue.release(nil) // a writer starts and sends the close frame

	if got.After(limit) {
		t.Errorf("after a slow consumer's close the write deadline is %v from now, want at most closeGrace (%v): the writer undid the close's deadline",
			time.Until(got).Round(time.Second), closeGrace)
	}
	client.expectClose(closeTryAgainLater, 5*time.Second)
}

// onlySocket is the replica's one WebSocket, server side.
func (r *replica) onlySocket() *wsConn {
	r.t.Helper()
	var found *wsConn
	waitFor(r.t, "the socket kept alive", func() bool {
		k := r.server.ws.keeper
		k.mu.Lock()
		defer k.mu.Unlock()
		n := 0
		for _, c := range k.live.conns {
			if c != nil {
				found = c
				n++
			}
		}
		return n == 1
	})
	return found
}
