package main

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestSplitArgs(t *testing.T) {
	wd, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	here := func(p string) bool { return p == "test/here.test.js" }
	tests := []struct {
		name        string
		args        []string
		opts, files []string
	}{
		{"none", nil, nil, nil},
		{"options only", []string{"--test-name-pattern=dispose"}, []string{"--test-name-pattern=dispose"}, nil},
		{"a file relative to e2e/", []string{"test/apollo.test.js"}, nil, []string{"test/apollo.test.js"}},
		{"a file relative to the working directory", []string{"test/here.test.js", "--test-only"},
			[]string{"--test-only"}, []string{filepath.Join(wd, "test/here.test.js")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, files := splitArgs(tt.args, here)
			if !slices.Equal(opts, tt.opts) || !slices.Equal(files, tt.files) {
				t.Errorf("splitArgs(%q) = %q, %q; want %q, %q", tt.args, opts, files, tt.opts, tt.files)
			}
		})
	}
}
