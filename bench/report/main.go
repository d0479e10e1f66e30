// Command report turns the load generator's JSON results of bench/run into
// docs/BENCHMARKS.md: the machine, the command, a table per scenario and
// the ratios against the targets of issue 5.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is the part of bench/loadgen's JSON report used here.
type result struct {
	Mode     string   `json:"mode"`
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures"`
	Setup    struct {
		Established int `json:"connections_established"`
	} `json:"setup"`
	Delivery *struct {
		Expected   int64   `json:"expected"`
		Received   int64   `json:"received"`
		Lost       int64   `json:"lost"`
		Duplicated int64   `json:"duplicated"`
		Reordered  int64   `json:"reordered"`
		Misrouted  int64   `json:"misrouted"`
		PerSecond  float64 `json:"per_sec"`
	} `json:"delivery"`
	Publish *struct {
		RatePerSec float64 `json:"rate_per_sec"`
		HTTP       struct {
			P50 float64 `json:"p50_ms"`
			P99 float64 `json:"p99_ms"`
		} `json:"http_latency"`
	} `json:"publish"`
	Latency *struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
		Max float64 `json:"max_ms"`
	} `json:"latency"`
	// Idle's server measures are null when loadgen could not read the
	// server (its run then failed): not measured, not 0.
	Idle *struct {
		UsPerConnPerSec *float64 `json:"server_cpu_us_per_conn_per_sec"`
		RSSPerConnKB    *float64 `json:"server_rss_per_conn_kb"`
	} `json:"idle"`
	Server *struct {
		RSSPerConnKB  float64 `json:"rss_per_conn_kb"`
		CPUPer1000    float64 `json:"cpu_sec_per_1000_deliveries"`
		RSSBeforeKB   int64   `json:"rss_before_kb"`
		RSSAfterRunKB int64   `json:"rss_after_run_kb"`
	} `json:"server"`
}

var (
	servers   = []string{"herald", sseServer, "baseline", "peer", centrifugoServer}
	scenarios = []struct{ id, title string }{
		{"S1", "fan-out: 1 room × 2,000 subscribers, 1,000 events as fast as possible"},
		{"S2", "spread: 200 rooms × 10 subscribers, 2,000 events round-robin"},
		{"S3", "idle memory: 19,000 connections, one subscription each, idle 20 s"},
		{"S4", "latency: 5,000 subscribers in 50 rooms, 200 events/s for 30 s"},
		{"S5", "idle cost: 19,000 connections idle 60 s with keepalive"},
	}
)

func main() {
	dir := flag.String("dir", "", "directory with <scenario>-<server>.json files")
	out := flag.String("out", "docs/BENCHMARKS.md", "markdown file to write")
	var m meta
	flag.StringVar(&m.command, "command", "bench/run", "the command that produced the results")
	flag.StringVar(&m.beforeCommit, "before-commit", "f25c33e", "the commit herald-before (S6, S7) was built from")
	flag.StringVar(&m.centrifugo, "centrifugo", "", "what `centrifugo version` said of the Centrifugo run (S1-S5)")
	flag.Parse()
	results, err := load(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	dr, err := loadDesigns(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if dr.S8, err = loadS8(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, []byte(render(results, dr, m)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// meta is what a report says besides the results.
type meta struct {
	command      string // the command that produced the results
	beforeCommit string // the commit herald-before (S6, S7) was built from
	centrifugo   string // `centrifugo version` of the Centrifugo that ran, if any
}

// runs holds every run of one scenario on one server, in the order run.
type runs []*result

// load reads <scenario>-<server>.json, or the repeated runs
// <scenario>-<server>.<n>.json (n from 1) that bench/run writes for the
// short throughput scenarios.
func load(dir string) (map[string]runs, error) {
	results := map[string]runs{}
	for _, s := range scenarios {
		for _, srv := range servers {
			numbered, err := numberedRuns(dir, s.id+"-"+srv)
			if err != nil {
				return nil, err
			}
			names := append([]string{s.id + "-" + srv + ".json"}, numbered...)
			for _, name := range names {
				data, err := os.ReadFile(filepath.Join(dir, name))
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return nil, err
				}
				var r result
				if err := json.Unmarshal(data, &r); err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				results[s.id+"-"+srv] = append(results[s.id+"-"+srv], &r)
			}
		}
	}
	return results, nil
}

// numberedRuns lists the files <prefix>.<n>.json in dir in the order of n.
// A run whose file is missing (its loadgen killed) leaves a gap, not the end
// of the list: the runs after it still count.
func numberedRuns(dir, prefix string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, prefix+".*.json"))
	if err != nil {
		return nil, fmt.Errorf("listing the runs of %s: %w", prefix, err)
	}
	type run struct {
		n    int
		name string
	}
	var found []run
	for _, m := range matches {
		name := filepath.Base(m)
		middle := strings.TrimSuffix(strings.TrimPrefix(name, prefix+"."), ".json")
		n, err := strconv.Atoi(middle)
		if err != nil || n < 1 || strconv.Itoa(n) != middle {
			continue // another scenario's file sharing the prefix, or not a run
		}
		found = append(found, run{n, name})
	}
	slices.SortFunc(found, func(a, b run) int { return cmp.Compare(a.n, b.n) })
	names := make([]string, len(found))
	for i, r := range found {
		names[i] = r.name
	}
	return names, nil
}

// measure is what a scenario's repeated runs are ranked by.
type measure struct {
	name   string
	of     func(*result) float64
	format string // of one value
}

var (
	byRate = measure{"deliveries/s", (*result).deliveries, "%.0f"}
	// S4 publishes at a fixed rate: its runs differ in their tail.
	byP99 = measure{"p99 ms", (*result).p99, "%.1f"}
)

// measureOf is how the runs of scenario id are ranked.
func measureOf(id string) measure {
	if id == "S4" {
		return byP99
	}
	return byRate
}

// median returns the run with the median m (the lower middle one for an
// even count) among the runs that measured it; nil if there is none. A run
// that failed before measuring (m is -1) is not ranked, as it would rank as
// the best p99 or CPU; it still fails its scenario's targets (passed). If no
// run measured m, the median is taken over all of them.
func (rs runs) median(m measure) *result {
	if len(rs) == 0 {
		return nil
	}
	sorted := slices.DeleteFunc(slices.Clone(rs), func(r *result) bool { return m.of(r) < 0 })
	if len(sorted) == 0 {
		sorted = slices.Clone(rs)
	}
	slices.SortStableFunc(sorted, func(a, b *result) int { return cmp.Compare(m.of(a), m.of(b)) })
	return sorted[(len(sorted)-1)/2]
}

// medianCPU is the median of the CPU per 1,000 deliveries of the runs that
// measured it; -1 if none did.
func (rs runs) medianCPU() float64 {
	var cpu []float64
	for _, r := range rs {
		if c := r.cpuPer1k(); c >= 0 {
			cpu = append(cpu, c)
		}
	}
	if len(cpu) == 0 {
		return -1
	}
	slices.Sort(cpu)
	return cpu[(len(cpu)-1)/2]
}

// passed reports whether the load generator passed every run: none failed
// its setup, its posts or its deliveries, or was interrupted.
func (rs runs) passed() bool {
	for _, r := range rs {
		if !r.Pass {
			return false
		}
	}
	return len(rs) > 0
}

// passing is the runs the load generator passed. A ratio target divides
// by the median of the other server's passing runs only: a run that lost
// deliveries, or whose posts or setup failed, is no measure of its server.
func (rs runs) passing() runs {
	return slices.DeleteFunc(slices.Clone(rs), func(r *result) bool { return !r.Pass })
}

// denominator is the run a ratio target divides by: the median by m of
// the passing runs of key. failed is set when key ran but none of its runs
// passed; the target is then not met (failedRatio).
func denominator(all map[string]runs, key string, m measure) (r *result, failed bool) {
	if len(all[key]) == 0 {
		return nil, false
	}
	r = all[key].passing().median(m)
	return r, r == nil
}

// failedRatio writes a ratio target whose denominator, who, failed every
// run: not met, with nothing to divide by.
func failedRatio(w func(string, ...any), target, who string) {
	w("| %s | — (every %s run failed: nothing to divide by) | **no** |\n", target, who)
}

// unmeasuredRatio writes a ratio target one of whose sides, what, was not
// measured: not met, and listed all the same, so that a target never
// silently drops out of the table.
func unmeasuredRatio(w func(string, ...any), target, what string) {
	w("| %s | — (%s not measured) | **no** |\n", target, what)
}

// s1CPURatio writes target, Herald's S1 CPU per 1,000 deliveries at most
// bound times that of who (the passing runs of key). A median CPU of 0 or
// less was not measured (-1: no run read its server's CPU, e.g. every run
// failed its setup): no ratio of it means anything, so the target is
// listed as not met.
func s1CPURatio(w func(string, ...any), all map[string]runs, target, key, who string, bound float64) {
	switch hCPU, oCPU := all["S1-herald"].medianCPU(), all[key].passing().medianCPU(); {
	case hCPU <= 0:
		unmeasuredRatio(w, target, "Herald's server CPU-s per 1k deliveries")
	case oCPU <= 0:
		unmeasuredRatio(w, target, who+"'s server CPU-s per 1k deliveries")
	default:
		r := hCPU / oCPU
		w("| %s (medians, %.4f against %.4f) | %.2f× | %s |\n", target, hCPU, oCPU, r, yes(r <= bound && all["S1-herald"].passed()))
	}
}

// clean reports whether no run lost, duplicated or reordered anything.
func (rs runs) clean() bool {
	for _, r := range rs {
		if !r.clean() {
			return false
		}
	}
	return true
}

// list gives every run's m in the order run.
func (rs runs) list(m measure) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf(m.format, m.of(r))
	}
	return strings.Join(parts, ", ")
}

func render(all map[string]runs, dr designResults, m meta) string {
	results := map[string]*result{}
	for key, rs := range all {
		results[key] = rs.median(measureOf(strings.SplitN(key, "-", 2)[0]))
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Benchmarks\n\n")
	w("Herald against the baseline (a minimal gorilla/websocket broadcaster writing one pre-encoded\n")
	w("frame per room event; `bench/baseline`) and the peer (stock gqlgen v0.17.95 with its WebSocket\n")
	w("transport and an in-memory per-room channel pub/sub; `bench/peer`), in one session on one machine,\n")
	w("with `bench/loadgen` on the same machine over loopback. Every server is a fresh process.\n")
	if hasCentrifugo(all) {
		w("S1–S5 also run Centrifugo, which runs no GraphQL and stores nothing (\"Centrifugo, the third peer\" below).\n")
	}
	w("S6 and S7 instead compare Herald with today's design (commit %s, before replicas loaded rooms on\n", m.beforeCommit)
	w("demand), replicas on an external NATS, with `bench/seed` seeding and posting. S1 and S3 also run\n")
	w("Herald with its subscribers on Server-Sent Events instead of WebSockets (\"herald over SSE\").\n\n")
	w("- Generated: %s by `bench/report`\n", time.Now().UTC().Format(time.RFC3339))
	w("- Machine: %s, %d cores, Go %s\n", cpuModel(), runtime.NumCPU(), runtime.Version())
	w("- Command: `%s` (the table below is exactly its output)\n\n", m.command)
	centrifugoIntro(w, m.centrifugo, all)

	for _, s := range scenarios {
		w("## %s — %s\n\n", s.id, s.title)
		w("| server | deliveries/s | server CPU-s per 1k deliveries | p50 ms | p99 ms | RSS per connection KiB, after connecting | RSS per idle connection KiB, after the idle period | idle CPU µs/conn/s | lost / dup / reordered | loadgen verdict |\n")
		w("|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
		for _, srv := range serversOf(s.id) {
			r := results[s.id+"-"+srv]
			if r == nil {
				w("| %s | not run ||||||||| \n", label(srv))
				continue
			}
			w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label(srv),
				num(r.deliveries()), num3(r.cpuPer1k()), num(r.p50()), num(r.p99()),
				num(r.rssPerConn()), num(r.idleRSS()), num(r.idleUs()), r.anomalies(), verdict(r))
		}
		w("\n")
		if repeated := len(all[s.id+"-herald"]) > 1; repeated {
			m := measureOf(s.id)
			w("Run %d times per server, the servers taking turns; each row is the run with the median\n", len(all[s.id+"-herald"]))
			w("%s. Every run's %s, in the order run:\n\n", m.name, m.name)
			for _, srv := range serversOf(s.id) {
				if rs := all[s.id+"-"+srv]; len(rs) > 0 {
					w("- %s: %s\n", label(srv), rs.list(m))
				}
			}
			w("\n")
		}
		sseNote(w, s.id, all)
		centrifugoNote(w, s.id, all)
		backlogNote(w, s.id, results)
		latencyNote(w, s.id, results)
	}
	renderDesigns(w, dr, m.beforeCommit)
	w("## Ratios and targets\n\n")
	w("| target | measured | met |\n|---|---|---|\n")
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	projection := ""
	// Ratios divide by the baseline's passing runs (denominator).
	h := results["S1-herald"]
	switch bl, blFailed := denominator(all, "S1-baseline", byRate); {
	case h != nil && blFailed:
		failedRatio(w, "S1: Herald CPU-s per 1k deliveries ≤ 1.5× baseline", "baseline")
		failedRatio(w, "S1: Herald deliveries/s ≥ 0.8× baseline", "baseline")
	case h != nil && bl != nil:
		passed := all["S1-herald"].passed()
		s1CPURatio(w, all, "S1: Herald CPU-s per 1k deliveries ≤ 1.5× baseline", "S1-baseline", "the baseline", 1.5)
		rate := ratio(h.deliveries(), bl.deliveries())
		w("| S1: Herald deliveries/s ≥ 0.8× baseline | %.2f× | %s |\n", rate, yes(rate >= 0.8 && passed))
	}
	sseTargets(w, "S1", all, results)
	centrifugoTargets(w, "S1", all, results)
	h = results["S2-herald"]
	switch bl, blFailed := denominator(all, "S2-baseline", byRate); {
	case h != nil && blFailed:
		failedRatio(w, "S2: Herald deliveries/s ≥ 0.7× baseline", "baseline")
		failedRatio(w, "S2 (issue 14): Herald deliveries/s ≥ 1.0× baseline", "baseline")
	case h != nil && bl != nil:
		passed := all["S2-herald"].passed()
		rate := ratio(h.deliveries(), bl.deliveries())
		w("| S2: Herald deliveries/s ≥ 0.7× baseline | %.2f× | %s |\n", rate, yes(rate >= 0.7 && passed))
		w("| S2 (issue 14): Herald deliveries/s ≥ 1.0× baseline (medians, %.0f against %.0f) | %.2f× | %s |\n",
			h.deliveries(), bl.deliveries(), rate, yes(rate >= s2RateTarget && passed))
	}
	if h := results["S3-herald"]; h != nil {
		w("| S3: ≤ 12 KiB server RSS per idle subscribed connection (after the 20 s idle; right after connecting: %.1f KiB) | %.1f KiB | %s |\n",
			h.rssPerConn(), h.idleRSS(), yes(h.idleRSS() > 0 && h.idleRSS() <= 12 && all["S3-herald"].passed()))
	}
	sseTargets(w, "S3", all, results)
	centrifugoTargets(w, "S3", all, results)
	if h := results["S4-herald"]; h != nil {
		// Zero lost in every run, not only the median one; and every run
		// passed, as events whose post failed are never counted lost.
		clean := all["S4-herald"].clean() && all["S4-herald"].passed()
		w("| S4: p99 publish-to-delivery ≤ 50 ms, zero lost | %.1f ms, %s | %s |\n", h.p99(), h.anomalies(), yes(h.p99() >= 0 && h.p99() <= 50 && clean))
		const s4Ratio = "S4 (issue 14): Herald's p99 ≤ 1.2× the baseline's, zero lost"
		bl, blFailed := denominator(all, "S4-baseline", byP99)
		switch {
		case blFailed:
			failedRatio(w, s4Ratio, "baseline")
		case bl == nil: // the baseline was not run: no target
		case bl.p99() <= 0:
			unmeasuredRatio(w, s4Ratio, "the baseline's p99")
		case h.p99() < 0:
			unmeasuredRatio(w, s4Ratio, "Herald's p99")
		default:
			r := h.p99() / bl.p99()
			w("| S4 (issue 14): Herald's p99 ≤ 1.2× the baseline's, zero lost (median-p99 runs, %.1f against %.1f ms) | %.2f× | %s |\n",
				h.p99(), bl.p99(), r, yes(r >= 0 && r <= s4P99Target && clean))
		}
	}
	if h := results["S5-herald"]; h != nil {
		us := h.idleUs()
		w("| S5: idle cost ≤ 3 µs of server CPU per connection per second | %.2f µs | %s |\n", us, yes(us >= 0 && us <= 3 && h.Pass))
		if us >= 0 && h.idleRSS() >= 0 { // not measured (-1): nothing to project
			projection = fmt.Sprintf("S5 projected per replica: 100,000 idle connections ≈ %.2f cores and %.2f GiB; "+
				"250,000 ≈ %.2f cores and %.2f GiB (S5's idle CPU and RSS per idle connection, projected linearly).\n",
				us*1e5/1e6, h.idleRSS()*1e5/(1<<20), us*2.5e5/1e6, h.idleRSS()*2.5e5/(1<<20))
		}
	}
	centrifugoTargets(w, "S5", all, results)
	designTargets(w, dr)
	// Every run of Herald's must also have passed: a run counts no loss
	// when it measured no delivery (its setup failed) or for the events
	// whose post failed (never expected).
	clean := true
	for _, s := range scenarios {
		for _, srv := range []string{"herald", sseServer} {
			if rs := all[s.id+"-"+srv]; !rs.clean() || len(rs) > 0 && !rs.passed() {
				clean = false
			}
		}
	}
	if l := dr.S7["herald"].loadgen(); l != nil && (!l.clean() || !l.Pass) {
		clean = false
	}
	w("| every scenario: zero lost, duplicated, reordered (Herald, every run) | | %s |\n\n", yes(clean))
	renderS8(w, dr.S8, results["S4-herald"])
	w("%s", projection)
	w("%s", notes)
	return b.String()
}

// notes explain how the numbers came about; they are part of every report.
const notes = `
## Notes

What was changed to get here (measured with 5,000–19,000 idle subscribed sockets):

- Each socket is served on a goroutine of its own and the upgrade handler returns, so the HTTP
  server releases the request, the response and the hijacked connection's buffers.
- The writer goroutine runs only while frames are queued: an idle socket has one goroutine (its
  reader), not two. Keepalive and init deadlines are one keeper goroutine for all sockets;
  sockets awaiting connection_init are checked every 250 ms. Acknowledged sockets were checked
  every second, each of them; the keeper now keeps each one's next due instant (its next ping,
  its keepalive deadline, its credentials' expiry) in one array and each second checks only the
  sockets due, so an idle socket is touched once per 15 s ping interval. S3 and S5 alone, the
  two Heralds alternating (bf0315a against d3651fd, 19,000 sockets): idle CPU 2.0, 2.1 → 1.7,
  1.7 µs per socket per second in S5 and 2.5, 2.2 → 1.7, 1.6 in S3.
- An idle server does not collect, so it never shrinks goroutine stacks: messages other than
  keepalive are handled on a short-lived goroutine the reader waits for, and keepalive ping/pong
  frames are recognised byte for byte (no decoder). RSS per idle socket went 30.5 → ~12.5 KiB;
  idle CPU ~3.5 → ~2 µs per socket per second.
- A reader parked inside gorilla's ReadMessage needs a 4 KiB stack. The reader now only waits for
  the socket to become readable (a one-byte non-blocking MSG_PEEK through the runtime poller, no
  allocation) and each message is read and handled on a short-lived goroutine, so the one
  goroutine of an idle socket stays on the 2 KiB stack it started with; gorilla reads through a
  buffer Herald keeps a handle on, so a message already buffered is not waited for. Keepalive
  frames are read into the stack rather than a fresh 512-byte slice each, so the heap no longer
  grows between collections while idle. RSS per idle socket ~12.5 → ~10 KiB
  (server/ws_idle_test.go guards the stack size in make test).
- Since 0c1f5b5 an idle socket has no goroutine at all. When a message has been handled and nothing
  more is buffered, the reader parks the socket with the replica's parker and returns. The parker
  is one epoll instance that the runtime's poller watches, with each socket registered one-shot.
  Input, a close or a read deadline starts the reader again on a new goroutine. The reader's 2 KiB
  stack counted twice in resident memory, because the collector's goal counts stacks too. S3's
  setup at 19,000 sockets with a heap profile taken in the idle: 10.4 → 7.4 KiB per idle socket,
  19,269 → 270 goroutines, idle CPU 2.6 → 2.0 µs per socket per second.
  Alternating bench/run S3 runs of Herald alone, f47f962 against 0c1f5b5: 9.5 and 10.4 → 7.5 and
  7.2 KiB per idle socket; idle CPU 2.05 and 2.18 → 2.03 and 1.92 µs per socket per second. One
  S5 pair: 2.22 → 2.37 µs. A pong now wakes the parker, which starts a goroutine and re-arms the
  socket (one epoll_ctl), where the waiting reader started a helper after a one-byte peek.
  (server/ws_idle_test.go now wants no goroutine per idle socket.)
- A write deadline is renewed only once half of it has gone, not for every frame: setting one
  updates a runtime timer, ~3% of Herald's CPU in S2. The writer goroutine starts from a function
  bound once per socket (no closure per burst).
- Every subscription event is executed and encoded once per replica and its bytes written to each
  member with only the id envelope. Herald allocates nothing per member per event. Herald
  frames every frame itself (gorilla only reads: one writer per socket, so a pong never lands
  inside a frame); a payload over 8 KiB goes out after its header in one writev instead of being
  copied per socket.
- Every fan-out is written by the shared execution itself when a socket has no writer running
  and nothing queued, with a write that never waits (a raw non-blocking write through the
  runtime poller): what the socket does not take goes to the front of its queue for a writer
  goroutine. That spares a goroutine start and a schedule for each delivery. A fan-out of more
  than 16 members is shared out in chunks of 16 with GOMAXPROCS − 1 long-lived helper goroutines,
  so that one room uses every core; the execution takes the chunks no helper has claimed and
  returns once every member has the event (chunks were 64 until 0c643a6: S4's 100-member fan-outs
  then ran mostly on one core, see S4 below). Until 524484b such fan-outs queued every frame and
  started a writer goroutine per socket per event: each grew its 2 KiB stack on its first write
  (runtime.newstack was 9% of Herald's CPU in S1), and the 2,000 of them per event kept the next
  mutation's response waiting behind the whole fan-out (its p50 was 21 ms in S1, now ~15).
  S1 alone, the two Heralds alternating (524484b against 1c7851a): CPU-s per 1,000 deliveries
  0.0103–0.0110 → 0.0089–0.0091, deliveries/s ~98,000 → ~110,000; S4's CPU per 1,000 deliveries
  0.0265 → 0.0212. A parked SSE or multipart stream takes the same direct write (one chunk per
  event), without which S1 over SSE fell to 0.83–0.90× WebSocket's. Keepalive pings and other connection-level
  frames take the same direct write: starting a writer for every ping of every idle socket was
  much of S5's idle cost (5,000 idle sockets, alternating runs: 2.4–2.8 → ~1.9 µs per socket
  per second).
- Per event: log entries are decoded by a strict hand-written parser instead of encoding/json's
  Decoder (~7.5 → ~1.3 µs, 17 → 6 allocations). With the deadline change, Herald's CPU per 1,000
  deliveries in S2 went from ~0.045 to ~0.042 s, averaged over alternating runs.
- Per event, fewer goroutine hand-offs: each change is offered straight into the subscription's
  buffered channel (no pump goroutine in between unless the buffer is full), and a publish takes
  no connection check first (it fails at once while disconnected anyway); a mutation's response
  and an event's cursor are encoded without encoding/json. With the direct writes above,
  Herald's CPU per 1,000 deliveries in S2 went ~0.042 → ~0.036 s and its rate up ~12% (six
  alternating pairs of 10,000-event runs).
- Rooms on demand (S6, S7): a replica no longer follows the whole log. A mutation is judged
  against the room the replica holds and appended with two headers (the room's expected last
  sequence over its subjects, which the stream checks); the stream republishes each stored event
  on a live subject, and only replicas holding the room subscribe to it. An event reaches a
  subscription through that core subscription and the live feed's goroutine, which since
  0a63ca5 also applies it (it used to hand it to a dispatcher goroutine, one wake-up more; the
  difference was below what alternating S2 and S4 runs on this machine can show). S1–S5 run against one embedded replica with the
  default --partitions 1 and --room-cache.
- HTTP streams (S1 and S3 over SSE): an idle SSE or multipart subscription held what net/http
  holds for a request in flight: its goroutine with the 8 KiB stack it grew while the request was
  parsed and joined, the connection's background reader, 10 KiB of read, write and chunking
  buffers, and the request; 30.8 KiB per idle SSE stream at 19,000 streams, against 9.8 for a
  WebSocket. Once a subscription over HTTP/1.1 has joined its execution, its connection is now
  hijacked and the request's goroutine returns, as a WebSocket upgrade's does: one goroutine on
  its starting stack waits for the client to go, a writer goroutine runs only while something is
  due (writing the chunked encoding itself), and the WebSockets' keeper sends the keepalives.
  30.8 → 7.5 KiB per idle SSE stream (WebSocket 9.9 KiB in the same session), deliveries/s in S1
  unchanged (1.04× → 1.02× WebSocket's, medians of five pairs). Since then the goroutine that
  waited for the client to go is gone too: the stream's connection is parked with the parker that
  idle WebSockets use, and read only when the client sends something or goes.

What the profile shows now: the remaining idle memory is gorilla's connection with its 512-byte
read buffer, the socket's descriptor and Herald's per-socket state (the socket, its operation and
its place in the room's execution), about 3 KiB live per socket, and the collector's headroom over
them; under fan-out, CPU goes to the write system call per frame (as in the
baseline) and, per event, to the mutation, the embedded NATS server and the one shared execution.

S3 against Centrifugo (issue 14's ≤ 10 KiB per idle subscribed socket) sat at the limit before
the sockets were parked: one S3 run, which is what a session records, landed on either side of it
(9.8, 10.0 and 10.3 KiB in three sessions in a row; alternating runs of one day, 9.4–10.1).

Reading the table:

- The load generator keeps one publish in flight per room (so its own publishing can never reorder
  a room); S1 has one room, so its "8 in flight" is effectively one.
- Herald runs with --mutation-rate 0: the load generator publishes as one user, thousands of
  posts a second, far above the default per-user limit (20/s).
- S1 and S2 are CPU-bound on two cores shared by the server and the load generator, and short
  (S2 publishes for about a second, S1 for 20 to 50 s), so a single run moves with whatever else
  the machine does at that moment: single runs put Herald's S2 ratio anywhere from 0.53 to 0.82 within one session.
  They are therefore run several times per server (by default S1 five times and S2, whose runs
  take seconds, nine), the servers taking turns, and each row is the median run. S4's p99 is a tail that a stall of a few hundred milliseconds anywhere on the
  machine moves, for the baseline as much as for Herald (one session had the baseline at 29.6 ms
  and Herald at 50.5 ms; alone, Herald's p99 is ~9 ms), so S4 is run five times the same way (it was three until sessions put
  Herald's ratio anywhere from 0.98 to 1.96),
  each row is the median-p99 run, and zero lost is required of every run. Running Herald with GOMAXPROCS=1 had cut its CPU per
  delivery by 10–25% in alternating runs (and capped it at one core): goroutines handing an event
  to one another across the two cores cost, which is what the direct writes and the offered
  changes remove. Profile-guided optimisation gained nothing measurable.
- The baseline sends no keepalive of its own; the peer (gqlgen's transport), Herald and Centrifugo
  do (Herald pings every 15 s, Centrifugo every 25 s), so idle CPU is not like for like.
- The peer drops messages to a subscriber whose channel (64) is full, as the common pattern does;
  its lost column would show it.
- Idle RSS per connection is (RSS at the end of the idle period − RSS before connecting) / sockets;
  "after connecting" is taken right after the subscriptions are live.

S2, where Herald's CPU goes per event (issue 14's "cheaper event", not met). bench/profile-s2
runs S2 with 20,000 events (PROFILE_EVENTS=40000 now that a run is faster: publishing must outlast
the profile) and profiles Herald for 5 s of the steady state. Before, at 050167c: ~2,000 posts/s,
~400 µs of server CPU per event, 4.0 s of samples. After, at e15b75c: 2,812 posts/s, ~360 µs per
event, 5.05 s of samples (S2's path is the same as at ae2fa3b: its rooms have 10 members):

| spent on | share, before | µs per event, before | share, after | µs per event, after | the baseline does it too |
|---|---:|---:|---:|---:|---|
| writes of the event to its 10 subscribers' sockets (one system call each) | 29% | 116 | 29% | 105 | yes |
| HTTP: net/http reading the request and writing the response | 13% | 53 | 11% | 41 | yes |
| the GraphQL mutation: decoding, gqlgen's execution, the response (not the resolver) | 9% | 35 | 10% | 35 | no |
| the resolver and chat.propose: judging, encoding, waiting for the apply (not the publish) | 4% | 18 | 4% | 16 | no |
| the JetStream publish and its acknowledgement (client side) | 3% | 14 | 2% | 9 | no |
| the embedded NATS server: storing the event, the ack, the delivery to the consumer | 16% | 64 | 16% | 56 | no |
| nats.go's reader and flusher | 3% | 14 | 3% | 11 | no |
| applying the event to the held room, offering it to the subscription | 5% | 20 | 3% | 11 | no |
| the shared execution: running the subscription's selection once, encoding it once | 4% | 17 | 5% | 18 | no |
| garbage collection in the background | 7% | 30 | 9% | 31 | its own |

The top flat entries are the write system call (30% before, 32% after), then runtime entries of
1–3% each (memmove, futex, allocation, GC scanning). What the baseline also does (the ten writes, the
HTTP request) is ~170 µs (after: ~145); the durable log (NATS server and client, ~90 µs; after:
~75), the GraphQL mutation and its domain work (~55 µs; after: ~50), the apply and the one shared
execution (~35 µs; after: ~30) are work the baseline does not do and that S2's ten deliveries per event cannot share out: Herald would have
to spend less than the baseline on the writes to reach 1.0×. The only way to spend less on them
is the coalesced write, and S2's traffic never gives it two frames for one socket (one post in
flight per room, ~100 ms apart per socket). No entry Herald owns is above 5%; the allocations
behind the GC are spread the same way (the largest, gqlgen's field sets and nats.go's message
copies, ~5% each of the bytes). S2's target of 1.0× is therefore reported as not met.

The same profile at 0c1f5b5 (3,155 posts/s, ~310 µs per event) splits the same way: writes 105 µs,
HTTP 32, the mutation 31, the resolver 11, the publish 11, the NATS server 45, nats.go 12, the apply
8, the execution 13, GC 23. S2 keeps both cores busy with the server and the load generator, and
the load generator's own CPU per event is the same whichever server it drives: the median was
227 µs per event for both Herald's runs and the baseline's, in the session at 5d7fb9e. So
deliveries/s go as 1 / (load generator + server) per event. In that session, Herald's server CPU
per event was 445 µs and the baseline's 315, and (227 + 315) / (227 + 445) = 0.81 against the 0.80
measured. Reaching 1.0× means Herald spending no more per event than the baseline.

S4, where Herald's latency goes (issue 14's p99 target of 1.2× the baseline's; the ratios table
says whether this session met it). The note under S4's table splits each server's latency into the
post's own round trip and publish to delivery. Inside Herald, a temporary probe (at 0a63ca5, not
committed) timed the steps of one S4 run's events, median / p99: the post's HTTP handler 0.41 / 2.3
ms, of which the append to the durable log (publish to acknowledgement) 0.21 / 1.9 ms and the wait
for the apply 0.04 / 0.16 ms; from the event entering the log to its execution 0.21 / 0.72 ms; the
fan-out to the room's 100 subscribers 1.16 / 4.1 ms. The fan-out is most of the median: 100 direct
writes of ~10 µs each, shared by the execution and one helper on the two cores, as the baseline's
100 writer goroutines share them. With chunks of 64 the helper, still waking, got the last 36; with
chunks of 16 (0c643a6) it takes about half: over 10 s windows of alternating runs, the probe's
fan-out median was 1.05–1.23 ms (1.14 in the middle) with 64 and 0.75–1.17 (0.97) with 16.
The load generator's post round trip (median ~1.8 ms) is much longer than Herald's handler: the rest
is the loopback and the load generator's own scheduling while it reads 20,000 deliveries a second,
which the baseline's posts pay too. Neither collections nor keepalives are the cause: GOGC=400 (6
collections in the run instead of 21) left the p99 at 8.1 ms, and with --ws-ping-interval 10m two
alternating pairs gave 8.7 → 7.3 and 8.6 → 8.9 ms. Reproduce: run Herald with --mutation-rate 0, then loadgen --connections 5000
--rooms 50 --events 6000 --rate 200; Herald's /metrics has herald_delivery_latency_seconds, from the
event entering the log to its frame being written.
`

func (r *result) deliveries() float64 {
	if r.Delivery == nil {
		return -1
	}
	return r.Delivery.PerSecond
}
func (r *result) cpuPer1k() float64 {
	if r.Server == nil || r.Delivery == nil {
		return -1
	}
	return r.Server.CPUPer1000
}
func (r *result) p50() float64 {
	if r.Latency == nil {
		return -1
	}
	return r.Latency.P50
}
func (r *result) p99() float64 {
	if r.Latency == nil {
		return -1
	}
	return r.Latency.P99
}
func (r *result) rssPerConn() float64 {
	if r.Server == nil {
		return -1
	}
	return r.Server.RSSPerConnKB // /proc reports "kB" meaning KiB
}

// idleRSS is the steady-state RSS per connection after the idle period,
// in KiB.
func (r *result) idleRSS() float64 {
	if r.Idle == nil || r.Idle.RSSPerConnKB == nil {
		return -1
	}
	return *r.Idle.RSSPerConnKB // /proc reports "kB" meaning KiB
}

func (r *result) idleUs() float64 {
	if r.Idle == nil || r.Idle.UsPerConnPerSec == nil {
		return -1
	}
	return *r.Idle.UsPerConnPerSec
}
func (r *result) clean() bool {
	return r.Delivery == nil || r.Delivery.Lost == 0 && r.Delivery.Duplicated == 0 && r.Delivery.Reordered == 0 && r.Delivery.Misrouted == 0
}
func (r *result) anomalies() string {
	if r.Delivery == nil {
		return "—"
	}
	return fmt.Sprintf("%d / %d / %d", r.Delivery.Lost, r.Delivery.Duplicated, r.Delivery.Reordered)
}

func verdict(r *result) string {
	if r.Pass {
		return "pass"
	}
	if len(r.Failures) > 0 {
		return "FAIL: " + strings.ReplaceAll(r.Failures[0], "|", "/")
	}
	return "FAIL"
}

func num(v float64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

func num3(v float64) string {
	if v < 0 {
		return "—"
	}
	return fmt.Sprintf("%.4f", v)
}

func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
		}
	}
	return "unknown CPU"
}
