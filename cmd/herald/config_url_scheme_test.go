package main

import (
	"io"
	"strings"
	"testing"
)

// TestNATSURLSchemeMustBeOneNATSSpeaks: nats.go dials a scheme it does
// not know as plain nats://, so --nats-url https://… would connect
// without TLS and send its token in the clear. Such a URL is a bad
// value; the four schemes nats.go knows pass, in any case.
func TestNATSURLSchemeMustBeOneNATSSpeaks(t *testing.T) {
	for _, u := range []string{
		"https://s3cr3t@nats.example.com:4222",
		"http://127.0.0.1:4222",
		"nats://127.0.0.1:4222,https://127.0.0.1:4223",
		"tcp://127.0.0.1:4222",
	} {
		t.Run(u, func(t *testing.T) {
			_, err := parseConfig([]string{"--nats-url", u}, noEnv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "--nats-url (HERALD_NATS_URL)") || !strings.Contains(err.Error(), "NATS does not speak") {
				t.Fatalf("parseConfig(--nats-url %q) err = %v, want a bad value naming --nats-url and the scheme", u, err)
			}
		})
	}
	for _, u := range []string{"nats://127.0.0.1:4222", "tls://127.0.0.1:4222", "ws://127.0.0.1:8080", "wss://127.0.0.1:8443", "NATS://127.0.0.1:4222"} {
		if _, err := parseConfig([]string{"--nats-url", u}, noEnv, io.Discard); err != nil {
			t.Errorf("parseConfig(--nats-url %q): %v", u, err)
		}
	}
}
