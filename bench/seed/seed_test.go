package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLayoutValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Layout
		ok   bool
	}{
		{"the issue's", Layout{Rooms: 10000, Messages: 1000000, BigRooms: 50, BigMessages: 10000}, true},
		{"no big rooms", Layout{Rooms: 10, Messages: 95}, true},
		{"no messages", Layout{Rooms: 3}, true},
		{"all big, exact", Layout{Rooms: 2, Messages: 20, BigRooms: 2, BigMessages: 10}, true},
		{"all big, messages left over", Layout{Rooms: 2, Messages: 21, BigRooms: 2, BigMessages: 10}, false},
		{"no rooms", Layout{Rooms: 0, Messages: 0}, false},
		{"more big rooms than rooms", Layout{Rooms: 2, Messages: 30, BigRooms: 3, BigMessages: 10}, false},
		{"big rooms hold more than all", Layout{Rooms: 10, Messages: 99, BigRooms: 1, BigMessages: 100}, false},
		{"negative", Layout{Rooms: 10, Messages: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.l.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestLayoutCounts(t *testing.T) {
	for _, tc := range []struct {
		name string
		l    Layout
		want []int
	}{
		{"even", Layout{Rooms: 4, Messages: 8}, []int{2, 2, 2, 2}},
		{"remainder to the first small rooms", Layout{Rooms: 4, Messages: 10}, []int{3, 3, 2, 2}},
		{"big first", Layout{Rooms: 5, Messages: 27, BigRooms: 2, BigMessages: 10}, []int{10, 10, 3, 2, 2}},
		{"all big", Layout{Rooms: 2, Messages: 14, BigRooms: 2, BigMessages: 7}, []int{7, 7}},
		{"fewer messages than rooms", Layout{Rooms: 4, Messages: 2}, []int{1, 1, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.Counts(); !slices.Equal(got, tc.want) {
				t.Fatalf("Counts() = %v, want %v", got, tc.want)
			}
		})
	}
	// The layout: 50 rooms of 10,000, the other 500,000 over 9,950 rooms.
	l := Layout{Rooms: 10000, Messages: 1000000, BigRooms: 50, BigMessages: 10000}
	counts := l.Counts()
	sum, hist := 0, map[int]int{}
	for _, c := range counts {
		sum += c
		hist[c]++
	}
	if sum != 1000000 || hist[10000] != 50 || hist[51]+hist[50] != 9950 || hist[51] != 500000-50*9950 {
		t.Fatalf("sum %d, sizes %v", sum, hist)
	}
}

func TestJobs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		counts []int
		batch  int
		want   [][]Job
	}{
		{"per room, in order", []int{5, 2, 0, 3}, 2, [][]Job{
			{{0, 0, 2}, {0, 2, 2}, {0, 4, 1}},
			{{1, 0, 2}},
			nil,
			{{3, 0, 2}, {3, 2, 1}},
		}},
		{"batch of one", []int{2, 1}, 1, [][]Job{{{0, 0, 1}, {0, 1, 1}}, {{1, 0, 1}}}},
		{"batch larger than rooms", []int{3, 1}, 50, [][]Job{{{0, 0, 3}}, {{1, 0, 1}}}},
		{"nothing", []int{0, 0}, 5, [][]Job{nil, nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Jobs(tc.counts, tc.batch)
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Fatalf("Jobs(%v, %d) = %v, want %v", tc.counts, tc.batch, got, tc.want)
			}
		})
	}
	// Every message exactly once, in every layout.
	counts := Layout{Rooms: 37, Messages: 2000, BigRooms: 3, BigMessages: 300}.Counts()
	for _, batch := range []int{1, 7, 50, 200} {
		for room, jobs := range Jobs(counts, batch) {
			next := 0
			for _, j := range jobs {
				if j.Room != room || j.From != next || j.N < 1 || j.N > batch {
					t.Fatalf("batch %d, room %d: job %+v after %d", batch, room, j, next)
				}
				next += j.N
			}
			if next != counts[room] {
				t.Fatalf("batch %d, room %d: %d of %d messages", batch, room, next, counts[room])
			}
		}
	}
}

func TestPostBatch(t *testing.T) {
	req := postBatch("r1", []Post{{Text: "hello", Key: "k/0"}, {Text: `a "quoted" \ text`}, {Text: "é\n<", Key: "k/2"}})
	want := `mutation($r: ID!) {` +
		` m0: postMessage(roomId: $r, text: "hello", idempotencyKey: "k/0") { id }` +
		` m1: postMessage(roomId: $r, text: "a \"quoted\" \\ text") { id }` +
		` m2: postMessage(roomId: $r, text: "é\n\u003c", idempotencyKey: "k/2") { id } }`
	if req.Query != want {
		t.Fatalf("query\n got %s\nwant %s", req.Query, want)
	}
	if req.Fields != 3 || req.Prefix != "m" || req.Variables["r"] != "r1" {
		t.Fatalf("request %+v", req)
	}
	body, _ := json.Marshal(req)
	if !strings.Contains(string(body), `"variables":{"r":"r1"}`) || strings.Contains(string(body), "Fields") {
		t.Fatalf("body %s", body)
	}
	c := createBatch([]string{"a", "b"})
	if c.Query != `mutation { c0: createRoom(name: "a") { id } c1: createRoom(name: "b") { id } }` || c.Fields != 2 || c.Prefix != "c" {
		t.Fatalf("createBatch: %+v", c)
	}
}

func TestParseResponse(t *testing.T) {
	req := request{Fields: 2, Prefix: "m"}
	for _, tc := range []struct {
		name      string
		status    int
		body      string
		ids       []string
		transient bool
		code      string
	}{
		{"ok", 200, `{"data":{"m0":{"id":"a"},"m1":{"id":"b"}}}`, []string{"a", "b"}, false, ""},
		{"a field missing", 200, `{"data":{"m0":{"id":"a"}}}`, nil, false, ""},
		{"unavailable", 200, `{"errors":[{"message":"log down","extensions":{"code":"UNAVAILABLE"}}],"data":null}`, nil, true, "UNAVAILABLE"},
		{"rate limited", 200, `{"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED"}}]}`, nil, true, "RATE_LIMITED"},
		{"not found", 200, `{"errors":[{"message":"no room","extensions":{"code":"NOT_FOUND"}}],"data":null}`, nil, false, "NOT_FOUND"},
		{"one transient one not", 200, `{"errors":[{"extensions":{"code":"UNAVAILABLE"}},{"extensions":{"code":"BAD_USER_INPUT"}}]}`, nil, false, "UNAVAILABLE"},
		{"502 from a proxy", 502, `<html>bad gateway</html>`, nil, true, ""},
		{"400 not JSON", 400, `nope`, nil, false, ""},
		{"503 JSON without errors", 503, `{"data":null}`, nil, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, err := parseResponse(tc.status, []byte(tc.body), req)
			if tc.ids != nil {
				if err != nil || !slices.Equal(ids, tc.ids) {
					t.Fatalf("got %v, %v; want %v", ids, err, tc.ids)
				}
				return
			}
			ce, ok := err.(*callError)
			if !ok {
				t.Fatalf("got %v, %v; want a callError", ids, err)
			}
			if ce.Transient != tc.transient || ce.Code != tc.code {
				t.Fatalf("got %+v, want transient %v code %q", ce, tc.transient, tc.code)
			}
		})
	}
}

func TestPacer(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		name     string
		rate     float64
		batch    int
		duration time.Duration
		requests int
		due      map[int]time.Duration
	}{
		{"5000/s in fives for 30 s", 5000, 5, 30 * time.Second, 30000, map[int]time.Duration{0: 0, 1: time.Millisecond, 1000: time.Second, 29999: 29999 * time.Millisecond}},
		{"one at a time", 10, 1, time.Second, 10, map[int]time.Duration{3: 300 * time.Millisecond}},
		{"batch larger than a second's worth", 2, 5, 10 * time.Second, 4, map[int]time.Duration{1: 2500 * time.Millisecond, 3: 7500 * time.Millisecond}},
		{"window shorter than one interval", 1, 1, 500 * time.Millisecond, 1, nil},
		{"uneven", 3, 1, time.Second, 3, map[int]time.Duration{2: 666666666}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newPacer(start, tc.rate, tc.batch, tc.duration)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.requests(); got != tc.requests {
				t.Fatalf("requests() = %d, want %d", got, tc.requests)
			}
			for k, d := range tc.due {
				if got := p.due(k).Sub(start); got != d {
					t.Errorf("due(%d) = +%s, want +%s", k, got, d)
				}
			}
			if p.wait(0, start.Add(time.Second)) != 0 {
				t.Error("a request past due should not wait")
			}
			if tc.requests > 1 {
				if w := p.wait(1, start); w != p.due(1).Sub(start) || w <= 0 {
					t.Errorf("wait(1) at start = %s", w)
				}
			}
		})
	}
	for _, bad := range []struct {
		rate  float64
		batch int
		d     time.Duration
	}{{0, 1, time.Second}, {1, 0, time.Second}, {1, 1, 0}} {
		if _, err := newPacer(start, bad.rate, bad.batch, bad.d); err == nil {
			t.Errorf("newPacer(%v, %d, %s) accepted", bad.rate, bad.batch, bad.d)
		}
	}
}

func TestPercentiles(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		in   []time.Duration
		want Percentiles
	}{
		{nil, Percentiles{}},
		{ms(7), Percentiles{1, 7, 7, 7}},
		{ms(4, 1, 3, 2), Percentiles{4, 2, 4, 4}},
		{ms(30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1), Percentiles{30, 15, 30, 30}},
	} {
		if got := percentiles(tc.in); got != tc.want {
			t.Errorf("percentiles(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	var hundred []time.Duration
	for i := 200; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	if got := percentiles(hundred); got.P50 != 100 || got.P99 != 198 || got.Max != 200 {
		t.Errorf("1..200 ms: %+v", got)
	}
}

func TestSpanAndPick(t *testing.T) {
	for _, tc := range []struct {
		s      string
		n      int
		lo, hi int
		ok     bool
	}{
		{"0:10", 50, 0, 10, true}, {"10:40", 50, 10, 40, true}, {":5", 50, 0, 5, true}, {"45:", 50, 45, 50, true},
		{"0:0", 50, 0, 0, true}, {"0:51", 50, 0, 0, false}, {"5:4", 50, 0, 0, false}, {"5", 50, 0, 0, false}, {"a:3", 5, 0, 0, false},
	} {
		lo, hi, err := span(tc.s, tc.n)
		if (err == nil) != tc.ok || (tc.ok && (lo != tc.lo || hi != tc.hi)) {
			t.Errorf("span(%q, %d) = %d, %d, %v", tc.s, tc.n, lo, hi, err)
		}
	}
	m := &Manifest{Rooms: []ManifestRoom{{ID: "b0", Big: true}, {ID: "b1", Big: true}, {ID: "s0"}, {ID: "s1"}, {ID: "s2"}}}
	rooms, err := pick(m, "1:2", "0:2")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rooms {
		ids = append(ids, r.ID)
	}
	if !slices.Equal(ids, []string{"b1", "s0", "s1"}) {
		t.Fatalf("pick = %v", ids)
	}
	if _, err := pick(m, "0:3", ""); err == nil {
		t.Fatal("pick of 3 big rooms out of 2 accepted")
	}
}

func TestParseSinceAndReadyzURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1712345678.123456", time.Unix(1712345678, 123456000), true},
		{"1712345678.5", time.Unix(1712345678, 500000000), true},
		{"1712345678123456789", time.Unix(0, 1712345678123456789), true},
		{"soon", time.Time{}, false},
		{"1.x", time.Time{}, false},
	} {
		got, err := parseSince(tc.in)
		if (err == nil) != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v", tc.in, got, err)
		}
	}
	if u, err := readyzURL("http://127.0.0.1:8080/graphql?x=1"); err != nil || u != "http://127.0.0.1:8080/readyz" {
		t.Errorf("readyzURL = %q, %v", u, err)
	}
	if _, err := readyzURL("127.0.0.1:8080"); err == nil {
		t.Error("readyzURL accepted a URL without a scheme")
	}
}

func TestParseProcStat(t *testing.T) {
	for _, tc := range []struct {
		in          string
		busy, total uint64
		ok          bool
	}{
		{"cpu  100 5 50 800 20 3 2 0 40 0\ncpu0 1 2 3 4\n", 160, 980, true},
		{"cpu 1 2 3 4\n", 6, 10, true},
		{"cpu0 1 2 3 4 5\n", 0, 0, false},
		{"cpu 1 x 3 4 5\n", 0, 0, false},
		{"", 0, 0, false},
	} {
		busy, total, err := parseProcStat([]byte(tc.in))
		if (err == nil) != tc.ok || busy != tc.busy || total != tc.total {
			t.Errorf("parseProcStat(%q) = %d, %d, %v; want %d, %d", tc.in, busy, total, err, tc.busy, tc.total)
		}
	}
}

func TestCheckRoom(t *testing.T) {
	r := ManifestRoom{ID: "r", Name: "seed-1", Messages: 120}
	nodes := func(n int) string {
		return "[" + strings.TrimSuffix(strings.Repeat(`{"id":"m","text":"t"},`, n), ",") + "]"
	}
	for _, tc := range []struct {
		name, data string
		ok         bool
	}{
		{"ok", `{"room":{"name":"seed-1","messageCount":120,"messages":{"nodes":` + nodes(50) + `}}}`, true},
		{"more than seeded (probes)", `{"room":{"name":"seed-1","messageCount":121,"messages":{"nodes":` + nodes(50) + `}}}`, true},
		{"missing", `{"room":null}`, false},
		{"fewer messages", `{"room":{"name":"seed-1","messageCount":119,"messages":{"nodes":` + nodes(50) + `}}}`, false},
		{"short page", `{"room":{"name":"seed-1","messageCount":120,"messages":{"nodes":` + nodes(49) + `}}}`, false},
		{"other name", `{"room":{"name":"x","messageCount":120,"messages":{"nodes":` + nodes(50) + `}}}`, false},
	} {
		if err := checkRoom(json.RawMessage(tc.data), r); (err == nil) != tc.ok {
			t.Errorf("%s: checkRoom = %v", tc.name, err)
		}
	}
}

// fakeHerald understands exactly the operations bench/seed sends, stores
// posts with Herald's idempotency semantics, and fails every failEvery-th
// request transiently after storing half of its posts (or creating half of
// its rooms), as a replica whose log stalls mid-request would.
type fakeHerald struct {
	mu        sync.Mutex
	failEvery int
	requests  int
	rooms     []string       // ids in creation order
	names     map[string]int // name -> index
	stored    map[string]int // room id -> messages stored
	keys      map[string]bool
	users     map[string]bool
}

var (
	rePost   = regexp.MustCompile(`(m\d+): postMessage\(roomId: \$r, text: ("(?:[^"\\]|\\.)*")(?:, idempotencyKey: ("(?:[^"\\]|\\.)*"))?\)`)
	reCreate = regexp.MustCompile(`(c\d+): createRoom\(name: ("(?:[^"\\]|\\.)*")\)`)
	reCount  = regexp.MustCompile(`(r\d+): room\(id: ("(?:[^"\\]|\\.)*")\) \{ messageCount \}`)
)

func unquote(t *testing.T, s string) string {
	var out string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Errorf("bad literal %s", s)
	}
	return out
}

func (f *fakeHerald) handler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Query     string         `json:"query"`
			Variables map[string]any `json:"variables"`
		}
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req); err != nil {
			http.Error(w, "bad json", 400)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.users[r.Header.Get("X-Herald-User")] = true
		f.requests++
		fail := f.failEvery > 0 && f.requests%f.failEvery == 0
		data := map[string]any{}
		reply := func(errs ...map[string]any) {
			out := map[string]any{"data": data}
			if len(errs) > 0 {
				out = map[string]any{"data": nil, "errors": errs}
			}
			_ = json.NewEncoder(w).Encode(out)
		}
		gqlErr := func(code, msg string) map[string]any {
			return map[string]any{"message": msg, "extensions": map[string]any{"code": code}}
		}
		switch {
		case strings.Contains(req.Query, "postMessage"):
			room, _ := req.Variables["r"].(string)
			if _, ok := f.stored[room]; !ok {
				reply(gqlErr("NOT_FOUND", "no room "+room))
				return
			}
			posts := rePost.FindAllStringSubmatch(req.Query, -1)
			for i, p := range posts {
				if fail && i >= len(posts)/2 {
					reply(gqlErr("UNAVAILABLE", "the event log is unavailable; retry later"))
					return
				}
				key := ""
				if p[3] != "" {
					key = room + "/" + unquote(t, p[3])
				}
				if key == "" || !f.keys[key] {
					f.stored[room]++
					if key != "" {
						f.keys[key] = true
					}
				}
				data[p[1]] = map[string]any{"id": fmt.Sprintf("%s_m%d", room, f.stored[room])}
			}
			reply()
		case strings.Contains(req.Query, "createRoom"):
			for i, c := range reCreate.FindAllStringSubmatch(req.Query, -1) {
				if fail && i >= 1 {
					reply(gqlErr("UNAVAILABLE", "the event log is unavailable; retry later"))
					return
				}
				name := unquote(t, c[2])
				if _, taken := f.names[name]; taken {
					reply(gqlErr("CONFLICT", "a room named "+name+" already exists"))
					return
				}
				id := fmt.Sprintf("room%d", len(f.rooms))
				f.names[name] = len(f.rooms)
				f.rooms = append(f.rooms, id)
				f.stored[id] = 0
				data[c[1]] = map[string]any{"id": id}
			}
			reply()
		case strings.Contains(req.Query, "rooms(first: 100"):
			from := 0
			if a, ok := req.Variables["a"].(string); ok {
				from, _ = strconv.Atoi(a)
			}
			to := min(from+100, len(f.rooms))
			var nodes []map[string]any
			for name, i := range f.names {
				if i >= from && i < to {
					nodes = append(nodes, map[string]any{"id": f.rooms[i], "name": name})
				}
			}
			data["rooms"] = map[string]any{"nodes": nodes, "pageInfo": map[string]any{"hasNextPage": to < len(f.rooms), "endCursor": strconv.Itoa(to)}}
			reply()
		case strings.Contains(req.Query, "messageCount"):
			for _, c := range reCount.FindAllStringSubmatch(req.Query, -1) {
				id := unquote(t, c[2])
				if n, ok := f.stored[id]; ok {
					data[c[1]] = map[string]any{"messageCount": n}
				} else {
					data[c[1]] = nil
				}
			}
			reply()
		default:
			t.Errorf("unexpected query %s", req.Query)
			http.Error(w, "?", 400)
		}
	}
}

func newFake(t *testing.T, failEvery int) (*fakeHerald, string) {
	f := &fakeHerald{failEvery: failEvery, names: map[string]int{}, stored: map[string]int{}, keys: map[string]bool{}, users: map[string]bool{}}
	srv := httptest.NewServer(f.handler(t))
	t.Cleanup(srv.Close)
	return f, srv.URL + "/graphql"
}

// TestSeedRetriesStoreOnce: with a transient failure every few requests,
// each after half of its posts were stored, every room still ends with
// exactly its layout's messages (the retries carry the same idempotency
// keys), rooms half-created by a failed batch are found by name, and the
// manifest and the verification agree.
func TestSeedRetriesStoreOnce(t *testing.T) {
	f, url := newFake(t, 5)
	c := seedConfig{URL: url, User: "seeder", Prefix: "t", Layout: Layout{Rooms: 23, Messages: 1000, BigRooms: 2, BigMessages: 200},
		Batch: 7, Inflight: 4, Retries: 5, Attempt: 5 * time.Second, Verify: true}
	m, err := seed(context.Background(), c, t.Logf)
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if m.RoomsCreated != 23 || m.MessagesPosted != 1000 || !m.Verified || m.Retries == 0 {
		t.Fatalf("manifest: %d rooms, %d messages, verified %v, %d retries", m.RoomsCreated, m.MessagesPosted, m.Verified, m.Retries)
	}
	counts := c.Layout.Counts()
	for i, r := range m.Rooms {
		if f.stored[r.ID] != counts[i] || r.Messages != counts[i] || r.Big != (i < 2) || r.Name != roomName("t", i) {
			t.Errorf("room %d %+v: %d stored, want %d", i, r, f.stored[r.ID], counts[i])
		}
	}
	if len(f.rooms) != 23 || !f.users["seeder"] {
		t.Errorf("%d rooms created, users %v", len(f.rooms), f.users)
	}
	if len(m.BigRooms()) != 2 || len(m.SmallRooms()) != 21 {
		t.Errorf("big/small: %d/%d", len(m.BigRooms()), len(m.SmallRooms()))
	}
}

// TestSeedFailsLoudly: a failure that is not transient fails the run.
func TestSeedFailsLoudly(t *testing.T) {
	f, url := newFake(t, 0)
	f.stored["ghost"] = 0 // before any request
	cl := newClient(url, "u", 2, 3, time.Second)
	_, err := postAll(context.Background(), cl, "p", []string{"ghost", "nope"}, []int{3, 3}, 2, 2, t.Logf)
	if err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Fatalf("postAll into a missing room: %v", err)
	}
	// Transient failures beyond the retries fail too.
	f.mu.Lock()
	f.failEvery = 1
	f.mu.Unlock()
	_, _, err = cl.do(context.Background(), postBatch("ghost", []Post{{Text: "a", Key: "k1"}, {Text: "b", Key: "k2"}}))
	if err == nil || !strings.Contains(err.Error(), "gave up after 3 retries") {
		t.Fatalf("do with every attempt failing: %v", err)
	}
}

// TestPostAtRate: the rate mode posts what the window holds, all stored,
// and reports the watched process (itself here).
func TestPostAtRate(t *testing.T) {
	f, url := newFake(t, 0)
	cl := newClient(url, "u", 4, 2, time.Second)
	ids, _, err := createRooms(context.Background(), cl, []string{"a", "b", "c"}, 2, 2, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	rep := &RateReport{Errors: []string{}}
	postAtRate(context.Background(), cl, "p", ids, 200, 4, 500*time.Millisecond, 4, 0, rep, t.Logf)
	// 25 requests of 4 are due in the window. On a loaded machine the last
	// few may find no free slot before it ends: they are counted as unsent,
	// never lost.
	if rep.Sent+4*rep.Unsent != 100 || rep.Sent < 80 || rep.Acked != rep.Sent || rep.Failed != 0 ||
		rep.Requests != rep.Sent/4 || rep.HTTP.N != int(rep.Sent/4) {
		t.Fatalf("report %+v", rep)
	}
	total := 0
	for _, id := range ids {
		total += f.stored[id]
	}
	if int64(total) != rep.Acked {
		t.Fatalf("%d stored, %d acknowledged", total, rep.Acked)
	}
	if rep.AchievedPerSec < 100 || rep.AchievedPerSec > 250 {
		t.Errorf("achieved %.0f/s for a target of 200/s", rep.AchievedPerSec)
	}
}

// TestCreateRoomsFindsHalfCreated: a batch of rooms that failed after
// creating some is retried; the retry's CONFLICT sends createRooms to look
// the created ones up by name and create the rest, each room once.
func TestCreateRoomsFindsHalfCreated(t *testing.T) {
	f, url := newFake(t, 2)
	cl := newClient(url, "u", 1, 3, time.Second)
	names := make([]string, 250)
	for i := range names {
		names[i] = roomName("h", i)
	}
	ids, retries, err := createRooms(context.Background(), cl, names, 50, 1, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	if retries == 0 || len(f.rooms) != 250 {
		t.Fatalf("%d retries, %d rooms created", retries, len(f.rooms))
	}
	for i, id := range ids {
		if id == "" || f.rooms[f.names[names[i]]] != id {
			t.Fatalf("room %d: id %q", i, id)
		}
	}
}

func TestSendBy(t *testing.T) {
	ctx := context.Background()
	free := make(chan int, 1)
	if !sendBy(ctx, free, 7, time.Now().Add(time.Second)) || <-free != 7 {
		t.Fatal("a free slot before the end was not taken")
	}
	if sendBy(ctx, free, 8, time.Now().Add(-time.Millisecond)) {
		t.Fatal("sent after the end")
	}
	busy := make(chan int) // nobody receives
	t0 := time.Now()
	if sendBy(ctx, busy, 9, t0.Add(50*time.Millisecond)) || time.Since(t0) < 50*time.Millisecond {
		t.Fatal("a request with no free slot was sent, or given up before the end")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if sendBy(cancelled, busy, 10, time.Now().Add(time.Second)) {
		t.Fatal("sent after the context ended")
	}
}
