// Package testfs reads the file system for tests: where reading fails, the
// test fails, so that a caller states only what it expects to find.
package testfs

import (
	"os"
	"testing"
)

// Names returns the names of the entries of dir, sorted (as os.ReadDir
// sorts them); it fails t when dir cannot be read.
func Names(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
