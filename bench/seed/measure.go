package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// span parses "a:b" (a half-open range of indexes; "a:" to the end).
func span(s string, n int) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want a range like 0:10", s)
	}
	lo, hi = 0, n
	if a != "" {
		if lo, err = strconv.Atoi(a); err != nil {
			return 0, 0, fmt.Errorf("%q: %w", s, err)
		}
	}
	if b != "" {
		if hi, err = strconv.Atoi(b); err != nil {
			return 0, 0, fmt.Errorf("%q: %w", s, err)
		}
	}
	if lo < 0 || hi < lo || hi > n {
		return 0, 0, fmt.Errorf("%q: out of 0:%d", s, n)
	}
	return lo, hi, nil
}

// pick returns big rooms [bigSpan) then small rooms [smallSpan) of m.
func pick(m *Manifest, bigSpan, smallSpan string) ([]ManifestRoom, error) {
	var out []ManifestRoom
	for _, k := range []struct {
		span  string
		rooms []ManifestRoom
	}{{bigSpan, m.BigRooms()}, {smallSpan, m.SmallRooms()}} {
		if k.span == "" {
			continue
		}
		lo, hi, err := span(k.span, len(k.rooms))
		if err != nil {
			return nil, err
		}
		out = append(out, k.rooms[lo:hi]...)
	}
	return out, nil
}

func idsCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed ids", flag.ContinueOnError)
	fs.SetOutput(stderr)
	manifest := fs.String("manifest", "seed-manifest.json", "the seed manifest")
	big := fs.String("big", "", "big rooms to print, by index among the big ones: a:b (half-open)")
	small := fs.String("small", "", "small rooms to print, by index among the others: a:b (half-open)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	m, err := readManifest(*manifest)
	if err != nil {
		fmt.Fprintf(stderr, "seed ids: %v\n", err)
		return 2
	}
	rooms, err := pick(m, *big, *small)
	if err != nil {
		fmt.Fprintf(stderr, "seed ids: %v\n", err)
		return 2
	}
	for _, r := range rooms {
		fmt.Fprintln(stdout, r.ID)
	}
	return 0
}

// ReadyReport is how long a replica took from its start to /readyz 200,
// and its RSS once ready and idle.
type ReadyReport struct {
	PID     int     `json:"pid"`
	ReadyMs float64 `json:"ready_ms"`
	Polls   int     `json:"polls"`
	Body    string  `json:"readyz_body"`
	// RSS right when ready, then each second of the idle period; the
	// idle RSS is the last sample.
	RSSReadyKB int64   `json:"rss_ready_kb"`
	RSSIdleKB  int64   `json:"rss_idle_kb"`
	RSSMaxKB   int64   `json:"rss_max_kb"`
	IdleSec    float64 `json:"idle_sec"`
	IdleCPUSec float64 `json:"idle_cpu_sec"`
	Error      string  `json:"error,omitempty"`
}

// parseSince parses a start time given as bash's $EPOCHREALTIME
// (seconds.microseconds) or as Unix nanoseconds.
func parseSince(s string) (time.Time, error) {
	if sec, frac, ok := strings.Cut(s, "."); ok {
		a, err1 := strconv.ParseInt(sec, 10, 64)
		frac = (frac + "000000000")[:9]
		b, err2 := strconv.ParseInt(frac, 10, 64)
		if err1 != nil || err2 != nil {
			return time.Time{}, fmt.Errorf("%q: want seconds.fraction or Unix nanoseconds", s)
		}
		return time.Unix(a, b), nil
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want seconds.fraction or Unix nanoseconds", s)
	}
	return time.Unix(0, ns), nil
}

// readyzURL turns Herald's GraphQL URL (or its base URL) into its /readyz.
func readyzURL(graphqlURL string) (string, error) {
	u, err := url.Parse(graphqlURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("%q: want http://host:port/graphql", graphqlURL)
	}
	u.Path, u.RawQuery = "/readyz", ""
	return u.String(), nil
}

func readyCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed ready", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gql := fs.String("url", "http://127.0.0.1:8080/graphql", "the replica's GraphQL endpoint (its /readyz is polled)")
	since := fs.String("since", "", "when the replica's process was started: $EPOCHREALTIME or Unix nanoseconds (default: now)")
	pid := fs.Int("pid", 0, "the replica's PID: fail if it exits; sample its RSS")
	poll := fs.Duration("poll", 20*time.Millisecond, "interval between /readyz requests")
	timeout := fs.Duration("timeout", 3*time.Minute, "bound on waiting for /readyz 200")
	idle := fs.Duration("idle", 5*time.Second, "once ready, how long to leave it idle before the idle RSS")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	start := time.Now()
	if *since != "" {
		var err error
		if start, err = parseSince(*since); err != nil {
			fmt.Fprintf(stderr, "seed ready: --since %v\n", err)
			return 2
		}
	}
	rz, err := readyzURL(*gql)
	if err != nil {
		fmt.Fprintf(stderr, "seed ready: --url %v\n", err)
		return 2
	}
	rep := &ReadyReport{PID: *pid}
	err = waitReady(ctx, rz, start, *pid, *poll, *timeout, *idle, rep)
	if err != nil {
		rep.Error = err.Error()
	}
	if *jsonPath != "" {
		if werr := writeJSON(*jsonPath, rep); werr != nil {
			fmt.Fprintf(stderr, "seed ready: --json: %v\n", werr)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "seed ready: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "seed ready: /readyz 200 after %.0f ms (%d polls); RSS %d kB when ready, %d kB after %.0fs idle (peak %d kB, idle CPU %.2fs)\n",
		rep.ReadyMs, rep.Polls, rep.RSSReadyKB, rep.RSSIdleKB, rep.IdleSec, rep.RSSMaxKB, rep.IdleCPUSec)
	return 0
}

func waitReady(ctx context.Context, rz string, start time.Time, pid int, poll, timeout, idle time.Duration, rep *ReadyReport) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := start.Add(timeout)
	last := ""
	for {
		if pid > 0 {
			if _, err := sampleProc(pid); err != nil {
				return fmt.Errorf("process %d is gone before it was ready (last /readyz: %s)", pid, orNothing(last))
			}
		}
		rep.Polls++
		t := time.Now()
		status, body, err := get(ctx, hc, rz)
		if err == nil && status == http.StatusOK {
			rep.ReadyMs = float64(time.Since(start)) / float64(time.Millisecond)
			rep.Body = body
			break
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("HTTP %d %.300s", status, body)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready %s after its start (last /readyz: %s)", timeout, last)
		}
		select {
		case <-time.After(poll - time.Since(t)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if pid <= 0 {
		return nil
	}
	first, err := sampleProc(pid)
	if err != nil {
		return err
	}
	rep.RSSReadyKB, rep.RSSMaxKB = first.RSSKB, first.RSSKB
	s := first
	for end := time.Now().Add(idle); time.Now().Before(end); {
		select {
		case <-time.After(min(time.Second, time.Until(end))):
		case <-ctx.Done():
			return ctx.Err()
		}
		if s, err = sampleProc(pid); err != nil {
			return err
		}
		rep.RSSMaxKB = max(rep.RSSMaxKB, s.RSSKB)
	}
	rep.RSSIdleKB = s.RSSKB
	rep.IdleSec = s.At.Sub(first.At).Seconds()
	rep.IdleCPUSec = (s.CPU - first.CPU).Seconds()
	return nil
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

func get(ctx context.Context, hc *http.Client, u string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// ColdQuery is the query the cold command sends, once per room.
const ColdQuery = `query($id: ID!) { room(id: $id) { name messageCount messages(last: 50) { nodes { id text } } } }`

// ColdReport is the first-query latency of rooms not read before.
type ColdReport struct {
	Rooms      int         `json:"rooms"`
	Query      string      `json:"query"`
	Latency    Percentiles `json:"latency_ms"`
	Each       []float64   `json:"each_ms"`
	Messages   []int       `json:"messages"`
	RSSStartKB int64       `json:"rss_start_kb,omitempty"`
	RSSEndKB   int64       `json:"rss_end_kb,omitempty"`
	Errors     []string    `json:"errors"`
}

func coldCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed cold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	gql := fs.String("url", "http://127.0.0.1:8080/graphql", "Herald's GraphQL endpoint")
	manifest := fs.String("manifest", "seed-manifest.json", "the seed manifest")
	big := fs.String("big", "0:30", "big rooms to query, by index among the big ones: a:b (half-open)")
	small := fs.String("small", "", "small rooms to query too, by index among the others")
	pid := fs.Int("pid", 0, "the replica's PID, to report its RSS before and after")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on one query")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	m, err := readManifest(*manifest)
	if err != nil {
		fmt.Fprintf(stderr, "seed cold: %v\n", err)
		return 2
	}
	rooms, err := pick(m, *big, *small)
	if err != nil || len(rooms) == 0 {
		fmt.Fprintf(stderr, "seed cold: no rooms picked (%v)\n", err)
		return 2
	}
	cl := newClient(*gql, "", 1, 0, *timeout)
	rep := &ColdReport{Rooms: len(rooms), Query: ColdQuery, Errors: []string{}}
	if *pid > 0 {
		if s, err := sampleProc(*pid); err == nil {
			rep.RSSStartKB = s.RSSKB
		}
	}
	var lat []time.Duration
	for _, r := range rooms {
		if ctx.Err() != nil {
			rep.Errors = append(rep.Errors, ctx.Err().Error())
			break
		}
		t := time.Now()
		data, err := cl.query(ctx, ColdQuery, map[string]any{"id": r.ID})
		d := time.Since(t)
		if err == nil {
			err = checkRoom(data, r)
		}
		if err != nil {
			rep.Errors = append(rep.Errors, fmt.Sprintf("room %s: %v", r.ID, err))
			continue
		}
		lat = append(lat, d)
		rep.Each = append(rep.Each, float64(d)/float64(time.Millisecond))
		rep.Messages = append(rep.Messages, r.Messages)
	}
	rep.Latency = percentiles(lat)
	if *pid > 0 {
		if s, err := sampleProc(*pid); err == nil {
			rep.RSSEndKB = s.RSSKB
		}
	}
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, rep); err != nil {
			fmt.Fprintf(stderr, "seed cold: --json: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "seed cold: %d rooms, first query p50 %.1f ms, p99 %.1f ms, max %.1f ms; RSS %d → %d kB; %d errors\n",
		len(lat), rep.Latency.P50, rep.Latency.P99, rep.Latency.Max, rep.RSSStartKB, rep.RSSEndKB, len(rep.Errors))
	for _, e := range rep.Errors {
		fmt.Fprintf(stderr, "seed cold: error: %s\n", e)
	}
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

// checkRoom checks a ColdQuery answer against the manifest: the room
// exists with its name, holds its messages and returns the latest ones.
func checkRoom(data json.RawMessage, r ManifestRoom) error {
	var res struct {
		Room *struct {
			Name         string
			MessageCount int
			Messages     struct {
				Nodes []struct{ ID, Text string }
			}
		}
	}
	if err := json.Unmarshal(data, &res); err != nil {
		return err
	}
	switch {
	case res.Room == nil:
		return fmt.Errorf("not found")
	case res.Room.Name != r.Name:
		return fmt.Errorf("named %q, want %q", res.Room.Name, r.Name)
	case res.Room.MessageCount < r.Messages:
		return fmt.Errorf("messageCount %d, %d were seeded", res.Room.MessageCount, r.Messages)
	case len(res.Room.Messages.Nodes) != min(50, res.Room.MessageCount):
		return fmt.Errorf("%d messages returned of %d", len(res.Room.Messages.Nodes), res.Room.MessageCount)
	}
	return nil
}
