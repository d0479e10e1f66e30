package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderS8: bench/presence's report becomes the S8 section; without
// it there is none.
func TestRenderS8(t *testing.T) {
	dir := t.TempDir()
	if r, err := loadS8(dir); err != nil || r != nil {
		t.Fatalf("no S8 file: %v, %v", r, err)
	}
	if out := render(map[string]runs{}, designResults{}, meta{command: "bench/run S8"}); strings.Contains(out, "## S8") {
		t.Fatal("an S8 section without S8's results")
	}
	data := `{"Clients":5000,"Rooms":50,"Seconds":60,"Rejoins":30000,"Messages":900000,"PerClientPerSecond":3,
		"BusiestPerSecond":4.5,"Kinds":{"SNAPSHOT":500000,"JOINED":100000,"LEFT":300000},"ServerCPUSeconds":25.8,
		"ServerCPUUtilisation":0.43,"ServerRSSKB":114688}`
	if err := os.WriteFile(filepath.Join(dir, "S8-herald.json"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := loadS8(dir)
	if err != nil || r == nil {
		t.Fatalf("loadS8: %v, %v", r, err)
	}
	out := render(map[string]runs{}, designResults{S8: r}, meta{command: "bench/run S8"})
	for _, want := range []string{
		"## S8 — presence: 5000 clients in 50 rooms",
		"| 60 | 30000 | 20.0 | 3.00 | 4.50 | 0.43 | 117 |",
		"SNAPSHOT 500000, JOINED 100000, LEFT 300000, TYPING 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out[strings.Index(out, "## S8"):])
		}
	}
	// Beside S4's Herald run: messages per client and CPU s/s.
	var s4 result
	if err := json.Unmarshal([]byte(`{"pass":true,"delivery":{"per_sec":20000},"server":{"cpu_sec_per_1000_deliveries":0.02}}`), &s4); err != nil {
		t.Fatal(err)
	}
	out = render(map[string]runs{"S4-herald": {&s4}}, designResults{S8: r}, meta{command: "bench/run S4 S8"})
	if want := "4.00 messages per client per second\nat 0.40 server CPU s/s"; !strings.Contains(out, want) {
		t.Errorf("the report lacks %q:\n%s", want, out[strings.Index(out, "## S8"):])
	}
}
