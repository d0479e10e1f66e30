package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestPresenceAssembly: a watch puts a replica's pages back together only
// when the head names the generation of every page it holds; a write
// under way (new pages under the old head, a head whose pages are not all
// in) shows the last whole set, never members leaving; a plain list
// stands alone, whatever pages are left; without its head, a replica's
// pages count for nothing.
func TestPresenceAssembly(t *testing.T) {
	type step struct {
		key   string // after "<topic>.": "a" (the head) or "a.<page>"
		value string // "" deletes the key
		want  []string
		bad   bool // the entry is refused, and changes nothing
	}
	gen2 := []step{ // a's set, [w y z], as three pages of generation 2
		{key: "a.1", value: `{"gen":2,"members":["y"]}`},
		{key: "a.2", value: `{"gen":2,"members":["z"]}`},
		{key: "a", value: `{"gen":2,"pages":3,"members":["w"]}`, want: []string{"w", "y", "z"}},
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"a plain list", []step{
			{key: "a", value: `["x","y"]`, want: []string{"x", "y"}},
			{key: "a", value: `["x"]`, want: []string{"x"}},
			{key: "a"},
		}},
		{"pages written before their head", []step{
			{key: "a", value: `["x"]`, want: []string{"x"}},
			{key: "a.1", value: `{"gen":2,"members":["y"]}`, want: []string{"x"}},
			{key: "a.2", value: `{"gen":2,"members":["z"]}`, want: []string{"x"}},
			{key: "a", value: `{"gen":2,"pages":3,"members":["w"]}`, want: []string{"w", "y", "z"}},
		}},
		{"new pages under the old head keep the old set", append(slices.Clone(gen2), []step{
			{key: "a.1", value: `{"gen":3,"members":["q"]}`, want: []string{"w", "y", "z"}},
			{key: "a", value: `{"gen":3,"pages":2,"members":["p"]}`, want: []string{"p", "q"}},
			{key: "a.2", want: []string{"p", "q"}}, // a page no longer needed
		}...)},
		{"a head before its pages", []step{
			{key: "a", value: `{"gen":5,"pages":2,"members":["x"]}`, want: []string{"x"}},
			{key: "a.1", value: `{"gen":5,"members":["y"]}`, want: []string{"x", "y"}},
		}},
		{"a watch that never saw the set whole takes what there is", []step{
			{key: "a.1", value: `{"gen":6,"members":["y2"]}`},
			{key: "a.3", value: `{"gen":6,"members":["beyond"]}`},
			{key: "a", value: `{"gen":5,"pages":3,"members":["x"]}`, want: []string{"x", "y2"}},
		}},
		{"a lost page keeps the last whole set", append(slices.Clone(gen2), []step{
			{key: "a.1", want: []string{"w", "y", "z"}},
			{key: "a.1", value: `{"gen":2,"members":["y"]}`, want: []string{"w", "y", "z"}},
		}...)},
		{"a plain list ignores the pages left", append(slices.Clone(gen2), []step{
			{key: "a", value: `["x"]`, want: []string{"x"}},
			{key: "a.1", want: []string{"x"}},
			{key: "a.2", want: []string{"x"}},
		}...)},
		{"without its head, pages count for nothing", append(slices.Clone(gen2), []step{
			{key: "a"},
			{key: "a.1"},
			{key: "a.1", value: `{"gen":9,"members":["y"]}`},
		}...)},
		{"unreadable entries change nothing", append(slices.Clone(gen2), []step{
			{key: "a", value: `{"gen":7,"pages":0,"members":["x"]}`, bad: true, want: []string{"w", "y", "z"}},
			{key: "a", value: `not json`, bad: true, want: []string{"w", "y", "z"}},
			{key: "a.1", value: `["y"]`, bad: true, want: []string{"w", "y", "z"}},
			{key: "a.x", value: `{"gen":2,"members":["y"]}`, bad: true, want: []string{"w", "y", "z"}},
			{key: "a.01", value: `{"gen":2,"members":["y"]}`, bad: true, want: []string{"w", "y", "z"}},
			{key: "a.0", value: `{"gen":2,"members":["y"]}`, bad: true, want: []string{"w", "y", "z"}},
			{key: "a.1.2", value: `{"gen":2,"members":["y"]}`, bad: true, want: []string{"w", "y", "z"}},
		}...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newPresenceAssembly()
			// Another replica's keys, to show each replica's are its own.
			if err := a.apply("b", jetstream.KeyValuePut, []byte(`["bob"]`)); err != nil {
				t.Fatal(err)
			}
			for i, st := range tt.steps {
				op := jetstream.KeyValuePut
				if st.value == "" {
					op = jetstream.KeyValueDelete
				}
				err := a.apply(st.key, op, []byte(st.value))
				if (err != nil) != st.bad {
					t.Fatalf("step %d, %s = %q: err %v, want refused %v", i, st.key, st.value, err, st.bad)
				}
				got, ok := a.sets["a"]
				if ok != (st.want != nil) || !slices.Equal(got, st.want) {
					t.Fatalf("step %d, %s = %q: a's set %q (%v), want %q", i, st.key, st.value, got, ok, st.want)
				}
				if b := a.sets["b"]; !slices.Equal(b, []string{"bob"}) {
					t.Fatalf("step %d: b's set %q", i, b)
				}
			}
		})
	}
}

// TestPresenceEncodePages: a list that fits is one plain JSON list, as
// every version reads; a longer one is pages within the budget, which put
// back together (pages first, then the head) give the list.
func TestPresenceEncodePages(t *testing.T) {
	tests := []struct {
		name    string
		members int
		length  int // bytes of each member
		budget  int
		pages   int // 0: more than one
	}{
		{"fits", 10, 20, 4096, 1},
		{"fits exactly", 2, 3, len(`["m00","m01"]`), 1},
		{"a byte over", 2, 3, len(`["m00","m01"]`) - 1, 2},
		{"many pages", 5000, 100, 64 << 10, 0},
		{"escaped members", 2000, 50, 16 << 10, 0}, // '<' is encoded as \u003c
		{"one member per page", 5, 300, 300 + presenceEnvelope, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := make([]string, tt.members)
			for i := range members {
				members[i] = fmt.Sprintf("m%02d", i)
				if tt.name == "escaped members" {
					members[i] += "<&>"
				}
				members[i] += strings.Repeat("x", max(tt.length-len(members[i]), 0))
			}
			slices.Sort(members)
			values := encodePresence(members, tt.budget, 42)
			if tt.pages != 0 && len(values) != tt.pages || tt.pages == 0 && len(values) < 2 {
				t.Fatalf("%d pages, want %d (0: more than one)", len(values), tt.pages)
			}
			if len(values) == 1 && values[0][0] != '[' {
				t.Fatalf("a list that fits is written as %.40s..., not a plain list", values[0])
			}
			a := newPresenceAssembly()
			for page := len(values) - 1; page >= 0; page-- {
				// A budget below a page's envelope and one member is
				// overrun, by one member per page.
				if len(values[page]) > max(tt.budget, presenceEnvelope+tt.length+8) {
					t.Errorf("page %d of %d bytes, over the budget of %d", page, len(values[page]), tt.budget)
				}
				key := "a"
				if page > 0 {
					key = fmt.Sprintf("a.%d", page)
				}
				if err := a.apply(key, jetstream.KeyValuePut, values[page]); err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
			}
			if got := a.sets["a"]; !slices.Equal(got, members) {
				t.Fatalf("put back together: %d members, want %d", len(got), len(members))
			}
		})
	}
}

// TestPresencePagesOverMaxPayload: a replica whose members on a topic are
// several times the server's max_payload writes them in pages, and a
// watcher on another replica sees the whole set, then every change of it,
// as it grows, shrinks to fewer pages and back to one key (its stale pages
// deleted), and empties; while a set changes from one to the next, no
// report leaves out a member present in both (as a set half written would
// show). A watch started later starts from the whole set too.
func TestPresencePagesOverMaxPayload(t *testing.T) {
	const maxPayload = 64 << 10
	url := startNATSWith(t, true, func(o *server.Options) { o.MaxPayload = maxPayload })
	la, lb := openLog(t, Options{URLs: []string{url}}), openLog(t, Options{URLs: []string{url}})
	if got := la.nc.MaxPayload(); got != maxPayload {
		t.Fatalf("max_payload %d, want %d", got, maxPayload)
	}
	a := openPresence(t, la, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
	b := openPresence(t, lb, PresenceOptions{Replica: "b", Coalesce: 20 * time.Millisecond})
	kv, err := rawJS(t, url).KeyValue(testCtx(t, 5*time.Second), a.opts.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	member := func(i int) string { // 250 bytes, as long user IDs
		m := fmt.Sprintf("member%05d-", i)
		return m + strings.Repeat("x", 250-len(m))
	}
	b.Enter("room", member(0)) // present through both replicas: counted once
	seen := watchPresence(t, b, "room")
	seen.until(t, 5*time.Second, member(0))

	steps := []struct {
		name  string
		n     int // a's members: member(0) to member(n-1)
		pages int // 0: more than one
	}{
		{"grows over max_payload", 1200, 0},
		{"grows by more pages", 2000, 0},
		{"shrinks to fewer pages", 700, 0},
		{"shrinks to one key", 20, 1},
		{"grows again", 900, 0},
		{"empties", 0, 0},
	}
	have := 0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			// Every report is between the set before and the set after:
			// it never lacks a member of both.
			floor := []string{member(0)}
			for i := 0; i < min(have, st.n); i++ {
				floor = append(floor, member(i))
			}
			for i := have; i < st.n; i++ {
				a.Enter("room", member(i))
			}
			for i := st.n; i < have; i++ {
				a.Leave("room", member(i))
			}
			have = st.n
			want := []string{member(0)}
			for i := range st.n {
				want = append(want, member(i))
			}
			slices.Sort(want)
			want = slices.Compact(want)
			slices.Sort(floor)
			floor = slices.Compact(floor)
			deadline := time.After(20 * time.Second)
			for done := false; !done; {
				select {
				case m := <-seen.calls:
					for _, f := range floor {
						if _, found := slices.BinarySearch(m, f); !found {
							t.Fatalf("a report of %d members lacks %.16s..., present before and after", len(m), f)
						}
					}
					done = slices.Equal(m, want)
				case <-deadline:
					t.Fatalf("the watcher never saw the %d members", len(want))
				}
			}

			pages := 0
			if st.n > 0 {
				pages = len(encodePresence(want[:st.n], presencePageBudget(maxPayload), 1))
				if st.pages == 0 && pages < 2 || st.pages != 0 && pages != st.pages {
					t.Fatalf("the test's set takes %d pages, want %d (0: more than one)", pages, st.pages)
				}
			}
			// The pages no longer needed are deleted after the head.
			waitFor(t, 5*time.Second, fmt.Sprintf("a's keys on room to be %d", pages), func() bool {
				return len(roomKeys(t, kv, "a")) == pages
			})
			if st.n > 0 {
				watchPresence(t, b, "room").until(t, 10*time.Second, want...)
			}
			if pages == 1 && st.n > 0 {
				// One key holds a plain list: what earlier versions read.
				e, err := kv.Get(testCtx(t, 5*time.Second), "room.a")
				if err != nil {
					t.Fatal(err)
				}
				var list []string
				if err := json.Unmarshal(e.Value(), &list); err != nil || !slices.Equal(list, want[:st.n]) {
					t.Fatalf("room.a holds %.60s... (%v), want the plain list of a's members", e.Value(), err)
				}
			}
		})
	}

	// Close deletes every key, pages too.
	for i := range 1500 {
		a.Enter("room", member(i))
	}
	seen.until(t, 20*time.Second, func() []string {
		var all []string
		for i := range 1500 {
			all = append(all, member(i))
		}
		return all
	}()...)
	if err := a.Close(testCtx(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	seen.until(t, 5*time.Second, member(0))
	if keys := roomKeys(t, kv, "a"); len(keys) != 0 {
		t.Errorf("keys %q left after Close", keys)
	}
}

// roomKeys lists replica's keys on the topic room, head and pages.
func roomKeys(t *testing.T, kv jetstream.KeyValue, replica string) []string {
	t.Helper()
	lister, err := kv.ListKeysFiltered(testCtx(t, 5*time.Second), "room."+replica, "room."+replica+".>")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys
}

// watchSlow is a members bucket whose watches take a while to set up (as
// on a NATS server just back) and that counts how many are set up at once.
type watchSlow struct {
	jetstream.KeyValue
	mu                    sync.Mutex
	calls, inFlight, peak int
}

func (w *watchSlow) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	w.mu.Lock()
	w.calls++
	w.inFlight++
	w.peak = max(w.peak, w.inFlight)
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inFlight--
		w.mu.Unlock()
	}()
	time.Sleep(20 * time.Millisecond) // the set-up's latency, not a synchronization
	return w.KeyValue.Watch(ctx, keys, opts...)
}

// counts returns how many watches were set up, and at most how many at once.
func (w *watchSlow) counts() (calls, peak int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls, w.peak
}

// TestPresenceRewatchIsPaced: after an outage every watch of a replica
// watches anew (rewatchMembers); no more than rewatchConcurrency of them
// set up a watch at once, however many there are, and each goes on
// reporting. Closing the watches while they wait for their turn returns
// at once.
func TestPresenceRewatchIsPaced(t *testing.T) {
	const watches = 40
	for _, closeEarly := range []bool{false, true} {
		t.Run(fmt.Sprintf("close while waiting %v", closeEarly), func(t *testing.T) {
			url := startNATS(t, true)
			l := openLog(t, Options{URLs: []string{url}})
			p := openPresence(t, l, PresenceOptions{Replica: "a", Coalesce: 20 * time.Millisecond})
			p.Enter("room", "alice")
			p.mu.Lock()
			slow := &watchSlow{KeyValue: p.members}
			p.members = slow
			p.mu.Unlock()
			var (
				seen []*presenceSeen
				ws   []*PresenceWatch
			)
			for range watches {
				s := &presenceSeen{calls: make(chan []string, 64)}
				w, err := p.Watch(t.Context(), "room", func(m []string) { s.calls <- m })
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(w.Close)
				seen, ws = append(seen, s), append(ws, w)
				s.until(t, 5*time.Second, "alice")
			}

			start := time.Now()
			p.rewatchMembers()
			if closeEarly {
				waitFor(t, 5*time.Second, "a rewatch", func() bool { calls, _ := slow.counts(); return calls > watches })
				for _, w := range ws {
					w.Close()
				}
				if d := time.Since(start); d > 3*time.Second {
					t.Fatalf("closing %d watches waiting to watch anew took %s", watches, d)
				}
				return
			}
			waitFor(t, 15*time.Second, "every watch to watch anew", func() bool { calls, _ := slow.counts(); return calls == 2*watches })
			_, peak := slow.counts()
			t.Logf("%d watches watched anew in %s, at most %d at once", watches, time.Since(start), peak)
			if peak > rewatchConcurrency {
				t.Fatalf("%d watches set up at once, want at most %d", peak, rewatchConcurrency)
			}
			p.Enter("room", "bob")
			for _, s := range seen {
				s.until(t, 5*time.Second, "alice", "bob")
			}
		})
	}
}
