package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFixtures writes S6 and S7 results for both designs: herald meets
// every target, herald-before (today's design) misses the ones it should.
func writeFixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		// 3 big rooms of 1,000 and 7 small of 100: 3,700 messages.
		"S6-herald.manifest.json": `{"layout":{"rooms":10,"messages":3700,"big_rooms":3,"big_messages":1000},
			"rooms":[{"id":"b0","messages":1000,"big":true},{"id":"b1","messages":1000,"big":true},{"id":"b2","messages":1000,"big":true},
			{"id":"s0","messages":100},{"id":"s1","messages":100},{"id":"s2","messages":100},{"id":"s3","messages":100},
			{"id":"s4","messages":100},{"id":"s5","messages":100},{"id":"s6","messages":100}],
			"rooms_created":10,"messages_posted":3700,"elapsed_sec":2,"post_sec":1.9,"messages_per_sec":1947,"verified":true}`,
		"S6-herald.env.json":     `{"server":"herald","nats_store_kb":2048,"replica_flags":"--partitions 16"}`,
		"S6-herald.ready.json":   `{"ready_ms":412.5,"rss_ready_kb":30000,"rss_idle_kb":40000}`,
		"S6-herald.watched.txt":  "b0\ns0\ns1\n",
		"S6-herald.watch.json":   `{"mode":"idle","pass":true,"failures":[],"server":{"rss_before_kb":40000,"rss_after_run_kb":50000}}`,
		"S6-herald.cold.json":    `{"rooms":2,"latency_ms":{"n":2,"p50":12,"p99":180,"max":180},"rss_start_kb":50000,"rss_end_kb":52000,"errors":[]}`,
		"S7-herald.rate.json":    `{"rooms":1000,"batch":5,"target_per_sec":5000,"window_sec":30,"messages_sent":150000,"messages_acked":150000,"messages_failed":0,"achieved_per_sec":4990,"http_ms":{"n":30000,"p50":5,"p99":40,"max":90},"errors":[],"watched":{"window_sec":30,"cpu_pct_of_one_core":1.5,"rss_start_kb":60000,"rss_end_kb":61000,"rss_max_kb":62000,"rss_growth_kb":1000,"machine_busy_pct":97.4},"control":{"window_sec":10,"cpu_pct_of_one_core":1.2,"rss_start_kb":60000,"rss_end_kb":60000,"rss_max_kb":60000,"rss_growth_kb":0,"machine_busy_pct":12}}`,
		"S7-herald.loadgen.json": `{"mode":"publish","pass":true,"failures":[],"publish":{"http_latency":{"p50_ms":2.5,"p99_ms":9.25}},"delivery":{"expected":11000,"received":11000,"lost":0,"duplicated":0,"reordered":0,"per_sec":200},"latency":{"p50_ms":3,"p99_ms":20,"max_ms":30}}`,

		"S7-herald.env.json": `{"server":"herald","nice":7,"sub_rate":2,"publish_at":"B","replica_flags":"--partitions 16"}`,

		"S6-herald-before.manifest.json": `{"layout":{"rooms":10,"messages":3700,"big_rooms":3,"big_messages":1000},"rooms":[],"messages_posted":3700,"elapsed_sec":3,"messages_per_sec":1300,"verified":true}`,
		// 370,000 KiB over 3,700 messages: 102,400 bytes per message.
		"S6-herald-before.ready.json":      `{"ready_ms":11200,"rss_ready_kb":370000,"rss_idle_kb":370000}`,
		"S6-herald-before.cold.json":       `{"rooms":2,"latency_ms":{"n":0},"errors":["room x: not found"]}`,
		"S7-herald-before.rate.json":       `{"rooms":1000,"target_per_sec":5000,"window_sec":30,"messages_acked":90000,"messages_failed":0,"achieved_per_sec":3000,"unsent_requests":4000,"watched":{"window_sec":30,"cpu_pct_of_one_core":25,"rss_start_kb":60000,"rss_end_kb":160000,"rss_max_kb":160000,"rss_growth_kb":100000}}`,
		"S7-herald-before.loadgen.json":    `{"mode":"publish","pass":false,"failures":["delivery: 1 lost, 0 duplicated, 0 reordered, 0 misrouted"],"delivery":{"expected":11000,"received":10999,"lost":1,"per_sec":200},"latency":{"p50_ms":5,"p99_ms":70,"max_ms":90}}`,
		"S7-herald-before.incomplete.json": `{"server":"herald-before","incomplete":true}`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDesigns(t *testing.T) {
	dr, err := loadDesigns(writeFixtures(t))
	if err != nil {
		t.Fatal(err)
	}
	h, b := dr.S6["herald"], dr.S6["herald-before"]
	if h == nil || b == nil || dr.S7["herald"] == nil || dr.S7["herald-before"] == nil {
		t.Fatalf("loaded %+v", dr)
	}
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"ready ms", h.readyMs(), 412.5},
		{"idle RSS", float64(h.idleRSSKB()), 40000},
		{"clients RSS", float64(h.clientsRSSKB()), 50000},
		{"watched messages", float64(h.watchedMessages()), 1200},
		{"herald-before bytes per message", b.bytesPerMessage(), 102400},
		{"herald-before watched messages (no manifest rooms)", float64(b.watchedMessages()), -1},
		{"S7 A CPU", dr.S7["herald"].aCPU(), 1.5},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if !h.coldOK() || b.coldOK() {
		t.Errorf("coldOK: herald %v, herald-before %v", h.coldOK(), b.coldOK())
	}
	if !dr.S7["herald"].rateOK() || dr.S7["herald-before"].rateOK() {
		t.Error("rateOK")
	}
	if !dr.S7["herald"].subscribersOK() || dr.S7["herald-before"].subscribersOK() {
		t.Error("subscribersOK")
	}
	if dr.S7["herald"].Incomplete || !dr.S7["herald-before"].Incomplete {
		t.Error("incomplete")
	}
	if countBig(h) != 1 || coldN(h) != 2 {
		t.Errorf("countBig %d, coldN %d", countBig(h), coldN(h))
	}
}

func TestLoadDesignsNone(t *testing.T) {
	dr, err := loadDesigns(t.TempDir())
	if err != nil || len(dr.S6) != 0 || len(dr.S7) != 0 {
		t.Fatalf("%+v, %v", dr, err)
	}
	out := render(map[string]runs{}, dr, meta{command: "bench/run S6", beforeCommit: "f25c33e"})
	for _, want := range []string{"| herald | not run", "| herald-before | not run", "## S6 — data at rest: 1,000,000 messages in 10,000 rooms", "## Ratios and targets"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	bad := filepath.Join(t.TempDir())
	if err := os.WriteFile(filepath.Join(bad, "S6-herald.ready.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := loadDesigns(bad); err == nil || !strings.Contains(err.Error(), "S6-herald.ready.json") {
		t.Fatalf("a broken file: %v", err)
	}
}

func TestRenderDesigns(t *testing.T) {
	dr, err := loadDesigns(writeFixtures(t))
	if err != nil {
		t.Fatal(err)
	}
	out := render(map[string]runs{}, dr, meta{command: "bench/run S6 S7", beforeCommit: "f25c33e"})
	for _, want := range []string{
		"## S6 — data at rest: 3,700 messages in 10 rooms (3 big rooms × 1,000), then a fresh replica",
		"| herald | 1947 (2) | 2 | 0.41 | 41.0 | 51.2 | 12.0 / 180.0 / 180.0 (2) | 53.2 | seeded and verified |",
		"| a fresh replica reaches /readyz in ≤ 1 s | 0.41 s | yes | 11.20 s | **no** |",
		"| ≤ 100 MB RSS with no clients (after 5 s idle) | 41.0 MB | yes | 378.9 MB | **no** |",
		// 100 MB + 1,200 messages × 102,400 bytes = 222.9 MB.
		"| ≤ 100 MB plus the watched rooms (1,200 messages) with 200 clients watching 100 rooms | 51.2 MB of 223 | yes | — | — |",
		"| a cold room of 1,000 messages answers its first query at p99 ≤ 250 ms | 180.0 ms | yes | 1 errors | **no** |",
		"102400 bytes per message",
		"run at a lower priority (nice 7)",
		"posting its events through B, so that each crosses replicas",
		"S6's replica flags (besides `--addr`, `--nats-url`, `--data-dir`): herald `--partitions 16`.",
		"S7's replica flags (besides `--addr`, `--nats-url`, `--data-dir`): herald `--partitions 16`.",
		"| herald | 4990 of 5000 (1000, 5) | 5.0 / 40.0 | 1.20 → 1.50 | 12 → 97 | 61.4 → 62.5 (63.5) | 11000 of 11000, 3.0 / 20.0 | B, 2.5 / 9.2 | 0 / 0 / 0 | pass |",
		"| herald-before | 3000 of 5000 (1000, 0), 4000 requests not sent in the window | — | 25.00 | — | 61.4 → 163.8 (163.8) |",
		"FAIL: delivery: 1 lost, 0 duplicated, 0 reordered, 0 misrouted (scenario incomplete) |",
		"| B sustains 5,000 posts/s for 30 s (the scenario's condition: ≥ 95%, none failed) | 4990/s | yes | 3000/s | **no** |",
		"| A's CPU ≤ 2% of one core meanwhile | 1.50% | yes | 25.00% | **no** |",
		"| A's RSS does not grow (≤ 2048 KiB over the window) | +1.0 MB | yes | +102.4 MB | **no** |",
		"| A's subscribers get their rooms' events exactly once, in order, at p99 ≤ 50 ms | 20.0 ms, 0 / 0 / 0 | yes | 70.0 ms, 1 / 0 / 0 | **no** |",
		"| S6: a fresh replica reaches /readyz in ≤ 1 s (herald-before: 11.20 s) | 0.41 s | yes |",
		"| S7: A's CPU ≤ 2% of one core while B takes 4990 posts/s (achieved) | 1.50% | yes |",
		"| S7: A's subscribers exactly once, in order, p99 ≤ 50 ms | 20.0 ms, 0 / 0 / 0 | yes |",
		"| every scenario: zero lost, duplicated, reordered (Herald, every run) | | yes |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks\n%s", want)
		}
	}
	if strings.Contains(out, "%!") {
		t.Errorf("a format verb went wrong:\n%s", out)
	}
	if i, j := strings.Index(out, "## S7"), strings.Index(out, "## Ratios and targets"); i < 0 || j < i {
		t.Error("S6 and S7 must come before the ratios")
	}
}

func TestThousandsAndMB(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1000000: "1,000,000", 12345: "12,345", -5: "-5"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
	if got := mb(97657); got < 99.99 || got > 100.01 {
		t.Errorf("mb(97657 KiB) = %v, want ~100", got)
	}
}
