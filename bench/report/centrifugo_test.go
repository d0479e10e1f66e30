package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// cpuRun is a loadgen JSON report of a publish run with its server CPU.
func cpuRun(perSec, cpuPer1k float64) string {
	return fmt.Sprintf(`{"mode":"publish","pass":true,"failures":[],"setup":{"connections_established":2000},
		"delivery":{"expected":2000000,"received":2000000,"per_sec":%g},
		"latency":{"p50_ms":30,"p99_ms":80,"max_ms":90},"server":{"rss_per_conn_kb":12,"cpu_sec_per_1000_deliveries":%g}}`, perSec, cpuPer1k)
}

// idleCostRun is a loadgen JSON report of an idle run with its idle CPU.
func idleCostRun(idleKiB, us float64, pass bool) string {
	return fmt.Sprintf(`{"mode":"idle","pass":%v,"failures":[],"setup":{"connections_established":19000},
		"idle":{"server_cpu_us_per_conn_per_sec":%g,"server_rss_per_conn_kb":%g},"server":{"rss_per_conn_kb":%g}}`, pass, us, idleKiB, idleKiB)
}

func TestRenderCentrifugo(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files      map[string]string
		about      string
		want, lack []string
	}{
		{
			name: "every target met",
			files: map[string]string{
				"S1-herald.1.json": cpuRun(80000, 0.0130), "S1-centrifugo.1.json": cpuRun(80000, 0.0140),
				"S1-herald.2.json": cpuRun(70000, 0.0150), "S1-centrifugo.2.json": cpuRun(78000, 0.0150),
				"S1-herald.3.json": cpuRun(90000, 0.0120), "S1-centrifugo.3.json": cpuRun(85000, 0.0160),
				"S3-herald.json": idleCostRun(9.3, 2.0, true), "S3-centrifugo.json": idleCostRun(31, 0.5, true),
				"S5-herald.json": idleCostRun(9.4, 2.5, true), "S5-centrifugo.json": idleCostRun(31, 1.25, true),
			},
			about: "Centrifugo v6.9.1 (Go version: go1.26.8)",
			want: []string{
				"S1–S5 also run Centrifugo",
				"## Centrifugo, the third peer",
				"this one says `Centrifugo v6.9.1 (Go version: go1.26.8)`",
				"**Centrifugo runs no GraphQL execution.**",
				"**Centrifugo holds no store on publish.**",
				"`" + centrifugoCommand + "`",
				"| centrifugo | 80000.0 | 0.0140 |",
				"- centrifugo: 80000, 78000, 85000",
				"round by round: deliveries/s 1.00, 0.90, 1.06; CPU-s per 1k deliveries 0.93, 1.00, 0.75.",
				// Medians: Herald 80000 and 0.0130; Centrifugo 80000 and 0.0150.
				"| S1 against Centrifugo: Herald's server CPU-s per 1k deliveries ≤ 1.0× Centrifugo's (medians, 0.0130 against 0.0150) | 0.87× | yes |",
				"| S1 against Centrifugo: Herald's deliveries/s ≥ 0.9× Centrifugo's (medians, 80000 against 80000) | 1.00× | yes |",
				"| S3 against Centrifugo: ≤ 10 KiB server RSS per idle subscribed socket (after the 20 s idle; Centrifugo: 31.0 KiB, Herald's 0.30× that) | 9.3 KiB | yes |",
				"| S5 against Centrifugo: ≤ 3 µs of server CPU per socket per second (Centrifugo: 1.25 µs, Herald's 2.00× that) | 2.50 µs | yes |",
				"| centrifugo | — | — | — | — | 31.0 | 31.0 | 1.2 | — | pass |",
			},
		},
		{
			name: "every target missed",
			files: map[string]string{
				"S1-herald.1.json": cpuRun(60000, 0.0200), "S1-centrifugo.1.json": cpuRun(80000, 0.0150),
				"S3-herald.json": idleCostRun(10.5, 2.0, true), "S3-centrifugo.json": idleCostRun(31, 0.5, false),
				"S5-herald.json": idleCostRun(9.4, 3.2, true),
			},
			want: []string{
				"this one says `version not recorded`",
				"| 1.33× | **no** |",
				"| 0.75× | **no** |",
				"(after the 20 s idle; Centrifugo: 31.0 KiB, Herald's 0.34× that, its run failed) | 10.5 KiB | **no** |",
				"(Centrifugo: not run) | 3.20 µs | **no** |",
				"| centrifugo | not run |",
			},
			lack: []string{"round by round"},
		},
		{
			name:  "not run",
			files: map[string]string{"S1-herald.1.json": cpuRun(80000, 0.013), "S3-herald.json": idleCostRun(9.3, 2, true)},
			want: []string{
				"| centrifugo | not run |",
				"| S3 against Centrifugo: ≤ 10 KiB server RSS per idle subscribed socket (after the 20 s idle; Centrifugo: not run) | 9.3 KiB | yes |",
			},
			lack: []string{"Centrifugo, the third peer", "S1 against Centrifugo", "S1–S5 also run Centrifugo", "S5 against Centrifugo"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := renderWith(t, tc.files, meta{command: centrifugoCommand, beforeCommit: "f25c33e", centrifugo: tc.about})
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("the report lacks %q", s)
				}
			}
			for _, s := range tc.lack {
				if strings.Contains(out, s) {
					t.Errorf("the report has %q", s)
				}
			}
			if t.Failed() || os.Getenv("SHOW") != "" {
				t.Logf("report:\n%s", out)
			}
		})
	}
}

// latencyRun is a loadgen JSON report of a rate-limited run with its p99.
func latencyRun(p99 float64, lost int) string {
	return fmt.Sprintf(`{"mode":"publish","pass":true,"failures":[],"setup":{"connections_established":5000},
		"publish":{"http_latency":{"p50_ms":1.2,"p99_ms":%g}},
		"delivery":{"expected":600000,"received":%d,"lost":%d,"per_sec":20000},
		"latency":{"p50_ms":1.5,"p99_ms":%g,"max_ms":60},"server":{"rss_per_conn_kb":11,"cpu_sec_per_1000_deliveries":0.02}}`, p99-1, 600000-lost, lost, p99)
}

// TestRenderIssue14BaselineTargets: S2's rate and S4's p99 against the
// baseline's are rows of "Ratios and targets", met or not.
func TestRenderIssue14BaselineTargets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "met",
			files: map[string]string{
				"S2-herald.1.json": cpuRun(40000, 0.03), "S2-baseline.1.json": cpuRun(38000, 0.028),
				"S4-herald.1.json": latencyRun(5.5, 0), "S4-baseline.1.json": latencyRun(5.0, 0),
			},
			want: []string{
				"| S2 (issue 14): Herald deliveries/s ≥ 1.0× baseline (medians, 40000 against 38000) | 1.05× | yes |",
				"| S4 (issue 14): Herald's p99 ≤ 1.2× the baseline's, zero lost (median-p99 runs, 5.5 against 5.0 ms) | 1.10× | yes |",
			},
		},
		{
			name: "missed",
			files: map[string]string{
				"S2-herald.1.json": cpuRun(29000, 0.041), "S2-baseline.1.json": cpuRun(40000, 0.028),
				"S4-herald.1.json": latencyRun(9.2, 0), "S4-baseline.1.json": latencyRun(4.6, 0),
			},
			want: []string{
				"| S2 (issue 14): Herald deliveries/s ≥ 1.0× baseline (medians, 29000 against 40000) | 0.72× | **no** |",
				"| S4 (issue 14): Herald's p99 ≤ 1.2× the baseline's, zero lost (median-p99 runs, 9.2 against 4.6 ms) | 2.00× | **no** |",
				"took p50 1.2 and p99 8.2 ms on Herald against 1.2 and 3.6 ms on the baseline;\npublish to delivery, p50 1.5 and p99 9.2 ms against 1.5 and 4.6 ms.",
			},
		},
		{
			name: "fast but lossy",
			files: map[string]string{
				"S4-herald.1.json": latencyRun(4.0, 3), "S4-baseline.1.json": latencyRun(5.0, 0),
			},
			want: []string{"(median-p99 runs, 4.0 against 5.0 ms) | 0.80× | **no** |"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := renderWith(t, tc.files, meta{command: "bench/run", beforeCommit: "f25c33e"})
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Errorf("the report lacks %q", s)
				}
			}
			if t.Failed() {
				t.Logf("report:\n%s", out)
			}
		})
	}
}

// TestRenderBacklogNote: under S1, each server's posts taken per second,
// the deliveries they offered and those read.
func TestRenderBacklogNote(t *testing.T) {
	run := func(posts, perSec float64) string {
		return fmt.Sprintf(`{"mode":"publish","pass":true,"failures":[],"setup":{"connections_established":2000},
		"publish":{"rate_per_sec":%g,"http_latency":{"p50_ms":15,"p99_ms":40}},
		"delivery":{"expected":2000000,"received":2000000,"per_sec":%g},
		"latency":{"p50_ms":1220,"p99_ms":1600,"max_ms":1700},"server":{"rss_per_conn_kb":12,"cpu_sec_per_1000_deliveries":0.009}}`, posts, perSec)
	}
	out := renderWith(t, map[string]string{"S1-herald.1.json": run(60, 101507), "S1-baseline.1.json": run(42, 83498)},
		meta{command: "bench/run", beforeCommit: "f25c33e"})
	for _, want := range []string{
		"S1's latency columns measure the load generator's backlog",
		"herald 60 posts/s, 120000 deliveries/s offered, 101507 read, p50 1220 ms; baseline 42 posts/s, 84000 deliveries/s offered, 83498 read, p50 1220 ms.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q\n%s", want, out)
		}
	}
}
