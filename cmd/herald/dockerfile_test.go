package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestContainerDefaultIsNotDev: the image must not silently run the
// insecure development mode on a public port. Its environment selects
// jwt, and with that environment and no key Herald refuses to start,
// saying what to set.
func TestContainerDefaultIsNotDev(t *testing.T) {
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^ENV\s+(HERALD_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(string(raw), -1) {
		env[m[1]] = m[2]
	}
	if env["HERALD_AUTH"] != "jwt" {
		t.Fatalf("the Dockerfile sets HERALD_AUTH=%q; want jwt", env["HERALD_AUTH"])
	}
	_, err = parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "HERALD_AUTH") || !strings.Contains(err.Error(), "--jwt-secret") {
		t.Fatalf("the image's environment without a key: %v; want a refusal naming what to set", err)
	}
}
