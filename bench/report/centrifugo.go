package main

import (
	"fmt"
	"slices"
	"strings"
)

// Centrifugo as a third peer (issue 14): bench/run builds the version it
// pins and runs it in S1–S5 as the server "centrifugo", taking turns with
// the others, driven by loadgen --transport centrifugo. Its rows stand in
// every S1–S5 table; issue 14's targets compare Herald with it.

// centrifugoServer is Centrifugo in the results' file names and tables.
const centrifugoServer = "centrifugo"

// Issue 14's targets.
const (
	cfCPUTarget  = 1.0 // S1: Herald's CPU-s per 1,000 deliveries over Centrifugo's (medians)
	cfRateTarget = 0.9 // S1: Herald's deliveries/s over Centrifugo's (medians)
	s2RateTarget = 1.0 // S2: Herald's deliveries/s over the baseline's (medians)
	s4P99Target  = 1.2 // S4: Herald's p99 over the baseline's (median-p99 runs)
	cfIdleKiB    = 10  // S3: Herald's RSS per idle subscribed socket
	cfIdleUs     = 3   // S5: Herald's µs of server CPU per socket per second
)

// centrifugoCommand reproduces Herald's rows and Centrifugo's alone.
const centrifugoCommand = `BENCH_SERVERS="herald centrifugo" bench/run S1 S3 S5`

// hasCentrifugo says whether any scenario ran Centrifugo.
func hasCentrifugo(all map[string]runs) bool {
	return slices.ContainsFunc(scenarios, func(s struct{ id, title string }) bool {
		return len(all[s.id+"-"+centrifugoServer]) > 0
	})
}

// centrifugoIntro says, at the top of a report with Centrifugo rows, what
// Centrifugo is here and what is and is not like for like. about is the
// binary's `centrifugo version`.
func centrifugoIntro(w func(string, ...any), about string, all map[string]runs) {
	if !hasCentrifugo(all) {
		return
	}
	if about == "" {
		about = "version not recorded"
	}
	w("## Centrifugo, the third peer\n\n")
	w("Centrifugo runs in S1–S5 as a fourth server beside Herald, the baseline and the peer\n")
	w("(`centrifugo`), taking turns with them: built by `bench/run` from its Go module at the version\n")
	w("pinned there (unless `BENCH_CENTRIFUGO_BIN` named a binary; this one says `%s`), configured by\n", about)
	w("`bench/centrifugo/config.json`, and driven by the same load generator (`loadgen --transport\n")
	w("centrifugo`) from the same loopback sources: each subscriber a WebSocket speaking Centrifugo's\n")
	w("JSON client protocol, each room a channel, each event one `POST /api/publish` whose data is\n")
	w("`{\"text\": …}`, the text the GraphQL servers' events carry. Reproduce Herald's rows and\n")
	w("Centrifugo's alone: `%s`.\n\n", centrifugoCommand)
	w("%s\n", centrifugoLikeForLike)
}

// centrifugoLikeForLike are the like-for-like notes of every report with
// Centrifugo rows (bench/README.md says the same).
const centrifugoLikeForLike = `What is not like for like:

- **Centrifugo runs no GraphQL execution.** A publication's data is the JSON the publisher
  posted, wrapped in Centrifugo's push envelope once per channel and written to each subscriber;
  there is no subscription document to parse or validate and no selection set to execute. Herald
  executes each event's selection once and writes it to every member.
- **Centrifugo holds no store on publish.** Its channels keep no history (the default): a
  publication is broadcast from memory and forgotten, with no log, no sequence and no cursor, so a
  client that reconnects cannot resume. Herald appends every post to its durable event log
  (embedded NATS JetStream) before it fans the event out, and every event carries a cursor.
- Publishing is one HTTP request per event for both (Herald: the postMessage mutation, Centrifugo:
  its HTTP API), one in flight per room, as for every server here.
- Keepalive: Herald pings every 15 s, Centrifugo every 25 s (its default ping_interval), and
  the load generator answers both; S5's idle CPU counts each server's own pings.
- Slow consumers: Centrifugo disconnects a client whose queue passes client.queue_max_size (1 MiB
  by default); Herald closes a socket with 1024 frames queued. Neither happened in a run that
  shows 0 lost.

Centrifugo's settings besides its defaults (none of them is tuning): anonymous connections
(client.allow_anonymous_connect_without_token) and anonymous subscriptions in the default
namespace (allow_subscribe_for_anonymous, allow_subscribe_for_client); the HTTP API without an
API key (http_api.insecure: loopback only); usage statistics off (a source build has nowhere to
send them anyway); client.allowed_origins left empty, which admits requests without an Origin
header, as the load generator's are; log level warn (Herald runs with --log-level warn); the
address and port. Engine, broker, WebSocket buffers, queues and GOMAXPROCS are Centrifugo's
defaults.
`

// centrifugoNote says, under S1's table, Herald's throughput and CPU
// over Centrifugo's round by round: the machine's load drifts between
// rounds more than within one.
func centrifugoNote(w func(string, ...any), id string, all map[string]runs) {
	h, cf := all[id+"-herald"], all[id+"-"+centrifugoServer]
	if id != "S1" || len(h) < 2 || len(cf) < 2 {
		return
	}
	w("Herald's over Centrifugo's, round by round: deliveries/s %s; CPU-s per 1k deliveries %s.\n\n",
		roundRatios(h, cf, (*result).deliveries), roundRatios(h, cf, (*result).cpuPer1k))
}

// roundRatios gives of(a)/of(b) for each pair of runs made in one round,
// in the order run.
func roundRatios(a, b runs, of func(*result) float64) string {
	n := min(len(a), len(b))
	parts := make([]string, 0, n)
	for i := range n {
		if d := of(b[i]); d > 0 && of(a[i]) >= 0 {
			parts = append(parts, fmt.Sprintf("%.2f", of(a[i])/d))
		}
	}
	return strings.Join(parts, ", ")
}

// centrifugoTargets are issue 14's rows of "Ratios and targets" for
// scenario id: S1's two ratios (of the medians, Centrifugo's over its
// passing runs) need Centrifugo's runs and every Herald run passed;
// S3's and S5's are Herald's own numbers, Centrifugo's given beside them.
func centrifugoTargets(w func(string, ...any), id string, all map[string]runs, results map[string]*result) {
	h, cf := results[id+"-herald"], results[id+"-"+centrifugoServer]
	if h == nil {
		return
	}
	switch id {
	case "S1":
		// Centrifugo's medians are of its passing runs (denominator).
		const cpuTarget = "S1 against Centrifugo: Herald's server CPU-s per 1k deliveries ≤ 1.0× Centrifugo's"
		const rateTarget = "S1 against Centrifugo: Herald's deliveries/s ≥ 0.9× Centrifugo's"
		cf, cfFailed := denominator(all, id+"-"+centrifugoServer, byRate)
		switch {
		case cfFailed:
			failedRatio(w, cpuTarget, "Centrifugo")
			failedRatio(w, rateTarget, "Centrifugo")
			return
		case cf == nil: // Centrifugo was not run: no targets
			return
		case cf.deliveries() <= 0:
			unmeasuredRatio(w, cpuTarget, "Centrifugo's deliveries/s")
			unmeasuredRatio(w, rateTarget, "Centrifugo's deliveries/s")
			return
		}
		passed := all[id+"-herald"].passed()
		s1CPURatio(w, all, cpuTarget, id+"-"+centrifugoServer, "Centrifugo", cfCPUTarget)
		if h.deliveries() < 0 {
			unmeasuredRatio(w, rateTarget, "Herald's deliveries/s")
			return
		}
		r := h.deliveries() / cf.deliveries()
		w("| %s (medians, %.0f against %.0f) | %.2f× | %s |\n", rateTarget, h.deliveries(), cf.deliveries(), r, yes(r >= cfRateTarget && passed))
	case "S3":
		w("| S3 against Centrifugo: ≤ 10 KiB server RSS per idle subscribed socket (after the 20 s idle; Centrifugo: %s) | %.1f KiB | %s |\n",
			beside(cf, (*result).idleRSS, h.idleRSS(), "%.1f KiB"), h.idleRSS(), yes(h.idleRSS() > 0 && h.idleRSS() <= cfIdleKiB && h.Pass))
	case "S5":
		w("| S5 against Centrifugo: ≤ 3 µs of server CPU per socket per second (Centrifugo: %s) | %.2f µs | %s |\n",
			beside(cf, (*result).idleUs, h.idleUs(), "%.2f µs"), h.idleUs(), yes(h.idleUs() >= 0 && h.idleUs() <= cfIdleUs && h.Pass))
	}
}

// beside gives Centrifugo's value of a measure and Herald's over it, or
// why there is none.
func beside(cf *result, of func(*result) float64, herald float64, format string) string {
	if cf == nil {
		return "not run"
	}
	v := of(cf)
	if v < 0 {
		return "not measured"
	}
	s := fmt.Sprintf(format, v)
	if v > 0 {
		s += fmt.Sprintf(", Herald's %.2f× that", herald/v)
	}
	if !cf.Pass {
		s += ", its run failed"
	}
	return s
}
