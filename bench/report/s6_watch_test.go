package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestS6ClientsTargetNeedsAPassingClientsRun: "≤ 100 MB plus the watched
// rooms with 200 clients watching 100 rooms" is met only by a run in which
// the 200 clients did watch. loadgen samples the server's RSS after its run
// whatever happened (rss_after_run_kb is there when its setup failed, with
// no client subscribed), so the target must look at the run's verdict, as
// every S1–S5 and S7 target does.
func TestS6ClientsTargetNeedsAPassingClientsRun(t *testing.T) {
	dir := writeFixtures(t)
	failed := `{"mode":"idle","pass":false,"failures":["setup: 0 of 200 subscriptions live"],
		"setup":{"failed":true,"connections_established":200},
		"server":{"rss_before_kb":40000,"rss_after_run_kb":41000}}`
	if err := os.WriteFile(filepath.Join(dir, "S6-herald.watch.json"), []byte(failed), 0o644); err != nil {
		t.Fatal(err)
	}
	dr, err := loadDesigns(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := render(map[string]runs{}, dr, meta{command: "bench/run S6", beforeCommit: "f25c33e"})
	line := lineWith(out, "with 200 clients watching 100 rooms |")
	cells := strings.Split(line, "|")
	// | target | herald | met | herald-before | met |
	if len(cells) < 4 || strings.TrimSpace(cells[3]) == "yes" {
		t.Errorf("the clients' run failed its setup (no client watched), yet herald's target reads met:\n%s", line)
	}
}
