package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Manifest is what seed wrote and how long it took.
type Manifest struct {
	URL        string         `json:"url"`
	User       string         `json:"user"`
	RoomPrefix string         `json:"room_prefix"`
	Layout     Layout         `json:"layout"`
	Batch      int            `json:"batch"`
	Inflight   int            `json:"inflight"`
	Rooms      []ManifestRoom `json:"rooms"`
	// Counts of what was done.
	RoomsCreated   int   `json:"rooms_created"`
	MessagesPosted int64 `json:"messages_posted"`
	Requests       int64 `json:"requests"`
	Retries        int64 `json:"retries"`
	// Timing, in seconds; MessagesPerSec is posts over PostSec.
	CreateSec      float64 `json:"create_rooms_sec"`
	PostSec        float64 `json:"post_sec"`
	VerifySec      float64 `json:"verify_sec"`
	ElapsedSec     float64 `json:"elapsed_sec"`
	MessagesPerSec float64 `json:"messages_per_sec"`
	Verified       bool    `json:"verified"`
	StartedAt      string  `json:"started_at"`
	Error          string  `json:"error,omitempty"`
}

// ManifestRoom is one room of a manifest.
type ManifestRoom struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Messages int    `json:"messages"`
	Big      bool   `json:"big,omitempty"`
}

// BigRooms and SmallRooms are the manifest's rooms of each kind, in order.
func (m *Manifest) BigRooms() []ManifestRoom   { return m.kind(true) }
func (m *Manifest) SmallRooms() []ManifestRoom { return m.kind(false) }

func (m *Manifest) kind(big bool) []ManifestRoom {
	var out []ManifestRoom
	for _, r := range m.Rooms {
		if r.Big == big {
			out = append(out, r)
		}
	}
	return out
}

// seedConfig is the seed command's flags.
type seedConfig struct {
	URL, User, Prefix, ManifestPath string
	Layout                          Layout
	Batch, Inflight, Retries        int
	Attempt, Timeout                time.Duration
	Verify, Quiet                   bool
}

func seedCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c seedConfig
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080/graphql", "Herald's GraphQL endpoint")
	fs.StringVar(&c.User, "user", "seed", "the dev-auth user (X-Herald-User) that creates and posts")
	fs.IntVar(&c.Layout.Rooms, "rooms", 10000, "rooms to create")
	fs.IntVar(&c.Layout.Messages, "messages", 1000000, "messages in all rooms together")
	fs.IntVar(&c.Layout.BigRooms, "big-rooms", 50, "big rooms (the first ones created), each with --big-messages; the other messages are spread evenly over the other rooms")
	fs.IntVar(&c.Layout.BigMessages, "big-messages", 10000, "messages in each big room")
	fs.StringVar(&c.Prefix, "room-prefix", "", "room names are <prefix>-<i> (default seed-<base36 time>; names must be new)")
	fs.IntVar(&c.Batch, "batch", 50, fmt.Sprintf("postMessage (or createRoom) mutations per HTTP request, as aliases (at most %d)", maxBatch))
	fs.IntVar(&c.Inflight, "inflight", 32, "HTTP requests in flight at once")
	fs.IntVar(&c.Retries, "retries", 5, "retries of a request that failed transiently (with the same idempotency keys)")
	fs.DurationVar(&c.Attempt, "attempt-timeout", 20*time.Second, "bound on one HTTP attempt")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Minute, "bound on the whole run")
	fs.StringVar(&c.ManifestPath, "manifest", "seed-manifest.json", "write the manifest (room ids, counts, timing) to this file")
	fs.BoolVar(&c.Verify, "verify", true, "after posting, check every room's messageCount against the layout")
	fs.BoolVar(&c.Quiet, "quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "seed: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if err := c.Layout.Validate(); err != nil {
		fmt.Fprintf(stderr, "seed: layout: %v\n", err)
		return 2
	}
	if c.Batch < 1 || c.Batch > maxBatch || c.Inflight < 1 || c.Retries < 0 {
		fmt.Fprintf(stderr, "seed: --batch must be 1..%d, --inflight at least 1, --retries not negative\n", maxBatch)
		return 2
	}
	if c.Prefix == "" {
		c.Prefix = "seed-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	m, err := seed(ctx, c, progress(stderr, c.Quiet))
	if err != nil {
		m.Error = err.Error()
	}
	if werr := writeJSON(c.ManifestPath, m); werr != nil {
		fmt.Fprintf(stderr, "seed: --manifest: %v\n", werr)
		return 1
	}
	fmt.Fprintf(stdout, "seed: %d rooms, %d messages (%d big rooms × %d) in %.1fs: rooms %.1fs, posts %.1fs = %.0f messages/s, %d requests, %d retries; verified: %v\n",
		m.RoomsCreated, m.MessagesPosted, c.Layout.BigRooms, c.Layout.BigMessages, m.ElapsedSec, m.CreateSec, m.PostSec,
		m.MessagesPerSec, m.Requests, m.Retries, m.Verified)
	if err != nil {
		fmt.Fprintf(stderr, "seed: FAILED: %v\n", err)
		return 1
	}
	return 0
}

func progress(w io.Writer, quiet bool) func(string, ...any) {
	if quiet {
		return func(string, ...any) {}
	}
	return func(format string, args ...any) { fmt.Fprintf(w, "seed: "+format+"\n", args...) }
}

// seed runs the seed command; the manifest is returned even on error.
func seed(ctx context.Context, c seedConfig, logf func(string, ...any)) (*Manifest, error) {
	start := time.Now()
	m := &Manifest{URL: c.URL, User: c.User, RoomPrefix: c.Prefix, Layout: c.Layout, Batch: c.Batch,
		Inflight: c.Inflight, StartedAt: start.UTC().Format(time.RFC3339)}
	defer func() { m.ElapsedSec = time.Since(start).Seconds() }()
	cl := newClient(c.URL, c.User, c.Inflight, c.Retries, c.Attempt)
	counts := c.Layout.Counts()
	names := make([]string, len(counts))
	for i := range names {
		names[i] = roomName(c.Prefix, i)
	}

	t0 := time.Now()
	ids, retries, err := createRooms(ctx, cl, names, c.Batch, c.Inflight, logf)
	m.CreateSec = time.Since(t0).Seconds()
	m.Retries += retries
	for i, id := range ids {
		if id != "" {
			m.RoomsCreated++
		}
		m.Rooms = append(m.Rooms, ManifestRoom{ID: id, Name: names[i], Messages: counts[i], Big: i < c.Layout.BigRooms})
	}
	if err != nil {
		return m, err
	}
	logf("created %d rooms in %.1fs", len(ids), m.CreateSec)

	t0 = time.Now()
	st, err := postAll(ctx, cl, c.Prefix, ids, counts, c.Batch, c.Inflight, logf)
	m.PostSec = time.Since(t0).Seconds()
	m.MessagesPosted, m.Requests, m.Retries = st.posted.Load(), st.requests.Load(), m.Retries+st.retries.Load()
	if m.PostSec > 0 {
		m.MessagesPerSec = float64(m.MessagesPosted) / m.PostSec
	}
	if err != nil {
		return m, err
	}
	logf("posted %d messages in %.1fs (%.0f/s, %d requests, %d retries)", m.MessagesPosted, m.PostSec, m.MessagesPerSec, m.Requests, st.retries.Load())

	if c.Verify {
		t0 = time.Now()
		err = verify(ctx, cl, ids, counts, c.Inflight)
		m.VerifySec = time.Since(t0).Seconds()
		if err != nil {
			return m, fmt.Errorf("verify: %w", err)
		}
		m.Verified = true
		logf("verified every room's messageCount in %.1fs", m.VerifySec)
	}
	return m, nil
}

func roomName(prefix string, i int) string { return prefix + "-" + strconv.Itoa(i) }

// messageText and messageKey are message n of room i's text and
// idempotency key.
func messageText(room, n int) string { return "seed " + strconv.Itoa(room) + " #" + strconv.Itoa(n) }
func messageKey(prefix string, room, n int) string {
	return prefix + "/" + strconv.Itoa(room) + "/" + strconv.Itoa(n)
}

// posts returns job j's posts.
func (j Job) posts(prefix string) []Post {
	ps := make([]Post, j.N)
	for i := range ps {
		ps[i] = Post{Text: messageText(j.Room, j.From+i), Key: messageKey(prefix, j.Room, j.From+i)}
	}
	return ps
}

// createRooms creates a room per name, batch per request, and returns
// their ids. A batch retried after a transient failure may find some of its
// rooms created by the failed attempt (CONFLICT, since createRoom has no
// idempotency key): those are looked up by name.
func createRooms(ctx context.Context, cl *client, names []string, batch, inflight int, logf func(string, ...any)) ([]string, int64, error) {
	ids := make([]string, len(names))
	var retries atomic.Int64
	var mu sync.Mutex
	var conflicted []int
	err := parallel(ctx, (len(names)+batch-1)/batch, inflight, func(ctx context.Context, b int) error {
		lo, hi := b*batch, min((b+1)*batch, len(names))
		got, n, err := cl.do(ctx, createBatch(names[lo:hi]))
		retries.Add(int64(n))
		var ce *callError
		if err != nil && n > 0 && errors.As(err, &ce) && ce.Code == "CONFLICT" {
			mu.Lock()
			for i := lo; i < hi; i++ {
				conflicted = append(conflicted, i)
			}
			mu.Unlock()
			return nil
		}
		if err != nil {
			return fmt.Errorf("create rooms %d..%d: %w", lo, hi-1, err)
		}
		copy(ids[lo:hi], got)
		return nil
	})
	if err != nil || len(conflicted) == 0 {
		return ids, retries.Load(), err
	}
	logf("%d rooms of retried batches already existed or failed; looking them up by name", len(conflicted))
	byName, err := listRooms(ctx, cl)
	if err != nil {
		return ids, retries.Load(), fmt.Errorf("look up rooms by name: %w", err)
	}
	for _, i := range conflicted {
		if id, ok := byName[names[i]]; ok {
			ids[i] = id
			continue
		}
		got, n, err := cl.do(ctx, createBatch(names[i:i+1]))
		retries.Add(int64(n))
		if err != nil {
			return ids, retries.Load(), fmt.Errorf("create room %d: %w", i, err)
		}
		ids[i] = got[0]
	}
	return ids, retries.Load(), nil
}

// listRooms pages through every room and maps names to ids.
func listRooms(ctx context.Context, cl *client) (map[string]string, error) {
	const q = `query($a: String) { rooms(first: 100, after: $a) { nodes { id name } pageInfo { hasNextPage endCursor } } }`
	out := map[string]string{}
	var after any
	for range 1_000_000 {
		data, err := cl.query(ctx, q, map[string]any{"a": after})
		if err != nil {
			return nil, err
		}
		var res struct {
			Rooms struct {
				Nodes    []struct{ ID, Name string }
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, err
		}
		for _, n := range res.Rooms.Nodes {
			out[n.Name] = n.ID
		}
		if !res.Rooms.PageInfo.HasNextPage {
			return out, nil
		}
		after = res.Rooms.PageInfo.EndCursor
	}
	return nil, errors.New("too many pages")
}

type postStats struct {
	posted, requests, retries atomic.Int64
}

// postAll posts every room's messages, batch per request. Each of
// inflight workers takes a room at a time, the big ones first, and posts
// its requests one after another: at any moment the requests in flight go
// to different rooms, each room's messages are stored in order, and a
// replica that loads rooms on demand has only the rooms being written to
// hold (a round-robin over every room would make it load and evict rooms
// all the time).
func postAll(ctx context.Context, cl *client, prefix string, ids []string, counts []int, batch, inflight int, logf func(string, ...any)) (*postStats, error) {
	jobs := Jobs(counts, batch)
	var st postStats
	total := 0
	for _, c := range counts {
		total += c
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		start := time.Now()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := st.posted.Load()
				logf("posted %d/%d (%.0f/s), %d retries", n, total, float64(n)/time.Since(start).Seconds(), st.retries.Load())
			}
		}
	}()
	order := make([]int, len(counts))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(counts[b], counts[a]) })
	err := parallel(ctx, len(order), inflight, func(ctx context.Context, k int) error {
		for _, j := range jobs[order[k]] {
			got, n, err := cl.do(ctx, postBatch(ids[j.Room], j.posts(prefix)))
			st.requests.Add(int64(n + 1))
			st.retries.Add(int64(n))
			if err != nil {
				return fmt.Errorf("post messages %d..%d of room %d (%s): %w", j.From, j.From+j.N-1, j.Room, ids[j.Room], err)
			}
			st.posted.Add(int64(len(got)))
		}
		return nil
	})
	return &st, err
}

// verify checks every room's messageCount, 100 rooms per request.
func verify(ctx context.Context, cl *client, ids []string, counts []int, inflight int) error {
	const per = 100
	return parallel(ctx, (len(ids)+per-1)/per, inflight, func(ctx context.Context, b int) error {
		lo, hi := b*per, min((b+1)*per, len(ids))
		q := "query {"
		for i := lo; i < hi; i++ {
			q += fmt.Sprintf(" r%d: room(id: %s) { messageCount }", i-lo, quote(ids[i]))
		}
		q += " }"
		data, err := cl.query(ctx, q, nil)
		if err != nil {
			return fmt.Errorf("rooms %d..%d: %w", lo, hi-1, err)
		}
		var res map[string]*struct{ MessageCount int }
		if err := json.Unmarshal(data, &res); err != nil {
			return err
		}
		for i := lo; i < hi; i++ {
			r := res["r"+strconv.Itoa(i-lo)]
			if r == nil {
				return fmt.Errorf("room %d (%s) not found", i, ids[i])
			}
			if r.MessageCount != counts[i] {
				return fmt.Errorf("room %d (%s) holds %d messages, %d were posted", i, ids[i], r.MessageCount, counts[i])
			}
		}
		return nil
	})
}

// parallel runs f(0..n-1) on at most workers goroutines; the first error
// cancels the rest and is returned.
func parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for k := range next {
				if err := f(ctx, k); err != nil {
					cancel(err)
				}
			}
		})
	}
	for k := range n {
		if ctx.Err() != nil {
			break
		}
		select {
		case next <- k:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
