package server

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// growthTestPresence counts, per topic and user, Enter minus Leave.
type growthTestPresence struct {
	mu  sync.Mutex
	net map[string]int
}

func (p *growthTestPresence) Enter(topic, user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.net[topic+"|"+user]++
}

func (p *growthTestPresence) Leave(topic, user string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.net[topic+"|"+user]--
}

func (p *growthTestPresence) present() (n int, who []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range p.net {
		if v != 0 {
			n++
			if len(who) < 5 {
				who = append(who, fmt.Sprintf("%s=%d", k, v))
			}
		}
	}
	return n, who
}

// TestVanishedSocketsLeaveNothingBehind drives many distinct users through the
// WebSocket paths (plain, resumed, legacy; closed abruptly or completed)
// and checks that every per-replica structure empties once they are gone.
func TestVanishedSocketsLeaveNothingBehind(t *testing.T) {
	pres := &growthTestPresence{net: map[string]int{}}
	r := newReplica(t, func(o *Options) { o.Presence = pres })
	room := r.room("general")
	query := `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`
	cursor := graphCursor(t, r, r.post(room, "poster", "m0"))
	r.post(room, "poster", "m1")
	baseSocks, basePlaces, baseParked := r.openSockets(), r.placesTaken(), 0
	if r.server.ws.parker != nil {
		baseParked = r.server.ws.parker.registered()
	}

	const n = 12
	var clients []*wsClient
	for i := range n {
		user := fmt.Sprintf("u%03d", i)
		var c *wsClient
		typ := "subscribe"
		if i%3 == 2 {
			c, typ = r.dialLegacy(user), "start"
		} else {
			c = r.dialTransport(user)
		}
		vars := map[string]any{"r": room}
		if i%2 == 1 {
			vars["after"] = cursor
		}
		c.subscribe(typ, "s", query, vars)
		clients = append(clients, c)
	}
	waitFor(t, "every subscriber present", func() bool { got, _ := pres.present(); return got == n })
	time.Sleep(100 * time.Millisecond)
	r.post(room, "poster", "m2")
	for i, c := range clients {
		// Every subscriber gets m2 (resumed ones get m1 first).
		for {
			f := c.next()
			if f.Type == "error" {
				t.Fatalf("client %d: %s", i, f.raw)
			}
			if strings.Contains(f.raw, "m2") {
				break
			}
		}
	}
	if got, _ := pres.present(); got != n {
		t.Logf("present while subscribed: %d (want %d)", got, n)
	}
	for i, c := range clients {
		if i%4 == 0 {
			typ := "complete"
			if i%3 == 2 {
				typ = "stop"
			}
			c.send(map[string]any{"id": "s", "type": typ})
		}
		_ = c.conn.Close() // vanish: no close frame
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p, who := pres.present()
		execs := r.server.ws.execs.count()
		socks := r.openSockets()
		places := r.placesTaken()
		r.server.ws.keeper.mu.Lock()
		pending, live := len(r.server.ws.keeper.pending), 0
		for _, c := range r.server.ws.keeper.live.conns {
			if c != nil {
				live++
			}
		}
		r.server.ws.keeper.mu.Unlock()
		parked := 0
		if r.server.ws.parker != nil {
			parked = r.server.ws.parker.registered()
		}
		if p == 0 && execs == 0 && socks == baseSocks && places == basePlaces && pending == 0 && live == baseSocks && parked <= baseParked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d clients left: present=%d %v execs=%d sockets=%d places=%d keeper pending=%d live=%d parker=%d",
				n, p, who, execs, socks, places, pending, live, parked)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
