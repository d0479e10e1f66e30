package testrig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ModuleRoot returns the directory of Herald's go.mod at or above the
// working directory, so a driver run with go run from anywhere in the
// repository finds the code it builds and the clients it runs.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/heraldhq/herald\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository: no go.mod of github.com/heraldhq/herald above the working directory")
		}
		dir = parent
	}
}
