package testrig

import (
	"os"
	"path/filepath"
	"testing"
)

// TestModuleRoot: from this package's directory (where go test runs it),
// the module root is two levels up; from outside the repository there is
// none, and the error says what was looked for.
func TestModuleRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("ModuleRoot from %s: %v", wd, err)
	}
	if want := filepath.Dir(filepath.Dir(wd)); root != want {
		t.Fatalf("ModuleRoot from %s = %s, want %s", wd, root, want)
	}
	t.Chdir(t.TempDir())
	if root, err := ModuleRoot(); err == nil {
		t.Fatalf("ModuleRoot outside the repository = %s, want an error", root)
	}
}
