package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestServersOf(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want []string
	}{
		{"S1", []string{"herald", "herald-sse", "baseline", "peer", "centrifugo"}},
		{"S2", []string{"herald", "baseline", "peer", "centrifugo"}},
		{"S3", []string{"herald", "herald-sse", "baseline", "peer", "centrifugo"}},
		{"S4", []string{"herald", "baseline", "peer", "centrifugo"}},
		{"S5", []string{"herald", "baseline", "peer", "centrifugo"}},
	} {
		if got := serversOf(tc.id); !slices.Equal(got, tc.want) {
			t.Errorf("serversOf(%s) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

// publishRun is a loadgen JSON report of a publish run.
func publishRun(perSec float64, lost int) string {
	return fmt.Sprintf(`{"mode":"publish","pass":%v,"failures":[],"setup":{"connections_established":2000},
		"delivery":{"expected":2000000,"received":%d,"lost":%d,"per_sec":%g},
		"latency":{"p50_ms":30,"p99_ms":80,"max_ms":90},"server":{"rss_per_conn_kb":12,"cpu_sec_per_1000_deliveries":0.0133}}`,
		lost == 0, 2000000-lost, lost, perSec)
}

// idleRun is a loadgen JSON report of an idle run.
func idleRun(connectKiB, idleKiB float64) string {
	return fmt.Sprintf(`{"mode":"idle","pass":true,"failures":[],"setup":{"connections_established":19000},
		"idle":{"server_cpu_us_per_conn_per_sec":1.5,"server_rss_per_conn_kb":%g},"server":{"rss_per_conn_kb":%g}}`, idleKiB, connectKiB)
}

// renderFixtures writes files into a directory and renders its report.
func renderFixtures(t *testing.T, files map[string]string) string {
	t.Helper()
	return renderWith(t, files, meta{command: sseCommand, beforeCommit: "f25c33e"})
}

// renderWith writes files into a directory and renders its report with m.
func renderWith(t *testing.T, files map[string]string, m meta) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	all, err := load(dir)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := loadDesigns(dir)
	if err != nil {
		t.Fatal(err)
	}
	return render(all, dr, m)
}

func TestRenderSSE(t *testing.T) {
	for _, tc := range []struct {
		name       string
		files      map[string]string
		want, lack []string
	}{
		{
			name: "both targets met",
			files: map[string]string{
				"S1-herald.1.json": publishRun(80000, 0), "S1-herald-sse.1.json": publishRun(76000, 0),
				"S1-herald.2.json": publishRun(70000, 0), "S1-herald-sse.2.json": publishRun(70000, 0),
				"S1-herald.3.json": publishRun(90000, 0), "S1-herald-sse.3.json": publishRun(81000, 0),
				"S1-baseline.1.json": publishRun(75000, 0),
				"S3-herald.json":     idleRun(9.5, 9.3), "S3-herald-sse.json": idleRun(11.8, 11.5),
			},
			want: []string{
				"| herald over SSE | 76000.0 |",
				"- herald over SSE: 76000, 70000, 81000",
				"pair by pair: 0.95, 1.00, 0.90.",
				"`BENCH_SERVERS=\"herald herald-sse\" bench/run S1 S3`",
				"| S1 over SSE: Herald's deliveries/s on event streams ≥ 0.9× on WebSockets (76000 against 80000) | 0.95× | yes |",
				"| S3 over SSE: ≤ 12 KiB server RSS per idle SSE stream (after the 20 s idle; right after connecting: 11.8 KiB; a WebSocket: 9.3 KiB) | 11.5 KiB | yes |",
				"| herald over SSE | — | — | — | — | 11.8 | 11.5 | 1.5 | — | pass |",
				"| every scenario: zero lost, duplicated, reordered (Herald, every run) | | yes |",
			},
			lack: []string{"| herald over SSE | not run", "S2 over SSE"},
		},
		{
			name: "both targets missed, and a run that lost",
			files: map[string]string{
				"S1-herald.1.json": publishRun(80000, 0), "S1-herald-sse.1.json": publishRun(60000, 1),
				"S3-herald.json": idleRun(9.5, 9.3), "S3-herald-sse.json": idleRun(30, 28.4),
			},
			want: []string{
				"| 0.75× | **no** |",
				"| 28.4 KiB | **no** |",
				"| every scenario: zero lost, duplicated, reordered (Herald, every run) | | **no** |",
			},
			lack: []string{"pair by pair"},
		},
		{
			name:  "not run",
			files: map[string]string{"S1-herald.1.json": publishRun(80000, 0), "S3-herald.json": idleRun(9.5, 9.3)},
			want:  []string{"| herald over SSE | not run |"},
			lack:  []string{"over SSE:", "Reproduce Herald's WebSocket and SSE rows"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := renderFixtures(t, tc.files)
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
