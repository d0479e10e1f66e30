package server

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDropWhileStartingLeaksNothing drops sockets while their operations
// are being started: resumed subscriptions (a shared live execution and a
// private replay each) of a private room whose membership flips under
// them, with posts racing, and a query in flight. Afterwards no
// execution, member, socket, operation or goroutine is left.
func TestDropWhileStartingLeaksNothing(t *testing.T) {
	r := newReplica(t, nil)
	room := r.privateRoom("leaks", "bob")
	cursor := messageCursor(t, r, "ann", r.post(room, "ann", "first").ID)
	r.post(room, "ann", "second")
	baseline := ownGoroutines()

	ctx, stop := context.WithCancel(context.Background())
	var churn sync.WaitGroup
	churn.Add(2)
	go func() { // bob is removed and added again, over and over
		defer churn.Done()
		for ctx.Err() == nil {
			_, _ = r.chat.RemoveMember(ctx, chatActor("ann"), room, "bob")
			_, _ = r.chat.AddMember(ctx, chatActor("ann"), room, "bob")
		}
	}()
	go func() {
		defer churn.Done()
		for ctx.Err() == nil {
			_, _ = r.chat.PostMessage(ctx, chatActor("ann"), room, "x", "")
			time.Sleep(time.Millisecond)
		}
	}()
	for i := range 200 {
		user := "bob"
		if i%3 == 0 {
			user = "ann"
		}
		c := r.dialTransport(user)
		vars := map[string]any{"r": room}
		if i%2 == 0 {
			vars["after"] = cursor
		}
		c.subscribe("subscribe", "s", privPosted, vars)
		c.subscribe("subscribe", "q", `query($r: ID!) { room(id: $r) { name } }`, map[string]any{"r": room})
		if i%4 == 0 {
			time.Sleep(time.Duration(i%7) * time.Millisecond)
		}
		_ = c.conn.UnderlyingConn().Close()
	}
	stop()
	churn.Wait()

	waitFor(t, "every socket and execution to be released", func() bool {
		return r.members() == 0 && r.server.ws.execs.count() == 0 && r.openSockets() == 0
	})
	deadline := time.Now().Add(10 * time.Second)
	for ownGoroutines() > baseline && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := ownGoroutines(); n > baseline {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines outside the NATS server, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
	if got := testutil.ToFloat64(r.server.ws.metrics.operations); got != 0 {
		t.Fatalf("operations gauge = %v, want 0", got)
	}
}

// ownGoroutines counts the goroutines that are not the embedded NATS
// server's: its ephemeral consumers (a room's reads) outlive a test's
// sockets by their inactivity threshold.
func ownGoroutines() int {
	buf := make([]byte, 4<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "nats-server") {
			n++
		}
	}
	return n
}
