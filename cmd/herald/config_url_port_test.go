package main

import (
	"io"
	"strings"
	"testing"
)

// TestURLPortOutOfRangeIsABadValue: a port beyond 65535 in
// --nats-url or --jwks-url is a bad value like one in --addr: refused at
// parse (exit code 2), naming the flag and its variable, rather than
// a start that fails with exit code 1 asking whether nats-server runs.
func TestURLPortOutOfRangeIsABadValue(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"nats-url port 99999", []string{"--nats-url", "nats://127.0.0.1:99999"}, "--nats-url (HERALD_NATS_URL)"},
		{"second nats-url port 65536", []string{"--nats-url", "nats://127.0.0.1:4222,nats://127.0.0.1:65536"}, "--nats-url (HERALD_NATS_URL)"},
		{"jwks-url port 99999", []string{"--auth", "jwt", "--jwks-url", "http://127.0.0.1:99999/jwks"}, "--jwks-url (HERALD_JWKS_URL)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, noEnv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseConfig(%q) err = %v, want a bad value naming %s", tt.args, err, tt.want)
			}
		})
	}
	// The bounds themselves are fine.
	for _, args := range [][]string{
		{"--nats-url", "nats://127.0.0.1:65535"},
		{"--nats-url", "nats://127.0.0.1"},
		{"--auth", "jwt", "--jwks-url", "http://127.0.0.1:65535/jwks"},
	} {
		if _, err := parseConfig(args, noEnv, io.Discard); err != nil {
			t.Errorf("parseConfig(%q): %v", args, err)
		}
	}
}
