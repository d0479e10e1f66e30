package main

import (
	"fmt"
	"strings"
)

// Herald over Server-Sent Events (issue 13): in S1 and S3, bench/run also
// runs Herald with its subscribers on graphql-sse event streams
// (loadgen --transport sse), each run right after Herald's WebSocket run,
// as the server "herald-sse". Its rows stand beside Herald's, and two
// targets compare the two transports.

// sseServer is Herald with SSE subscribers.
const sseServer = "herald-sse"

// Issue 13's targets.
const (
	sseRateTarget = 0.9 // SSE deliveries/s over WebSocket's, S1
	sseIdleKiB    = 12  // RSS per idle SSE stream, S3
)

// sseCommand reproduces the SSE rows and the WebSocket rows they are
// compared with, alone.
const sseCommand = `BENCH_SERVERS="herald herald-sse" bench/run S1 S3`

// hasSSE says whether scenario id runs Herald over SSE.
func hasSSE(id string) bool { return id == "S1" || id == "S3" }

// serversOf lists the servers with a row in scenario id's table.
func serversOf(id string) []string {
	out := make([]string, 0, len(servers))
	for _, srv := range servers {
		if srv != sseServer || hasSSE(id) {
			out = append(out, srv)
		}
	}
	return out
}

// label names a server in the tables.
func label(srv string) string {
	if srv == sseServer {
		return "herald over SSE"
	}
	return srv
}

// pairRatios gives SSE's deliveries/s over WebSocket's for each pair of
// runs made back to back, in the order run: the machine's load drifts
// between pairs more than within one.
func pairRatios(ws, sse runs) string {
	n := min(len(ws), len(sse))
	parts := make([]string, 0, n)
	for i := range n {
		if w := ws[i].deliveries(); w > 0 {
			parts = append(parts, fmt.Sprintf("%.2f", sse[i].deliveries()/w))
		}
	}
	return strings.Join(parts, ", ")
}

// sseNote says, under a table with SSE rows, how they were measured.
func sseNote(w func(string, ...any), id string, all map[string]runs) {
	if len(all[id+"-"+sseServer]) == 0 {
		return
	}
	w("\"herald over SSE\" is the same Herald with every subscriber on a graphql-sse event stream (one POST\n")
	w("with `Accept: text/event-stream` per subscriber, `loadgen --transport sse`) instead of a WebSocket,\n")
	w("run right after Herald's WebSocket run")
	if ws, sse := all[id+"-herald"], all[id+"-"+sseServer]; len(ws) > 1 && len(sse) > 1 {
		w(";\nSSE's deliveries/s over WebSocket's, pair by pair: %s", pairRatios(ws, sse))
	}
	w(".\nReproduce Herald's WebSocket and SSE rows alone: `%s`.\n\n", sseCommand)
}

// sseTargets are the SSE rows of "Ratios and targets" for scenario id.
// S1's ratio divides by the median of Herald's passing WebSocket runs
// (denominator) and needs every SSE run passed.
func sseTargets(w func(string, ...any), id string, all map[string]runs, results map[string]*result) {
	ws, sse := results[id+"-herald"], results[id+"-"+sseServer]
	if sse == nil {
		return
	}
	switch id {
	case "S1":
		const target = "S1 over SSE: Herald's deliveries/s on event streams ≥ 0.9× on WebSockets"
		var wsFailed bool
		if ws, wsFailed = denominator(all, id+"-herald", byRate); wsFailed {
			failedRatio(w, target, "WebSocket")
			return
		}
		switch {
		case ws == nil || ws.deliveries() <= 0:
			unmeasuredRatio(w, target, "Herald's deliveries/s on WebSockets")
			return
		case sse.deliveries() < 0:
			unmeasuredRatio(w, target, "Herald's deliveries/s on event streams")
			return
		}
		rate := sse.deliveries() / ws.deliveries()
		w("| %s (%.0f against %.0f) | %.2f× | %s |\n",
			target, sse.deliveries(), ws.deliveries(), rate, yes(rate >= sseRateTarget && all[id+"-"+sseServer].passed()))
	case "S3":
		wsIdle := "not run"
		if ws != nil {
			wsIdle = fmt.Sprintf("%.1f KiB", ws.idleRSS())
		}
		w("| S3 over SSE: ≤ 12 KiB server RSS per idle SSE stream (after the 20 s idle; right after connecting: %.1f KiB; a WebSocket: %s) | %.1f KiB | %s |\n",
			sse.rssPerConn(), wsIdle, sse.idleRSS(), yes(sse.idleRSS() > 0 && sse.idleRSS() <= sseIdleKiB && sse.Pass))
	}
}
