package server

import (
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
	stop := make(chan struct{})
	var posted []string
	var pub sync.WaitGroup
	pub.Add(1)
	go func() {
		defer pub.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			text := fmt.Sprintf("event %d", i)
			r.post(room, "publisher", text)
			posted = append(posted, text)
		}
	}()

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
		conns := make([]*websocket.Conn, 0, n)
		d := websocket.Dialer{Subprotocols: []string{subprotocolTransportWS}, HandshakeTimeout: 10 * time.Second}
		opened := time.Now()
		for range n {
			conn, _, err := d.Dial(r.wsURL, nil)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			conns = append(conns, conn)
		}
		openedAll := time.Since(opened)
		var closed sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		var latest time.Duration
		for _, conn := range conns {
			closed.Add(1)
			go func() {
				defer closed.Done()
				defer conn.Close()
				_ = conn.SetReadDeadline(time.Now().Add(15 * time.Second))
				_, _, err := conn.ReadMessage()
				code := -1
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				mu.Lock()
				codes[code]++
				latest = max(latest, time.Since(opened))
				mu.Unlock()
			}()
		}
		closed.Wait()
		if codes[closeInitTimeout] != n {
			t.Fatalf("close codes %v; want %d × 4408", codes, n)
		}
		// The timeout is 500ms, checked every 50ms (a tenth of it).
		if bound := openedAll + time.Second; latest > bound {
			t.Fatalf("the last socket closed %v after the first opened; opening took %v, so want at most %v", latest, openedAll, bound)
		}
		t.Logf("all %d closed 4408; the last %v after the first was opened", n, latest.Round(time.Millisecond))
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
	t.Logf("the normal client received all %d events in order", len(posted))
	normal.expectSilence(100 * time.Millisecond)
}
