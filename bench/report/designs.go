package main

// S6 and S7 (issue 12) compare two Herald designs rather than Herald
// against other servers: "herald", built from the working tree, and
// "herald-before", today's design built from the commit before that work.
// bench/run leaves, per design, in the results directory:
//
//	S6-<server>.manifest.json  bench/seed seed's manifest (layout, rooms, timing)
//	S6-<server>.env.json       the NATS store size and the replica's flags
//	S6-<server>.ready.json     bench/seed ready: start → /readyz, idle RSS
//	S6-<server>.watched.txt    the room ids the clients watched
//	S6-<server>.watch.json     bench/loadgen: 200 idle clients on those rooms
//	S6-<server>.cold.json      bench/seed cold: first queries of cold big rooms
//	S7-<server>.rate.json      bench/seed rate: B's traffic, A's CPU and RSS
//	S7-<server>.loadgen.json   bench/loadgen: A's subscribers
//	S7-<server>.env.json       the nice level of NATS, B and the traffic; the replicas' flags
//	S<n>-<server>.incomplete.json  the scenario stopped early on that design

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

var designs = []string{"herald", "herald-before"}

// Targets of issue 12.
const (
	s6ReadyMs      = 1000.0
	s6IdleBytes    = 100e6 // "100 MB", decimal
	s6ColdP99Ms    = 250.0
	s7CPUPct       = 2.0
	s7P99Ms        = 50.0
	s7RateFraction = 0.95 // B must achieve this share of its target for S7 to count
	// s7RSSGrowthKB is how much A's RSS may move up over the window and
	// still count as "not growing": a Go heap of a few MB breathes by about
	// that much between collections.
	s7RSSGrowthKB = 2048
)

type manifest struct {
	Layout struct {
		Rooms       int `json:"rooms"`
		Messages    int `json:"messages"`
		BigRooms    int `json:"big_rooms"`
		BigMessages int `json:"big_messages"`
	} `json:"layout"`
	Rooms []struct {
		ID       string `json:"id"`
		Messages int    `json:"messages"`
		Big      bool   `json:"big"`
	} `json:"rooms"`
	RoomsCreated   int     `json:"rooms_created"`
	MessagesPosted int64   `json:"messages_posted"`
	ElapsedSec     float64 `json:"elapsed_sec"`
	PostSec        float64 `json:"post_sec"`
	MessagesPerSec float64 `json:"messages_per_sec"`
	Verified       bool    `json:"verified"`
	Error          string  `json:"error"`
}

type s6Env struct {
	NATSStoreKB  int64  `json:"nats_store_kb"`
	ReplicaFlags string `json:"replica_flags"`
}

type readyReport struct {
	ReadyMs    float64 `json:"ready_ms"`
	RSSReadyKB int64   `json:"rss_ready_kb"`
	RSSIdleKB  int64   `json:"rss_idle_kb"`
	Error      string  `json:"error"`
}

type percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type coldReport struct {
	Rooms      int         `json:"rooms"`
	Latency    percentiles `json:"latency_ms"`
	Messages   []int       `json:"messages"`
	RSSStartKB int64       `json:"rss_start_kb"`
	RSSEndKB   int64       `json:"rss_end_kb"`
	Errors     []string    `json:"errors"`
}

type watchReport struct {
	WindowSec     float64 `json:"window_sec"`
	CPUPctOneCore float64 `json:"cpu_pct_of_one_core"`
	RSSStartKB    int64   `json:"rss_start_kb"`
	RSSEndKB      int64   `json:"rss_end_kb"`
	RSSMaxKB      int64   `json:"rss_max_kb"`
	RSSGrowthKB   int64   `json:"rss_growth_kb"`
	// MachineBusy is how busy the machine's CPUs were (100 = all).
	MachineBusy *float64 `json:"machine_busy_pct"`
	Error       string   `json:"error"`
}

// busy is the machine's busy share over the window, or "—".
func (w *watchReport) busy() string {
	if w == nil || w.MachineBusy == nil || *w.MachineBusy < 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", *w.MachineBusy)
}

type rateReport struct {
	Rooms          int          `json:"rooms"`
	Batch          int          `json:"batch"`
	Target         float64      `json:"target_per_sec"`
	WindowSec      float64      `json:"window_sec"`
	Sent           int64        `json:"messages_sent"`
	Acked          int64        `json:"messages_acked"`
	Failed         int64        `json:"messages_failed"`
	AchievedPerSec float64      `json:"achieved_per_sec"`
	Unsent         int64        `json:"unsent_requests"`
	HTTP           percentiles  `json:"http_ms"`
	Errors         []string     `json:"errors"`
	Watched        *watchReport `json:"watched"`
	Control        *watchReport `json:"control"`
}

// s6 is one design's S6 results; any part may be missing.
type s6 struct {
	Manifest   *manifest
	Env        *s6Env
	Ready      *readyReport
	Watched    []string
	Watch      *result
	Cold       *coldReport
	Incomplete bool
}

// s7 is one design's S7 results.
type s7 struct {
	Rate       *rateReport
	Loadgen    *result
	Env        *s7Env
	Incomplete bool
}

// s7Env is how bench/run ran S7.
type s7Env struct {
	Nice         int     `json:"nice"`
	SubRate      float64 `json:"sub_rate"`
	PublishAt    string  `json:"publish_at"`
	ReplicaFlags string  `json:"replica_flags"`
}

// publishAt says where S7's loadgen posted its events.
func (dr designResults) publishAt() string {
	for _, srv := range designs {
		if r := dr.S7[srv]; r != nil && r.Env != nil && r.Env.PublishAt == "A" {
			return "A itself"
		}
	}
	return "B, so that each crosses replicas"
}

// nice is the nice level S7's NATS, B and traffic ran at.
func (dr designResults) nice() string {
	for _, srv := range designs {
		if r := dr.S7[srv]; r != nil && r.Env != nil {
			return fmt.Sprint(r.Env.Nice)
		}
	}
	return "10"
}

// designResults are S6 and S7 per design.
type designResults struct {
	S6 map[string]*s6
	S7 map[string]*s7
	// S8 is Herald's presence run (presence.go), nil if it did not run; it
	// rides along here, though it compares no designs.
	S8 *s8
}

// readJSON decodes dir/name into v; false if the file does not exist.
func readJSON(dir, name string, v any) (bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("%s: %w", name, err)
	}
	return true, nil
}

// loadDesigns reads the S6 and S7 results in dir.
func loadDesigns(dir string) (designResults, error) {
	dr := designResults{S6: map[string]*s6{}, S7: map[string]*s7{}}
	for _, srv := range designs {
		var r6 s6
		var err error
		found := false
		for _, f := range []struct {
			name string
			v    any
		}{
			{"manifest", new(manifest)}, {"env", new(s6Env)}, {"ready", new(readyReport)},
			{"watch", new(result)}, {"cold", new(coldReport)}, {"incomplete", new(struct{})},
		} {
			ok, e := readJSON(dir, fmt.Sprintf("S6-%s.%s.json", srv, f.name), f.v)
			if e != nil {
				return dr, e
			}
			if !ok {
				continue
			}
			found = true
			switch v := f.v.(type) {
			case *manifest:
				r6.Manifest = v
			case *s6Env:
				r6.Env = v
			case *readyReport:
				r6.Ready = v
			case *result:
				r6.Watch = v
			case *coldReport:
				r6.Cold = v
			default:
				r6.Incomplete = true
			}
		}
		if r6.Watched, err = readLines(filepath.Join(dir, "S6-"+srv+".watched.txt")); err != nil {
			return dr, err
		}
		if found {
			dr.S6[srv] = &r6
		}

		var r7 s7
		found = false
		rate, lg, env := new(rateReport), new(result), new(s7Env)
		for _, f := range []struct {
			name string
			v    any
		}{{"rate", rate}, {"loadgen", lg}, {"env", env}, {"incomplete", new(struct{})}} {
			ok, e := readJSON(dir, fmt.Sprintf("S7-%s.%s.json", srv, f.name), f.v)
			if e != nil {
				return dr, e
			}
			if !ok {
				continue
			}
			found = true
			switch f.name {
			case "rate":
				r7.Rate = rate
			case "loadgen":
				r7.Loadgen = lg
			case "env":
				r7.Env = env
			default:
				r7.Incomplete = true
			}
		}
		if found {
			dr.S7[srv] = &r7
		}
	}
	return dr, nil
}

func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out, nil
}

// mb is KiB (what /proc reports as kB) in decimal megabytes.
func mb(kib int64) float64 { return float64(kib) * 1024 / 1e6 }

// idleRSSKB is the replica's RSS once ready and idle; -1 if unknown.
func (r *s6) idleRSSKB() int64 {
	if r == nil || r.Ready == nil || r.Ready.Error != "" || r.Ready.RSSIdleKB == 0 {
		return -1
	}
	return r.Ready.RSSIdleKB
}

func (r *s6) readyMs() float64 {
	if r == nil || r.Ready == nil || r.Ready.Error != "" || r.Ready.ReadyMs == 0 {
		return -1
	}
	return r.Ready.ReadyMs
}

// clientsRSSKB is the RSS at the end of the 200 clients' idle period.
func (r *s6) clientsRSSKB() int64 {
	if r == nil || r.Watch == nil || r.Watch.Server == nil || r.Watch.Server.RSSAfterRunKB == 0 {
		return -1
	}
	return r.Watch.Server.RSSAfterRunKB
}

// watchedMessages is how many seeded messages the watched rooms hold; -1
// if unknown.
func (r *s6) watchedMessages() int64 {
	if r == nil || r.Manifest == nil || len(r.Watched) == 0 {
		return -1
	}
	count := map[string]int{}
	for _, room := range r.Manifest.Rooms {
		count[room.ID] = room.Messages
	}
	var n int64
	for _, id := range r.Watched {
		c, ok := count[id]
		if !ok {
			return -1
		}
		n += int64(c)
	}
	return n
}

// bytesPerMessage is a design's idle RSS per seeded message.
func (r *s6) bytesPerMessage() float64 {
	rss := r.idleRSSKB()
	if rss < 0 || r.Manifest == nil || r.Manifest.MessagesPosted == 0 {
		return -1
	}
	return float64(rss) * 1024 / float64(r.Manifest.MessagesPosted)
}

func (r *s6) coldOK() bool {
	return r != nil && r.Cold != nil && len(r.Cold.Errors) == 0 && r.Cold.Latency.N > 0
}

func (r *s7) aCPU() float64 {
	if r == nil || r.Rate == nil || r.Rate.Watched == nil || r.Rate.Watched.Error != "" || r.Rate.Watched.WindowSec == 0 {
		return -1
	}
	return r.Rate.Watched.CPUPctOneCore
}

func (r *s7) rateOK() bool {
	return r != nil && r.Rate != nil && r.Rate.Target > 0 && r.Rate.Failed == 0 &&
		r.Rate.AchievedPerSec >= s7RateFraction*r.Rate.Target
}

func (r *s7) subscribersOK() bool {
	l := r.loadgen()
	return l != nil && l.Pass && l.Delivery != nil && l.clean() && l.Delivery.Received == l.Delivery.Expected &&
		l.Delivery.Expected > 0 && l.p99() >= 0 && l.p99() <= s7P99Ms
}

func (r *s7) loadgen() *result {
	if r == nil {
		return nil
	}
	return r.Loadgen
}

// designTitle6 describes S6's layout from a manifest, or the default.
func (dr designResults) layout6() string {
	for _, srv := range designs {
		if r := dr.S6[srv]; r != nil && r.Manifest != nil {
			l := r.Manifest.Layout
			return fmt.Sprintf("%s messages in %s rooms (%s big rooms × %s)", thousands(int64(l.Messages)),
				thousands(int64(l.Rooms)), thousands(int64(l.BigRooms)), thousands(int64(l.BigMessages)))
		}
	}
	return "1,000,000 messages in 10,000 rooms (50 big rooms × 10,000)"
}

// bigMessages is the size of S6's big rooms.
func (dr designResults) bigMessages() string {
	for _, srv := range designs {
		if r := dr.S6[srv]; r != nil && r.Manifest != nil {
			return thousands(int64(r.Manifest.Layout.BigMessages))
		}
	}
	return "10,000"
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// renderDesigns writes the S6 and S7 sections.
func renderDesigns(w func(string, ...any), dr designResults, beforeCommit string) {
	w("## S6 — data at rest: %s, then a fresh replica\n\n", dr.layout6())
	w("Herald built from the working tree (`herald`) and today's design built from commit %s (`herald-before`),\n", beforeCommit)
	w("each on a NATS of its own (external, so RSS is the replica's alone). `bench/seed` seeds through a\n")
	w("seeding replica's GraphQL API; that replica is stopped and a fresh one started, timed from its\n")
	w("process start to `/readyz` 200 (polled every 20 ms), its RSS taken after 5 s idle; then 200\n")
	w("WebSocket clients watch 100 rooms for 10 s (`loadgen --room-ids --idle`), and big rooms never\n")
	w("read on this replica are queried once each: `%s`.\n", coldQuery)
	w("Reproduce S6 and S7 alone: `bench/run S6 S7`.\n\n")
	if flags := designFlags(func(srv string) (string, bool) {
		r := dr.S6[srv]
		return flagsOf(r != nil && r.Env != nil, func() string { return r.Env.ReplicaFlags })
	}); flags != "" {
		w("S6's replica flags (besides `--addr`, `--nats-url`, `--data-dir`): %s.\n\n", flags)
	}
	w("| server | seeding: messages/s (s) | NATS store MB | start → /readyz s | RSS idle MB | RSS with 200 clients on 100 rooms MB | cold first query p50 / p99 / max ms (rooms) | RSS after the cold queries MB | notes |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, srv := range designs {
		r := dr.S6[srv]
		if r == nil {
			w("| %s | not run ||||||||| \n", srv)
			continue
		}
		seeding, store, cold, after := "—", "—", "—", "—"
		if m := r.Manifest; m != nil {
			seeding = fmt.Sprintf("%.0f (%.0f)", m.MessagesPerSec, m.ElapsedSec)
		}
		if r.Env != nil {
			store = fmt.Sprintf("%.0f", mb(r.Env.NATSStoreKB))
		}
		if c := r.Cold; c != nil && c.Latency.N > 0 {
			cold = fmt.Sprintf("%.1f / %.1f / %.1f (%d)", c.Latency.P50, c.Latency.P99, c.Latency.Max, c.Latency.N)
			if c.RSSEndKB > 0 {
				after = fmt.Sprintf("%.1f", mb(c.RSSEndKB))
			}
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", srv, seeding, store, secs(r.readyMs()), mbOr(r.idleRSSKB()),
			mbOr(r.clientsRSSKB()), cold, after, cell(r.notes()))
	}
	w("\n")
	base := dr.S6["herald-before"]
	perMsg := base.bytesPerMessage()
	w("| S6 target | herald | met | herald-before | met |\n|---|---:|---|---:|---|\n")
	row := func(target string, val func(*s6) (string, bool, bool)) {
		w("| %s ", target)
		for _, srv := range designs {
			v, ok, known := val(dr.S6[srv])
			met := "—"
			if known {
				met = yes(ok)
			}
			w("| %s | %s ", v, met)
		}
		w("|\n")
	}
	row("a fresh replica reaches /readyz in ≤ 1 s", func(r *s6) (string, bool, bool) {
		v := r.readyMs()
		return secs(v) + " s", v >= 0 && v <= s6ReadyMs, v >= 0
	})
	row("≤ 100 MB RSS with no clients (after 5 s idle)", func(r *s6) (string, bool, bool) {
		v := r.idleRSSKB()
		return mbOr(v) + " MB", v >= 0 && float64(v)*1024 <= s6IdleBytes, v >= 0
	})
	allowance := func(r *s6) float64 {
		n := r.watchedMessages()
		if n < 0 || perMsg < 0 {
			return -1
		}
		return float64(n) * perMsg
	}
	watchedDesc := "the watched rooms"
	if n := dr.S6["herald"].watchedMessages(); n >= 0 {
		watchedDesc = fmt.Sprintf("the watched rooms (%s messages)", thousands(n))
	}
	row(fmt.Sprintf("≤ 100 MB plus %s with 200 clients watching 100 rooms", watchedDesc), func(r *s6) (string, bool, bool) {
		v := r.clientsRSSKB()
		a := allowance(r)
		if v < 0 {
			return "—", false, false
		}
		if a < 0 {
			return fmt.Sprintf("%s MB (allowance unknown)", mbOr(v)), false, false
		}
		limit := s6IdleBytes + a
		// The RSS is sampled after the clients' run whatever happened: it
		// measures 200 watching clients only if that run passed.
		return fmt.Sprintf("%s MB of %.0f", mbOr(v), limit/1e6), float64(v)*1024 <= limit && r.Watch.Pass, true
	})
	row(fmt.Sprintf("a cold room of %s messages answers its first query at p99 ≤ 250 ms", dr.bigMessages()), func(r *s6) (string, bool, bool) {
		if !r.coldOK() {
			if r != nil && r.Cold != nil {
				return fmt.Sprintf("%d errors", len(r.Cold.Errors)), false, true
			}
			return "—", false, false
		}
		return fmt.Sprintf("%.1f ms", r.Cold.Latency.P99), r.Cold.Latency.P99 <= s6ColdP99Ms, true
	})
	w("\n")
	if perMsg >= 0 {
		w("\"Those rooms\" are priced at what a message costs today: herald-before's idle RSS over the messages\n")
		w("it holds, %.0f bytes per message, times the messages in the 100 watched rooms (%d big ones and\n", perMsg, countBig(dr.S6["herald"]))
		w("small ones). A cold room's first query is the round trip of the query above from `bench/seed\n")
		w("cold`, one query per room, one at a time (%d rooms: p99 by nearest rank is the largest).\n\n", coldN(dr.S6["herald"]))
		w("Where a cold load's time goes: `go test -run x -bench ColdRoomLoad ./chat/` loads a room of 10,000\n")
		w("messages interleaved with 40,000 others in one partition (about one of S6's 16), with NATS in the\n")
		w("process, and reports CPU per load (sub-benchmarks `service`, `read`, `fold`, `decode`). At 435453a\n")
		w("the decoding and folding of the events went from ~18 to ~12 ms of CPU per load (shared strings, an\n")
		w("ASCII fast path, one allocation per posted message), and at 90f9f47 the log read from ~65 to ~55\n")
		w("ms (pull requests sent by hand on one subscription, instead of jetstream's Fetch, which subscribed\n")
		w("and started a goroutine per request); medians of alternating runs on this 2-core machine. What is\n")
		w("left of the read is the NATS server picking the room's entries out of its partition (~23 ms) and\n")
		w("nats.go parsing each message with its stored headers; the p99 of 30 single queries also moves with\n")
		w("whatever else the machine does at that moment.\n\n")
	}

	w("## S7 — traffic elsewhere: B takes posts into other rooms while A serves its subscribers\n\n")
	w("One NATS, replicas A and B of the same design (separate processes). At A, 1,000 WebSocket\n")
	w("subscribers on 10 rooms (`loadgen`, posting its events through %s). A subscriber's latency runs\n", dr.publishAt())
	w("from just before its event's post is sent, so a post that waits at a busy replica counts.\n")
	w("Once they are live, A is watched for a control window with only those events, then `bench/seed rate`\n")
	w("posts into other rooms through B (several posts per request, one room per request) for the window;\n")
	w("A's CPU (utime+stime from /proc) and RSS are sampled at the start and end of each window. NATS, B\n")
	w("and that traffic stand for other machines and run at a lower priority (nice %s), so A and its clients\n", dr.nice())
	w("get a CPU when they need one; \"machine busy\" is how much of both cores everything used.\n\n")
	if flags := designFlags(func(srv string) (string, bool) {
		r := dr.S7[srv]
		return flagsOf(r != nil && r.Env != nil, func() string { return r.Env.ReplicaFlags })
	}); flags != "" {
		w("S7's replica flags (besides `--addr`, `--nats-url`, `--data-dir`): %s.\n", flags)
		w("Without `--room-cache` a replica has the default budget (256 MiB): B writes into 1,000 rooms\n")
		w("round-robin, and a budget smaller than their history makes most posts load their room first\n")
		w("(`BENCH_S7_ROOM_CACHE=1` runs S7 with S6's budget to show it).\n\n")
	}
	w("| server | B: posts/s achieved of target (rooms, posts per request) | B: HTTP p50 / p99 ms | A: CPU %% of one core, control → during | machine busy %%, control → during | A: RSS MB start → end of the window (peak) | A's subscribers: deliveries, p50 / p99 ms | their events' posts: at, HTTP p50 / p99 ms | lost / dup / reordered | loadgen verdict |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	for _, srv := range designs {
		r := dr.S7[srv]
		if r == nil {
			w("| %s | not run ||||||||| \n", srv)
			continue
		}
		rate, httpLat, cpu, busy, rss := "—", "—", "—", "—", "—"
		if rr := r.Rate; rr != nil {
			rate = fmt.Sprintf("%.0f of %.0f (%d, %d)", rr.AchievedPerSec, rr.Target, rr.Rooms, rr.Batch)
			if rr.Unsent > 0 {
				rate += fmt.Sprintf(", %d requests not sent in the window", rr.Unsent)
			}
			if rr.Failed > 0 {
				rate += fmt.Sprintf(", %d failed", rr.Failed)
			}
			if rr.HTTP.N > 0 {
				httpLat = fmt.Sprintf("%.1f / %.1f", rr.HTTP.P50, rr.HTTP.P99)
			}
			if a := rr.Watched; a != nil && a.Error == "" && a.WindowSec > 0 {
				cpu, busy = fmt.Sprintf("%.2f", a.CPUPctOneCore), a.busy()
				if c := rr.Control; c != nil && c.Error == "" && c.WindowSec > 0 {
					cpu = fmt.Sprintf("%.2f → %.2f", c.CPUPctOneCore, a.CPUPctOneCore)
					busy = c.busy() + " → " + a.busy()
				}
				rss = fmt.Sprintf("%.1f → %.1f (%.1f)", mb(a.RSSStartKB), mb(a.RSSEndKB), mb(a.RSSMaxKB))
			}
		}
		deliveries, posts, anomalies, verdictCell := "—", "—", "—", "—"
		if l := r.Loadgen; l != nil {
			if l.Delivery != nil {
				deliveries = fmt.Sprintf("%d of %d, %s / %s", l.Delivery.Received, l.Delivery.Expected, num(l.p50()), num(l.p99()))
			}
			if l.Publish != nil {
				at := "B"
				if r.Env != nil && r.Env.PublishAt != "" {
					at = r.Env.PublishAt
				}
				posts = fmt.Sprintf("%s, %.1f / %.1f", at, l.Publish.HTTP.P50, l.Publish.HTTP.P99)
			}
			anomalies, verdictCell = l.anomalies(), verdict(l)
		}
		if r.Incomplete {
			verdictCell += " (scenario incomplete)"
		}
		w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", srv, rate, httpLat, cpu, busy, rss, deliveries, posts, anomalies, verdictCell)
	}
	w("\n")
	target := 5000.0
	window := 30.0
	for _, srv := range designs {
		if r := dr.S7[srv]; r != nil && r.Rate != nil && r.Rate.Target > 0 {
			target, window = r.Rate.Target, r.Rate.WindowSec
			break
		}
	}
	w("| S7 target | herald | met | herald-before | met |\n|---|---:|---|---:|---|\n")
	row7 := func(target string, val func(*s7) (string, bool, bool)) {
		w("| %s ", target)
		for _, srv := range designs {
			v, ok, known := val(dr.S7[srv])
			met := "—"
			if known {
				met = yes(ok)
			}
			w("| %s | %s ", v, met)
		}
		w("|\n")
	}
	row7(fmt.Sprintf("B sustains %s posts/s for %.0f s (the scenario's condition: ≥ %.0f%%, none failed)", thousands(int64(target)), window, 100*s7RateFraction),
		func(r *s7) (string, bool, bool) {
			if r == nil || r.Rate == nil {
				return "—", false, false
			}
			return fmt.Sprintf("%.0f/s", r.Rate.AchievedPerSec), r.rateOK(), true
		})
	row7("A's CPU ≤ 2% of one core meanwhile", func(r *s7) (string, bool, bool) {
		v := r.aCPU()
		if v < 0 {
			return "—", false, false
		}
		return fmt.Sprintf("%.2f%%", v), v <= s7CPUPct, true
	})
	row7(fmt.Sprintf("A's RSS does not grow (≤ %d KiB over the window)", s7RSSGrowthKB), func(r *s7) (string, bool, bool) {
		if r.aCPU() < 0 {
			return "—", false, false
		}
		g := r.Rate.Watched.RSSGrowthKB
		return fmt.Sprintf("%+.1f MB", mb(g)), g <= s7RSSGrowthKB, true
	})
	row7("A's subscribers get their rooms' events exactly once, in order, at p99 ≤ 50 ms", func(r *s7) (string, bool, bool) {
		l := r.loadgen()
		if l == nil || l.Delivery == nil {
			return "—", false, false
		}
		return fmt.Sprintf("%.1f ms, %s", l.p99(), l.anomalies()), r.subscribersOK(), true
	})
	w("\n")
}

// coldQuery is bench/seed cold's query, shown in the report.
const coldQuery = `{ room(id: $id) { name messageCount messages(last: 50) { nodes { id text } } } }`

func countBig(r *s6) int {
	if r == nil || r.Manifest == nil {
		return 0
	}
	big := map[string]bool{}
	for _, room := range r.Manifest.Rooms {
		if room.Big {
			big[room.ID] = true
		}
	}
	n := 0
	for _, id := range r.Watched {
		if big[id] {
			n++
		}
	}
	return n
}

func coldN(r *s6) int {
	if r == nil || r.Cold == nil {
		return 0
	}
	return r.Cold.Latency.N
}

// notes are the problems of one design's S6 run.
func (r *s6) notes() string {
	var n []string
	if r.Incomplete {
		n = append(n, "scenario incomplete")
	}
	if m := r.Manifest; m != nil {
		if m.Error != "" {
			n = append(n, "seeding failed: "+m.Error)
		} else if !m.Verified {
			n = append(n, "seeded counts not verified")
		}
	}
	if r.Ready != nil && r.Ready.Error != "" {
		n = append(n, "not ready: "+r.Ready.Error)
	}
	if r.Watch != nil && !r.Watch.Pass {
		n = append(n, "clients: "+verdict(r.Watch))
	}
	if r.Cold != nil && len(r.Cold.Errors) > 0 {
		n = append(n, fmt.Sprintf("cold queries: %d errors, first: %s", len(r.Cold.Errors), r.Cold.Errors[0]))
	}
	if len(n) == 0 {
		return "seeded and verified"
	}
	return strings.Join(n, "; ")
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func secs(ms float64) string {
	if ms < 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", ms/1000)
}

func mbOr(kib int64) string {
	if kib < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", mb(kib))
}

// designTargets are S6's and S7's rows of "Ratios and targets", for herald.
func designTargets(w func(string, ...any), dr designResults) {
	h6, h7 := dr.S6["herald"], dr.S7["herald"]
	if h6 != nil {
		if v := h6.readyMs(); v >= 0 {
			w("| S6: a fresh replica reaches /readyz in ≤ 1 s (herald-before: %s s) | %.2f s | %s |\n", secs(dr.S6["herald-before"].readyMs()), v/1000, yes(v <= s6ReadyMs))
		}
		if v := h6.idleRSSKB(); v >= 0 {
			w("| S6: ≤ 100 MB RSS with no clients (herald-before: %s MB) | %.1f MB | %s |\n", mbOr(dr.S6["herald-before"].idleRSSKB()), mb(v), yes(float64(v)*1024 <= s6IdleBytes))
		}
		if h6.coldOK() {
			w("| S6: cold room first query p99 ≤ 250 ms | %.1f ms | %s |\n", h6.Cold.Latency.P99, yes(h6.Cold.Latency.P99 <= s6ColdP99Ms))
		}
	}
	if h7 != nil {
		if v := h7.aCPU(); v >= 0 {
			w("| S7: A's CPU ≤ 2%% of one core while B takes %.0f posts/s (achieved) | %.2f%% | %s |\n", h7.Rate.AchievedPerSec, v, yes(v <= s7CPUPct && h7.rateOK()))
			g := h7.Rate.Watched.RSSGrowthKB
			w("| S7: A's RSS does not grow | %+.1f MB | %s |\n", mb(g), yes(g <= s7RSSGrowthKB && h7.rateOK()))
		}
		if l := h7.loadgen(); l != nil && l.Delivery != nil {
			w("| S7: A's subscribers exactly once, in order, p99 ≤ 50 ms | %.1f ms, %s | %s |\n", l.p99(), l.anomalies(), yes(h7.subscribersOK()))
		}
	}
}

// designFlags lists each design's replica flags as "design `flags`",
// joined with "; ", for the designs whose scenario recorded them.
func designFlags(of func(srv string) (string, bool)) string {
	var flags []string
	for _, srv := range designs {
		if f, ok := of(srv); ok {
			flags = append(flags, fmt.Sprintf("%s `%s`", srv, f))
		}
	}
	return strings.Join(flags, "; ")
}

// flagsOf is get() when known, so that a missing result is never read.
func flagsOf(known bool, get func() string) (string, bool) {
	if !known {
		return "", false
	}
	return get(), true
}
