package server

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heraldhq/herald/chat"
)

// TestSlowConsumerCloseDropsItsQueue: a slow consumer's close (1013)
// drops what is still queued for it (finish, closeAbrupt): a stalled client
// that reads again gets the close frame right behind what the kernel already
// holds, not its whole queue of stale events first (which a client that
// stays slow would never get through within closeGrace, ending as 1006).
func TestSlowConsumerCloseDropsItsQueue(t *testing.T) {
	const queueMessages = 64
	r := newReplicaListening(t, chat.Options{}, func(o *Options) {
		o.QueueMessages = queueMessages
		o.QueueBytes = 4 << 20
		o.WriteTimeout = time.Minute
		o.PingInterval = time.Minute
	}, func(l net.Listener) net.Listener { return &firstSendBufferSmall{Listener: l} })
	room := r.room("general")
	q := `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`
	slow := r.dialTinyWindow("slow")
	slow.subscribe("subscribe", "s", q, map[string]any{"r": room})
	fast := r.dialTransport("a")
	fast.subscribe("subscribe", "s", q, map[string]any{"r": room})
	waitFor(t, "subscriptions", func() bool { return r.members() == 2 })

	text := strings.Repeat("x", 3900)
	posted := 0
	for ; posted < 400; posted++ {
		r.post(room, "poster", fmt.Sprintf("%05d %s", posted, text))
		for { // pace on the fast client: one event in flight at a time
			f, err := fast.read(10 * time.Second)
			if err != nil {
				t.Fatalf("fast client: %v", err)
			}
			if !f.keepalive() {
				break
			}
		}
		if testutil.ToFloat64(r.server.ws.metrics.slowCloses) >= 1 {
			posted++
			break
		}
	}
	if got := testutil.ToFloat64(r.server.ws.metrics.slowCloses); got != 1 {
		t.Fatalf("slow-consumer closes = %v after %d events, want 1", got, posted)
	}
	// The stalled client reads again at once.
	received := 0
	_ = slow.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var err error
	for {
		var msg []byte
		_, msg, err = slow.conn.ReadMessage()
		if err != nil {
			break
		}
		if strings.Contains(string(msg), `"messagePosted"`) {
			received++
		}
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != closeTryAgainLater {
		t.Errorf("slow client ended with %v, want close 1013", err)
	}
	if limit := posted - queueMessages/2; received > limit {
		t.Errorf("slow client got %d of the %d events before its 1013 (want at most %d): its queue of %d was written before the close frame, not dropped",
			received, posted, limit, queueMessages)
	}
}
