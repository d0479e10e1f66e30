package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryFlag keeps the README's configuration table in
// step with the flags Herald really has.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var buf strings.Builder
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &buf); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	for _, line := range strings.Split(buf.String(), "\n") {
		if f, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok {
			names = append(names, strings.Fields(f)[0])
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d flags in the usage text:\n%s", len(names), buf.String())
	}
	for _, name := range names {
		row := "| `--" + name + "` | `" + envName(name) + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README's configuration table has no row starting %s", row)
		}
	}
}
