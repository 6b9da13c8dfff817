// Package testdata locates the shared test data that sits beside the
// project checkout (../shared/testdata relative to the module root), for
// tests only. Tests that need a file call Path, which skips the test with a
// clear message when the data is absent.
package testdata

import (
	"os"
	"path/filepath"
	"testing"
)

// Root returns the module root: the nearest directory above the working
// directory (a test's package directory) that holds go.mod.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("testdata: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("testdata: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Path returns the path of a shared test file or directory, given relative
// to ../shared/testdata, and skips the test when it does not exist.
func Path(t testing.TB, rel ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Root(t), "..", "shared", "testdata"}, rel...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared test data %s is absent (expected beside the checkout at ../shared/testdata): %v", filepath.Join(rel...), err)
	}
	return p
}
