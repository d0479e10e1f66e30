package main

import (
	"flag"
	"strings"
	"testing"
)

// helpOf returns the help `herald -h` prints for the flag name, its lines
// joined.
func helpOf(t *testing.T, name string) string {
	t.Helper()
	var buf strings.Builder
	if _, err := parseConfig([]string{"-h"}, func(string) string { return "" }, &buf); err != flag.ErrHelp {
		t.Fatalf("-h: %v", err)
	}
	lines := strings.Split(buf.String(), "\n")
	for i, line := range lines {
		if fields := strings.Fields(line); len(fields) == 0 || fields[0] != "-"+name {
			continue
		}
		var b strings.Builder
		for _, l := range lines[i+1:] {
			if !strings.HasPrefix(l, "    \t") {
				break
			}
			b.WriteString(strings.TrimSpace(l) + " ")
		}
		return b.String()
	}
	t.Fatalf("-h shows no -%s:\n%s", name, buf.String())
	return ""
}

// TestHelpStatesTheDefaultsApplied: what `herald -h` says of a default
// that is not the flag's own value holds.
func TestHelpStatesTheDefaultsApplied(t *testing.T) {
	t.Run("introspection is off with jwt", func(t *testing.T) {
		env := map[string]string{"HERALD_AUTH": "jwt", "HERALD_JWT_SECRET": testJWTSecret}
		c, err := parseConfig(nil, func(k string) string { return env[k] }, &strings.Builder{})
		if err != nil {
			t.Fatal(err)
		}
		help := helpOf(t, "introspection")
		if c.Introspection || strings.Contains(help, "(default true)") || !strings.Contains(help, "off with jwt") {
			t.Errorf("with --auth jwt introspection is %v; -h says %q", c.Introspection, help)
		}
	})
	t.Run("stream is a base name", func(t *testing.T) {
		// No stream is named <name>: the log is <name>_ROOMS and <name>_P<k>.
		if help := helpOf(t, "stream"); !strings.Contains(help, "<name>_ROOMS") {
			t.Errorf("-h says of -stream %q", help)
		}
	})
	t.Run("max-connections below 1024 files", func(t *testing.T) {
		help := helpOf(t, "max-connections")
		if n, _ := defaultMaxConnections(800, true); n != 400 || !strings.Contains(help, "half the limit") {
			t.Errorf("with 800 files the default is %d; -h says %q", n, help)
		}
	})
}
