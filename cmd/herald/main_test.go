package main

import (
	"os"
	"testing"
)

// runAsHeraldEnv makes the test binary run Herald's main instead of the
// tests, so tests can start real Herald processes without a separate build.
const runAsHeraldEnv = "HERALD_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsHeraldEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
	}
	os.Exit(m.Run())
}
