package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestHostileInput throws malformed, oversized, deep, wide and silent
// clients at one replica while a normal client is subscribed; each bad
// socket gets its own close code or error, and the normal client receives
// every event, in order.
func TestHostileInput(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 sockets")
	}
	r := newReplica(t, func(o *Options) {
		o.InitTimeout = 500 * time.Millisecond
		o.MaxMessageBytes = 16 << 10
		o.Limits = Limits{MaxDepth: 10, MaxComplexity: 200, MaxVariablesBytes: 8 << 10, MaxOperations: 50}
	})
	room := r.room("hostile")
	normal := r.dialTransport("normal")
	normal.subscribe("subscribe", "live", liveQuery, map[string]any{"r": room})
	waitFor(t, "the normal subscription", func() bool { return r.members() == 1 })

	// The publisher posts all along; the normal client must see each post.
	// It runs off the test's goroutine, so it reports a failed post with
	// t.Error and stops (t.Fatal would not stop the test from here).
	stop := make(chan struct{})
	var posted []string
	var pub sync.WaitGroup
	pub.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			text := fmt.Sprintf("event %d", i)
			if _, err := r.chat.PostMessage(context.Background(), chatActor("publisher"), room, text, ""); err != nil {
				t.Errorf("post %q: %v", text, err)
				return
			}
			posted = append(posted, text)
		}
	})

	var attacks sync.WaitGroup
	attack := func(name string, f func(t *testing.T)) {
		attacks.Add(1)
		go func() {
			defer attacks.Done()
			t.Run(name, f)
		}()
	}
	attack("10,000 malformed frames", func(t *testing.T) {
		c := r.forTest(t).dialTransport("garbage")
		sent := 0
		for i := range 10000 {
			if err := c.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("{not json %d", i))); err != nil {
				break // the server has closed: writes fail
			}
			sent++
		}
		reason := c.expectClose(closeBadRequest, 5*time.Second)
		if !strings.Contains(reason, "not a JSON object") {
			t.Fatalf("close reason %q", reason)
		}
		t.Logf("closed 4400 after the first of %d malformed frames written", sent)
	})
	attack("1,000 sockets without connection_init", func(t *testing.T) {
		const n = 1000
		const initTimeout = 500 * time.Millisecond // as set above
		// Each socket is timed by a reader started as soon as it is open,
		// from just before its dial, which is before the server started
		// its init timeout: a socket may not end sooner than the timeout.
		// The keeper checks every 50 ms; the upper bound leaves seconds
		// for a loaded machine and still fails if sockets were closed one
		// after another (1,000 of them) or not by the init timeout at all.
		const late = 3 * time.Second
		d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 10 * time.Second}
		var closed sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		var shortest, longest time.Duration
		for i := range n {
			dialed := time.Now()
			conn, _, err := d.Dial(r.wsURL, nil)
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				break
			}
			closed.Go(func() {
				defer conn.Close()
				_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
				_, _, err := conn.ReadMessage()
				lived := time.Since(dialed)
				code := -1
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				mu.Lock()
				defer mu.Unlock()
				codes[code]++
				if shortest == 0 || lived < shortest {
					shortest = lived
				}
				longest = max(longest, lived)
			})
		}
		closed.Wait()
		if codes[closeInitTimeout] != n {
			t.Fatalf("close codes %v; want %d × 4408", codes, n)
		}
		if shortest < initTimeout || longest > initTimeout+late {
			t.Fatalf("sockets lived %v to %v from their dial; want between the init timeout %v and %v more", shortest, longest, initTimeout, late)
		}
		t.Logf("all %d closed 4408, %v to %v after their dial", n, shortest.Round(time.Millisecond), longest.Round(time.Millisecond))
	})
	attack("oversized frame", func(t *testing.T) {
		c := r.forTest(t).dialTransport("big")
		_ = c.conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"ping","payload":"`+strings.Repeat("x", 32<<10)+`"}`))
		c.expectClose(websocket.CloseMessageTooBig, 5*time.Second)
	})
	attack("deep, wide and huge operations", func(t *testing.T) {
		c := r.forTest(t).dialTransport("nasty")
		// room → messages → edges → node → room … 18 levels deep.
		deep := `{ room(id: "x") ` + strings.Repeat("{ messages(first: 1) { edges { node { room ", 4) + "{ id }" + strings.Repeat(" } } } }", 4) + " }"
		var wide strings.Builder
		wide.WriteString("{ ")
		for i := range 500 {
			fmt.Fprintf(&wide, "a%d: __typename ", i)
		}
		wide.WriteString("}")
		huge := map[string]any{"r": room, "blob": strings.Repeat("y", 12<<10)}
		for _, op := range []struct {
			id, query string
			vars      map[string]any
			code      string
		}{
			{"deep", deep, nil, codeDepthExceeded},
			{"wide", wide.String(), nil, codeComplexityExceeded},
			{"huge", liveQuery, huge, ""},
		} {
			c.subscribe("subscribe", op.id, op.query, op.vars)
			f := c.expectType("error")
			if f.ID != op.id {
				t.Fatalf("%s: got %s", op.id, f.raw)
			}
			if op.code != "" && firstError(t, f).Extensions["code"] != op.code {
				t.Fatalf("%s: got %s, want %s", op.id, f.raw, op.code)
			}
		}
	})
	attacks.Wait()
	close(stop)
	pub.Wait()

	for i, want := range posted {
		f := normal.expectType("next")
		if f.ID != "live" || !strings.Contains(string(f.Payload), `"`+want+`"`) {
			t.Fatalf("normal client's delivery %d: %s, want %q", i, f.raw, want)
		}
	}
	// Nothing more came: a fence posted now is the next event.
	r.post(room, "publisher", "fence")
	if f := normal.expectType("next"); !strings.Contains(string(f.Payload), `"fence"`) {
		t.Fatalf("after the %d events the normal client got %s, want the fence", len(posted), f.raw)
	}
	t.Logf("the normal client received all %d events in order", len(posted))
}
