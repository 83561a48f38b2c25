// Package filetest opens file stores for tests: where opening fails, the
// test fails, so that a test states only which directory it wants.
package filetest

import (
	"testing"

	"github.com/batonrun/baton/sync/file"
)

// New returns an empty file store in a directory of its own that goes
// away with the test.
func New(t testing.TB) *file.Store {
	t.Helper()
	return Open(t, t.TempDir())
}

// Open returns the file store rooted at dir, as file.New does; it fails t
// where file.New fails.
func Open(t testing.TB, dir string) *file.Store {
	t.Helper()
	s, err := file.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
