package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name, line string
		ticks      int64 // utime+stime; -1 = malformed
	}{
		{"command with parentheses and spaces", "1234 (my (weird) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n", 300},
		{"short line", "1234 (herald (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 1000 0 0", 300},
		{"garbage", "garbage", -1},
		{"too few fields", "1 (x) S 1 2 3", -1},
		{"times not numbers", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0 0", -1},
	}
	for _, tt := range tests {
		got, err := ParseStatCPU([]byte(tt.line))
		if tt.ticks < 0 {
			if err == nil {
				t.Errorf("%s: accepted", tt.name)
			}
			continue
		}
		if want := time.Duration(tt.ticks * int64(time.Second) / ClockTicks()); err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", tt.name, got, err, want)
		}
	}
	if ClockTicks() != 100 {
		t.Logf("clock ticks from auxv: %d", ClockTicks())
	}
}

func TestSelf(t *testing.T) {
	if rss, err := RSSKB(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("RSSKB(self) = %d, %v", rss, err)
	}
	if _, err := CPU(os.Getpid()); err != nil {
		t.Fatalf("CPU(self): %v", err)
	}
	if _, err := RSSKB(-1); err == nil {
		t.Fatal("RSSKB of no process: no error")
	}
}
