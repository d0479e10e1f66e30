package main

import "testing"

// TestInterpolate: environment values are read as Compose reads them with
// every variable unset.
func TestInterpolate(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                       "plain",
		"${HERALD_ALLOWED_ORIGINS:-}": "",
		"${X:-a,b}":                   "a,b",
		"${X-d}":                      "d",
		"${X}":                        "",
		"a$$b":                        "a$b",
		"${S:?set S}":                 "composecheck-stand-in-for-S-0123456789abcdef",
	} {
		if got := interpolate(in); got != want {
			t.Errorf("interpolate(%q) = %q, want %q", in, got, want)
		}
	}
}
