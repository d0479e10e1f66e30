package server

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
	"github.com/heraldhq/herald/graph"
	"github.com/heraldhq/herald/pubsub"
)

// TestUserWhoLeftDuringAnOutageNeverReappears: a replica cut off from
// NATS for longer than the TTL is taken as gone, with its users; a user
// who left it meanwhile must not be shown present again when it comes
// back. Its heartbeat used to go out before the member keys its failed
// writes left dirty, so the others merged those keys as they were before
// the outage until the retried write landed.
func TestUserWhoLeftDuringAnOutageNeverReappears(t *testing.T) {
	const ttl = 2 * time.Second
	shown := ttl
	quiet := chat.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a := startReplica(t, pubsub.Options{ListenAddr: "127.0.0.1:0"}, quiet, nil, nil, &replicaPresence{
		tracker: pubsub.PresenceOptions{Replica: "a", TTL: ttl},
		graph:   graph.Options{PresenceWindow: 250 * time.Millisecond},
	})
	link := newNATSProxy(t, a.log.ClientURL())
	b := startReplica(t, pubsub.Options{URLs: []string{link.url()}}, quiet, nil, nil, &replicaPresence{
		tracker: pubsub.PresenceOptions{Replica: "b", TTL: ttl},
		graph:   graph.Options{PresenceWindow: 250 * time.Millisecond},
	})
	room := a.room("lobby")
	waitFor(t, "b to know the room", func() bool { _, ok := b.chat.RoomInfo(room); return ok })

	w := watchRoomPresence(a, "watcher", room)
	w.first("watcher")
	stay := b.dialTransport("stay")
	stay.subscribe("subscribe", "1", presenceQuery, map[string]any{"r": room})
	gone := b.dialTransport("gone")
	gone.subscribe("subscribe", "1", presenceQuery, map[string]any{"r": room})
	w.until(5*time.Second, "gone", "stay", "watcher")

	link.cut()
	time.Sleep(200 * time.Millisecond)
	_ = gone.conn.Close() // gone's last subscription ends while b is cut off
	w.until(shown+5*time.Second, "watcher")

	link.restore()
	_, seen := w.until(10*time.Second, "stay", "watcher")
	// Read what follows for a while: gone must not show up at all.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		f, err := w.c.read(time.Until(deadline))
		if err != nil {
			break
		}
		if f.Type == "next" {
			seen = append(seen, presenceEvent{Kind: "raw:" + string(f.Payload)})
		}
	}
	for _, e := range seen {
		if slices.Contains(e.Users, "gone") || e.User == "gone" {
			t.Fatalf("gone, who left during b's outage, was shown present again when b came back: %+v", seen)
		}
	}
	t.Logf("events after b came back: %+v", seen)
}
