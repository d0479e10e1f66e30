package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/chat"
)

type event struct {
	text, cursor string
}

// readEvents reads n messagePosted events for id, answering nothing else.
func readEvents(t *testing.T, c *wsClient, id string, n int) []event {
	t.Helper()
	out, err := collectEvents(c, id, n)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// collectEvents is readEvents for goroutines other than the test's: it
// returns what went wrong instead of failing the test.
func collectEvents(c *wsClient, id string, n int) ([]event, error) {
	out := make([]event, 0, n)
	for len(out) < n {
		f, err := c.read(5 * time.Second)
		if err != nil {
			return out, fmt.Errorf("waiting for event %d of %s: %w", len(out), id, err)
		}
		if f.keepalive() {
			continue
		}
		if f.ID != id || (f.Type != "next" && f.Type != "data") {
			return out, fmt.Errorf("got %s while waiting for event %d of %s", f.raw, len(out), id)
		}
		var p struct {
			Data struct {
				MessagePosted struct{ Text string }
			}
			Errors     []json.RawMessage
			Extensions struct{ Cursor string }
		}
		if err := json.Unmarshal(f.Payload, &p); err != nil || len(p.Errors) > 0 {
			return out, fmt.Errorf("event %d: %s (%v)", len(out), f.raw, err)
		}
		out = append(out, event{p.Data.MessagePosted.Text, p.Extensions.Cursor})
	}
	return out, nil
}

// TestResumeSeamIsGapFree resumes subscriptions from several cursors while
// a publisher keeps posting: each receives exactly the messages after its
// cursor, in order, with no gap and no duplicate where replay meets live.
func TestResumeSeamIsGapFree(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	const total = 300
	query := `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`

	first := r.dialTransport("reader")
	first.subscribe("subscribe", "live", query, map[string]any{"r": room})
	waitFor(t, "the first subscription", func() bool { return r.members() == 1 })

	var posting sync.WaitGroup
	posting.Go(func() {
		for i := range total {
			if _, err := r.chat.PostMessage(context.Background(), chat.Actor{ID: "poster"}, room, fmt.Sprintf("m%03d", i), ""); err != nil {
				t.Errorf("post %d: %v", i, err)
				return
			}
		}
	})

	live := readEvents(t, first, "live", total)
	for i, e := range live {
		if e.text != fmt.Sprintf("m%03d", i) {
			t.Fatalf("live subscriber: event %d is %q", i, e.text)
		}
	}
	posting.Wait()

	// Resume from cursors taken at several points, on both protocols.
	// (TestResumeWhilePublishing resumes while events keep arriving.)
	for _, from := range []int{0, 57, 150, 298} {
		for _, legacy := range []bool{false, true} {
			name := fmt.Sprintf("after m%03d legacy=%v", from, legacy)
			t.Run(name, func(t *testing.T) {
				r := r.forTest(t)
				c, typ := r.dialTransport("resumer"), "subscribe"
				if legacy {
					c, typ = r.dialLegacy("resumer"), "start"
				}
				c.subscribe(typ, "r", query, map[string]any{"r": room, "after": live[from].cursor})
				got := readEvents(t, c, "r", total-from-1)
				for i, e := range got {
					if want := fmt.Sprintf("m%03d", from+1+i); e.text != want {
						t.Fatalf("resumed event %d is %q, want %q", i, e.text, want)
					}
				}
			})
		}
	}
}

// TestResumeWhilePublishing resumes while events keep arriving during the
// replay: the replay and the live tail must join without gap or duplicate.
func TestResumeWhilePublishing(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	query := `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`
	const before, during = 200, 400
	var cursor string
	for i := range before {
		m := r.post(room, "poster", fmt.Sprintf("m%03d", i))
		if i == 9 {
			cursor = graphCursor(t, r, m)
		}
	}
	var posting sync.WaitGroup
	posting.Go(func() {
		for i := before; i < before+during; i++ {
			if _, err := r.chat.PostMessage(context.Background(), chat.Actor{ID: "poster"}, room, fmt.Sprintf("m%03d", i), ""); err != nil {
				t.Errorf("post %d: %v", i, err)
				return
			}
		}
	})
	// Subscribe from several sockets at staggered moments while posting.
	var wg sync.WaitGroup
	for k := range 4 {
		c := r.dialTransport(fmt.Sprintf("resumer%d", k))
		time.Sleep(time.Duration(k) * 5 * time.Millisecond)
		c.subscribe("subscribe", "r", query, map[string]any{"r": room, "after": cursor})
		wg.Go(func() {
			got, err := collectEvents(c, "r", before+during-10)
			if err != nil {
				t.Errorf("resumer %d: %v", k, err)
				return
			}
			for i, e := range got {
				if want := fmt.Sprintf("m%03d", 10+i); e.text != want {
					t.Errorf("resumer %d: event %d is %q, want %q", k, i, e.text, want)
					return
				}
			}
		})
	}
	wg.Wait()
	posting.Wait()
}

// graphCursor is the cursor a subscriber would have received for m.
func graphCursor(t *testing.T, r *replica, m chat.Message) string {
	t.Helper()
	c := r.dialTransport("probe")
	c.send(map[string]any{"id": "q", "type": "subscribe", "payload": map[string]any{
		"query": `query($id: ID!) { message(id: $id) { cursor } }`, "variables": map[string]any{"id": m.ID},
	}})
	var out struct{ Message struct{ Cursor string } }
	c.next().data(t, &out)
	return out.Message.Cursor
}

func TestResumeRejectsBadCursors(t *testing.T) {
	r := newReplicaWith(t, chat.Options{History: 3, ApplyTimeout: 300 * time.Millisecond}, nil)
	room := r.room("general")
	expired := graphCursor(t, r, r.post(room, "poster", "m0"))
	for i := 1; i < 6; i++ {
		r.post(room, "poster", fmt.Sprintf("m%d", i)) // history 3: m0 is evicted, and its cursor with it
	}
	query := `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`
	tests := []struct {
		name, cursor, code string
	}{
		{"malformed", "not a cursor", "BAD_USER_INPUT"},
		{"another epoch", "aDE6MTpx", "CURSOR_EXPIRED"}, // h1:1:q — epoch 1
		{"beyond retention", expired, "CURSOR_EXPIRED"},
		{"past the room's last event", futureCursor(t, expired), "BAD_USER_INPUT"}, // not one of the room's: retrying could never help
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := r.forTest(t)
			c := r.dialTransport("resumer")
			c.subscribe("subscribe", "r", query, map[string]any{"r": room, "after": tt.cursor})
			f := c.next()
			var p struct {
				Errors []struct {
					Message    string
					Extensions struct{ Code string }
				}
			}
			_ = json.Unmarshal(f.Payload, &p)
			if f.Type != "next" || len(p.Errors) != 1 || p.Errors[0].Extensions.Code != tt.code {
				t.Fatalf("got %s, want an error with code %s", f.raw, tt.code)
			}
			if f := c.next(); f.Type != "complete" {
				t.Fatalf("got %s, want complete after the error", f.raw)
			}
		})
	}
}

// futureCursor returns a cursor of the same epoch as sample for a
// position the replica has not reached.
func futureCursor(t *testing.T, sample string) string {
	t.Helper()
	raw, err := decodeB64(sample)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(raw, ":") // h2:<epoch>:<position>:<what it is for>
	if len(f) != 4 || f[0] != "h2" {
		t.Fatalf("unexpected cursor format %q", raw)
	}
	f[2] = "zzzzz" // position 60466175 in base 36
	return encodeB64(strings.Join(f, ":"))
}

// TestResumedSubscribersJoinTheSharedExecution resumes subscribers from
// different cursors while a publisher posts: each receives every message
// after its cursor exactly once, in order, and once caught up all of them
// continue on the one shared execution of the plain subscription. Only a
// cursor written into the document itself keeps a private execution.
func TestResumedSubscribersJoinTheSharedExecution(t *testing.T) {
	r := newReplica(t, nil)
	room := r.room("general")
	query := `subscription($r: ID!, $after: String) { messagePosted(roomId: $r, after: $after) { text } }`
	const before, during = 60, 150
	cursors := map[int]string{}
	for i := range before {
		m := r.post(room, "poster", fmt.Sprintf("m%03d", i))
		if i%20 == 9 {
			cursors[i] = graphCursor(t, r, m)
		}
	}

	plain := r.dialTransport("plain")
	plain.subscribe("subscribe", "s", query, map[string]any{"r": room, "after": nil})
	other := r.dialTransport("other")
	other.subscribe("subscribe", "s", `subscription($r: ID!) { messagePosted(roomId: $r) { text } }`, map[string]any{"r": room})
	waitFor(t, "plain subscribers", func() bool { return r.members() == 2 })
	if n := r.server.ws.execs.count(); n != 2 {
		// Different documents do not share; a null cursor shares with none.
		t.Fatalf("%d executions for two plain subscriptions of two documents, want 2", n)
	}

	var posting sync.WaitGroup
	posting.Go(func() {
		for i := before; i < before+during; i++ {
			if _, err := r.chat.PostMessage(context.Background(), chat.Actor{ID: "poster"}, room, fmt.Sprintf("m%03d", i), ""); err != nil {
				t.Errorf("post %d: %v", i, err)
				return
			}
		}
	})
	var wg sync.WaitGroup
	check := func(name string, c *wsClient, from int) {
		wg.Go(func() {
			got, err := collectEvents(c, "r", before+during-from-1)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			for i, e := range got {
				if want := fmt.Sprintf("m%03d", from+1+i); e.text != want {
					t.Errorf("%s: event %d is %q, want %q", name, i, e.text, want)
					return
				}
			}
		})
	}
	var resumers []*wsClient
	for from, cursor := range cursors {
		c := r.dialTransport(fmt.Sprintf("resumer%d", from))
		resumers = append(resumers, c)
		c.subscribe("subscribe", "r", query, map[string]any{"r": room, "after": cursor})
		check(fmt.Sprintf("resumer from m%03d", from), c, from)
	}
	inline := r.dialTransport("inline")
	inline.subscribe("subscribe", "r", fmt.Sprintf(`subscription($r: ID!) { messagePosted(roomId: $r, after: %q) { text } }`, cursors[9]),
		map[string]any{"r": room})
	check("inline cursor", inline, 9)
	wg.Wait()
	posting.Wait()
	readEvents(t, plain, "s", during)

	// At the first live event after catching up, the resumers leave their
	// replays for the shared execution of the plain subscription; the
	// inline cursor cannot.
	r.post(room, "poster", "after all")
	waitFor(t, "replays to retire", func() bool { return r.server.ws.execs.count() == 3 })
	if got := readEvents(t, plain, "s", 1); got[0].text != "after all" {
		t.Fatalf("plain subscriber got %q", got[0].text)
	}
	for i, c := range append(resumers, inline) {
		if got := readEvents(t, c, "r", 1); got[0].text != "after all" {
			t.Fatalf("resumer %d got %q after catching up", i, got[0].text)
		}
	}
}
